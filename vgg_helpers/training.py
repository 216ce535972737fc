"""Training helpers: compiling, schedules, timing steps, the data pipeline and a resumable ``fit_mnist``."""

from __future__ import annotations

import dataclasses
import json
import time

import keras
import numpy as np


def compile_classifier(model: keras.Model, optimizer="adam", metrics=("accuracy",)) -> keras.Model:
    """Compile for 10-class digits: the model outputs logits, labels are integers."""
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
    )
    # Create the optimizer's slots now, eagerly. Left to the first training step, they are created
    # inside tf.function, which registers ~8 small graph functions per weight that TensorFlow never
    # frees: measured here, each compile + fit of the ×1/8 VGG then kept 65 MB instead of 45 MB.
    model.optimizer.build(model.trainable_variables)
    return model


def warmup_cosine(learning_rate: float, total_steps: int, warmup_steps: int | None = None):
    """One cycle: linear warm-up from ``learning_rate / 10`` to ``learning_rate``, then cosine decay to
    ``learning_rate / 100``. The warm-up lasts a quarter of the run unless ``warmup_steps`` says otherwise.

    The warm-up lets a high peak rate through the first steps, when BatchNorm's statistics and
    Adam's moment estimates are still settling; the decay at the end is where the last fraction of a
    percent of accuracy comes from (visible in the learning curves of notebook 04).
    """
    if total_steps < 2:
        raise ValueError(f"a schedule needs at least 2 steps, got total_steps={total_steps}.")
    warmup = total_steps // 4 if warmup_steps is None else warmup_steps
    if not 0 <= warmup < total_steps:
        raise ValueError(f"warmup_steps must be in [0, {total_steps}), got {warmup}.")
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=learning_rate / 10,
        decay_steps=total_steps - warmup,
        alpha=0.01,
        warmup_target=learning_rate,
        warmup_steps=warmup,
    )


def use_accelerator(has_gpu: bool | None = None) -> str:
    """Switch on what speeds training up on this device; return a sentence saying what is on.

    On a GPU: the ``mixed_float16`` dtype policy (float16 maths on tensor cores, float32 weights;
    Keras adds loss scaling and :func:`~vgg_helpers.models.build_model` keeps the logits float32).
    XLA needs nothing: Keras' ``jit_compile="auto"`` compiles with XLA when a GPU is present and
    not on a CPU, where it measured *slower* here (751 against 1,539 images/s for the ×1/8 VGG).
    On a CPU: float32, no XLA; oneDNN (on by default) does the fast convolutions.
    Call it before building the model.
    """
    from vgg_helpers.runtime import gpu_names

    if has_gpu is None:
        has_gpu = bool(gpu_names())
    if has_gpu:
        keras.mixed_precision.set_global_policy("mixed_float16")
        return "GPU: mixed_float16 policy on; XLA on (Keras' jit_compile='auto')."
    keras.mixed_precision.set_global_policy("float32")
    return "CPU: float32, no XLA (Keras' jit_compile='auto' leaves it off on a CPU); oneDNN convolutions."


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
    compile_classifier(model, optimizer, metrics=())
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
    compile_classifier(model, keras.optimizers.Adam(learning_rate))
    history = model.fit(train_ds, steps_per_epoch=1, epochs=steps, shuffle=False, verbose=0, callbacks=list(callbacks))
    result = {key: [float(v) for v in values] for key, values in history.history.items()}
    if eval_ds is not None:
        result["test_accuracy"] = float(model.evaluate(eval_ds, verbose=0, return_dict=True)["accuracy"])
    return result


# --- Training on MNIST (notebook 04, the benchmark) --------------------------------------------------


def augmenter(max_shift: float = 0.1, max_rotation_degrees: float = 10.0, seed: int = 0) -> keras.Sequential:
    """Light augmentation for digits: small shifts and rotations (Keras preprocessing layers)."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(max_shift, max_shift, fill_mode="constant", seed=seed),
            keras.layers.RandomRotation(max_rotation_degrees / 360.0, fill_mode="constant", seed=seed + 1),
        ],
        name="augment",
    )


def training_dataset(x, y, batch_size: int, augment: bool = True, seed: int = 0):
    """Shuffled, batched, optionally augmented, prefetched training batches (one pass per epoch)."""
    import tensorflow as tf

    from vgg_helpers.data import make_dataset

    ds = make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=seed)  # already prefetches
    if not augment:
        return ds
    layers = augmenter(seed=seed)
    ds = ds.map(lambda images, labels: (layers(images, training=True), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


class _RecordBest(keras.callbacks.Callback):
    """Writes the checkpoint's best monitored value after each epoch, so a resumed run keeps comparing
    against it (a fresh ``ModelCheckpoint`` would otherwise overwrite a better ``best.keras``)."""

    def __init__(self, checkpoint, path):
        super().__init__()
        self.checkpoint, self.path = checkpoint, path

    def on_epoch_end(self, epoch, logs=None):
        if np.isfinite(self.checkpoint.best):
            self.path.write_text(json.dumps({"val_accuracy": float(self.checkpoint.best), "epoch": epoch + 1}))


def fit_mnist(
    model: keras.Model,
    splits: dict,
    run_dir,
    epochs: int,
    batch_size: int = 128,
    learning_rate: float = 3e-3,
    augment: bool = True,
    callbacks=(),
    verbose="auto",
    seed: int = 0,
):
    """Train ``model`` on ``splits["train"]``, validating on ``splits["val"]``; resumable.

    - Adam with a cosine schedule after a one-epoch linear warm-up;
    - ``keras.callbacks.BackupAndRestore`` in ``run_dir/backup`` (two copies, so an interruption
      while saving loses nothing): call again with the same ``run_dir`` after a disconnect and
      training resumes at the next epoch (a ``ValueError`` instead if the unfinished run had another
      configuration, recorded in ``run_dir/config.json``);
    - ``keras.callbacks.ModelCheckpoint`` keeps the best model by validation accuracy in
      ``run_dir/best.keras`` (its score in ``run_dir/best.json``, so a resumed run only replaces it
      with a better one);
    - :class:`~vgg_helpers.diagnostics.EarlyWarning` flags a bad first loss and stops on NaN;
    - after each epoch, free C-heap memory goes back to the system (measured: three epochs of 100
      steps at width 1/8 held 966 MiB after training without it, 823 MiB with it).

    Returns the Keras ``History``.
    """
    from pathlib import Path

    from vgg_helpers.data import make_dataset
    from vgg_helpers.diagnostics import EarlyWarning
    from vgg_helpers.runtime import _malloc_trim

    if epochs < 1 or batch_size < 1 or not learning_rate > 0:
        raise ValueError(f"epochs, batch_size and learning_rate must be positive, got {epochs}, {batch_size}, {learning_rate}.")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    train_ds = training_dataset(*splits["train"], batch_size=batch_size, augment=augment, seed=seed)
    val_ds = make_dataset(*splits["val"], batch_size=512)
    steps_per_epoch = int(np.ceil(len(splits["train"][0]) / batch_size))
    total = steps_per_epoch * epochs
    compile_classifier(model, keras.optimizers.Adam(warmup_cosine(learning_rate, total, min(steps_per_epoch, total // 4))))
    config = {
        "parameters": model.count_params(),
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": float(learning_rate),
        "augment": bool(augment),
        "train_examples": len(splits["train"][0]),
    }
    config_file = run_dir / "config.json"
    best_so_far = None
    if (run_dir / "backup").exists():  # an unfinished run: BackupAndRestore resumes it
        previous = json.loads(config_file.read_text()) if config_file.exists() else None
        if previous != config:
            raise ValueError(
                f"{run_dir} holds an unfinished run of another configuration ({previous}, now {config}): "
                f"resuming it would mix the two. Delete {run_dir / 'backup'} to start over, or pass another run_dir."
            )
        record = run_dir / "best.json"
        best_so_far = json.loads(record.read_text())["val_accuracy"] if record.exists() else None
        print(
            f"Resuming the unfinished run in {run_dir / 'backup'} at its last completed epoch"
            + (f" (best validation accuracy so far {best_so_far:.2%})" if best_so_far is not None else "")
            + ". To start over instead, delete that folder."
        )
    else:
        config_file.write_text(json.dumps(config))
    checkpoint = keras.callbacks.ModelCheckpoint(
        str(run_dir / "best.keras"), monitor="val_accuracy", save_best_only=True, initial_value_threshold=best_so_far
    )
    standard = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), double_checkpoint=True),
        checkpoint,
        _RecordBest(checkpoint, run_dir / "best.json"),
        EarlyWarning(),
        keras.callbacks.LambdaCallback(on_epoch_end=_malloc_trim),
    ]
    return model.fit(
        train_ds, validation_data=val_ds, epochs=epochs, shuffle=False, callbacks=standard + list(callbacks), verbose=verbose
    )


def learning_rate_sweep(build, splits: dict, rates, steps: int, batch_size: int = 128, seed: int = 0) -> dict:
    """Train a fresh ``build()`` model for ``steps`` steps at each peak rate (Adam, one cycle) and
    return ``{rate: validation accuracy}``. The same seed gives every run the same initial weights
    and the same batches, so only the rate differs.
    """
    from vgg_helpers.data import make_dataset

    rates = [float(r) for r in rates]
    if not rates or min(rates) <= 0:
        raise ValueError(f"rates must be a non-empty list of positive numbers, got {rates}.")
    if steps < 2:
        raise ValueError(f"steps must be at least 2, got {steps}.")
    val_ds = make_dataset(*splits["val"], batch_size=1000)
    results = {}
    for rate in rates:
        keras.utils.set_random_seed(seed)
        model = build()
        compile_classifier(model, keras.optimizers.Adam(warmup_cosine(rate, steps)))
        train_ds = training_dataset(*splits["train"], batch_size=batch_size, augment=False, seed=seed).repeat()
        model.fit(train_ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        results[rate] = float(model.evaluate(val_ds, verbose=0, return_dict=True)["accuracy"])
        del model
    return results
