"""Training helpers: timing training steps (more arrives with notebook 04)."""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np


@dataclasses.dataclass(frozen=True)
class StepTiming:
    """Seconds per training step, measured after a warm-up step (which includes tracing)."""

    batch_size: int
    steps: int
    seconds_per_step: float
    warmup_seconds: float

    def epoch_seconds(self, examples: int = 60_000) -> float:
        """Seconds one epoch of ``examples`` would take at this speed."""
        return float(np.ceil(examples / self.batch_size)) * self.seconds_per_step

    def __str__(self) -> str:
        return (
            f"{self.seconds_per_step:.2f} s per step of {self.batch_size} images "
            f"(mean of {self.steps}, after a {self.warmup_seconds:.1f} s warm-up step)"
        )


def time_train_steps(model: keras.Model, batch_size: int = 128, steps: int = 3, optimizer="adam", seed: int = 0) -> StepTiming:
    """Compile ``model`` with ``optimizer`` and cross-entropy, and time ``steps`` training steps.

    Uses random images and labels of the model's input shape: only the speed is measured.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be at least 1, got {steps} and {batch_size}.")
    rng = np.random.default_rng(seed)
    x = rng.random((batch_size, *model.input_shape[1:]), dtype=np.float32)
    y = rng.integers(0, model.output_shape[-1], batch_size)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    start = time.perf_counter()
    model.train_on_batch(x, y)
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    per_step = (time.perf_counter() - start) / steps
    return StepTiming(batch_size, steps, per_step, warmup)


def short_run(model: keras.Model, train_ds, steps: int, learning_rate: float = 1e-3, callbacks=(), eval_ds=None):
    """Train ``steps`` batches with Adam and cross-entropy, recording loss and accuracy after *every* step.

    Each step is its own Keras "epoch" (``steps_per_epoch=1``), so ``history["loss"][i]`` is the
    loss of batch ``i`` rather than a running mean. ``train_ds`` must repeat. Returns the history
    dict, plus ``"test_accuracy"`` when ``eval_ds`` is given.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}.")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(train_ds, steps_per_epoch=1, epochs=steps, shuffle=False, verbose=0, callbacks=list(callbacks))
    result = {key: [float(v) for v in values] for key, values in history.history.items()}
    if eval_ds is not None:
        result["test_accuracy"] = float(model.evaluate(eval_ds, verbose=0, return_dict=True)["accuracy"])
    return result
