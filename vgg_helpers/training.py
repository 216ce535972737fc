"""Training: compiling, the one-cycle schedule, timing steps, short instrumented runs, sizing notebook 04's run
to the machine (``plan_training``) and test-accuracy curves (``train_and_evaluate``, notebooks 06 and 08)."""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np


def compile_classifier(model: keras.Model, optimizer="adam", metrics=("accuracy",), jit_compile="auto", loss=None) -> keras.Model:
    """Compile for 10-class digits: the model outputs logits, labels are integers (``loss`` replaces that
    sparse cross-entropy of logits). ``jit_compile`` as Keras' (``"auto"``: no XLA on a CPU)."""
    model.compile(
        optimizer=optimizer,
        loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=list(metrics),
        jit_compile=jit_compile,
    )
    # Create the optimizer's slots now, eagerly. Left to the first training step, they are created
    # inside tf.function, and each compile + fit of the ×1/8 VGG kept 65 MB instead of 45 MB
    # (docs/benchmarks.md, "Memory").
    model.optimizer.build(model.trainable_variables)
    # The same for the metrics' variables: Keras (TensorFlow backend, no distribution strategy) creates them
    # while it traces the first training step, and a tf.function that creates variables is traced a second
    # time, so every first step paid twice the tracing (docs/benchmarks.md, "Tracing the training step").
    if metrics and None not in model.input_shape[1:]:
        x = keras.ops.zeros((1, *model.input_shape[1:]))
        model.compute_metrics(x, keras.ops.zeros((1,), dtype="int32"), model(x, training=False))
        model.reset_metrics()
    return model


def warmup_cosine(learning_rate: float, total_steps: int, warmup_steps: int | None = None):
    """One cycle: linear warm-up from ``learning_rate / 10`` to ``learning_rate``, then cosine decay to
    ``learning_rate / 100``. The warm-up lasts a quarter of the run unless ``warmup_steps`` says otherwise.

    The warm-up lets a high peak rate through the first steps, when BatchNorm's statistics and
    Adam's moment estimates are still settling; the decay ends the run with small steps (notebook 04,
    section 5).
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


# --- Sizing training to the machine (notebook 04) ------------------------------------------

#: What notebook 04's training reaches, by epochs at the cpu budget's width (×1/8) (docs/benchmarks.md): the
#: test accuracy that a plan of that many epochs promises, and asserts. 2 epochs: five runs, every one above
#: 99.0%; 6 epochs with augmentation: one 6-epoch run (seed 0, 99.51%) and two 8-epoch runs (99.49% each).
CPU_PROMISES = ((6, 0.993), (2, 0.990))
#: The training time notebook 04 aims at on a CPU, in seconds.
CPU_TRAINING_SECONDS = 300
#: From this many epochs on, notebook 04's plan augments the training images (shifts and rotations).
AUGMENT_FROM_EPOCHS = 6


@dataclasses.dataclass(frozen=True)
class TrainingPlan:
    """How notebook 04 trains on this machine: sizes chosen from a measured speed."""

    width: float
    epochs: int
    augment: bool  #: shifts and rotations (worth it in longer runs; short runs learn faster without)
    learning_rate: float  #: the one-cycle schedule's peak
    images_per_second: float  #: measured training speed at ``width``
    train_examples: int
    target: float | None  #: the test accuracy this plan promises (None: a smoke run, no promise)
    seconds_allowed: float
    val_examples: int = 0

    @property
    def seconds(self) -> float:
        """Predicted time of ``fit``: the training images, the validation pass after each epoch (prediction
        only: about a third of a training step's work per image) and about 10 s of tracing."""
        return self.epochs * (self.train_examples + self.val_examples / 3) / self.images_per_second + 10

    def __str__(self) -> str:
        promise = f"; it should reach {self.target:.1%} test accuracy" if self.target else ""
        over = (
            f" (more than the {self.seconds_allowed / 60:.0f} minutes aimed at: this machine is slower than that plan needs)"
            if self.seconds > 1.2 * self.seconds_allowed
            else ""
        )
        return (
            f"this machine: {self.images_per_second:,.0f} images/s at width ×{self.width:g}; training {self.epochs} "
            f"epoch{'s' if self.epochs != 1 else ''} of {self.train_examples:,} images at width ×{self.width:g}"
            f"{' with augmentation' if self.augment else ''}: about {self.seconds / 60:.1f} minutes{over}{promise}"
        )


def size_training(
    budget,
    images_per_second: float,
    train_examples: int,
    seconds: float = CPU_TRAINING_SECONDS,
    val_examples: int = 0,
    augmented_images_per_second: float | None = None,
) -> TrainingPlan:
    """The plan for a measured speed (pure arithmetic: tested with made-up speeds).

    cpu budget: as many epochs at width ×1/8 as fit in ``seconds``, at least the fewest that keep the promise
    of :data:`CPU_PROMISES` (a slow machine then takes longer, and the plan says so) and at most the budget's
    epochs; augmentation from 6 epochs on. Augmentation slows training down, so a plan that would augment is
    sized again at ``augmented_images_per_second`` (the speed with augmentation, when measured): if six epochs
    still fit, it augments at that speed, else it trains five epochs without augmentation.
    gpu and fast budgets: their fixed sizes.
    """
    if not images_per_second > 0 or train_examples < 1:
        raise ValueError(f"need a positive speed and training set, got {images_per_second} images/s and {train_examples} images.")
    if budget.name != "cpu":
        target = 0.996 if budget.name == "gpu" else None
        return TrainingPlan(
            budget.width, budget.epochs, budget.name == "gpu", 0.01, images_per_second, train_examples, target, seconds,
            val_examples,
        )  # fmt: skip
    fewest = min(epochs for epochs, _ in CPU_PROMISES)

    def fitting(speed):
        return max(fewest, min(int((seconds - 10) * speed // (train_examples + val_examples / 3)), budget.epochs))

    epochs, speed = fitting(images_per_second), images_per_second
    if epochs >= AUGMENT_FROM_EPOCHS and augmented_images_per_second is not None:
        if fitting(augmented_images_per_second) >= AUGMENT_FROM_EPOCHS:
            epochs, speed = fitting(augmented_images_per_second), augmented_images_per_second
        else:
            epochs = AUGMENT_FROM_EPOCHS - 1  # six augmented epochs do not fit: the most that fit without
    target = max(accuracy for least, accuracy in CPU_PROMISES if epochs >= least)
    augment = epochs >= AUGMENT_FROM_EPOCHS
    return TrainingPlan(
        budget.width, epochs, augment, 0.01 if augment else 0.02, speed, train_examples, target, seconds, val_examples
    )


class StepClock(keras.callbacks.Callback):
    """The time from the end of training step ``start_after`` to the end of the last step: the steps alone,
    without building the input pipeline before them or tearing it down after them (which, with tf.data's
    autotuning on, can add seconds that have nothing to do with the model: docs/benchmarks.md)."""

    def __init__(self, start_after: int):
        super().__init__()
        self.start_after = start_after
        self.start = self.end = None
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        now = time.perf_counter()
        if batch + 1 == self.start_after:
            self.start, self.steps = now, 0
        elif self.start is not None:
            self.end, self.steps = now, self.steps + 1

    @property
    def seconds(self) -> float:
        if self.start is None or self.end is None:
            raise ValueError("no steps were timed: fit must run more than start_after steps")
        return self.end - self.start


def measure_training_speed(
    model: keras.Model,
    x,
    y,
    batch_size: int = 128,
    steps: int = 10,
    augment: bool = False,
    warmup_steps: int = 1,
    jit_compile="auto",
) -> float:
    """Images per second of ``model.fit`` on this machine: ``steps`` steps of the real pipeline after
    ``warmup_steps`` (the first traces the step), timed from step to step by :class:`StepClock`. A few
    seconds at the cpu budget's width. The model is left as it was (``jit_compile`` as
    :func:`compile_classifier`'s)."""
    from vgg_helpers.data import training_dataset

    if steps < 1 or warmup_steps < 1:
        raise ValueError(f"steps and warmup_steps must be at least 1, got {steps} and {warmup_steps}.")
    weights = model.get_weights()
    ds = training_dataset(x[: batch_size * (steps + 1)], y[: batch_size * (steps + 1)], batch_size, augment=augment).repeat()
    compile_classifier(model, keras.optimizers.Adam(1e-3), metrics=("accuracy",), jit_compile=jit_compile)
    clock = StepClock(start_after=warmup_steps)
    model.fit(ds, steps_per_epoch=warmup_steps + steps, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    model.set_weights(weights)
    return clock.steps * batch_size / clock.seconds


def plan_training(budget, model: keras.Model, splits: dict, seconds: float = CPU_TRAINING_SECONDS) -> TrainingPlan:
    """Measure ``model``'s training speed here and size notebook 04's training with :func:`size_training`; where
    the plan would augment, the speed with augmentation is measured too, and the plan sized with it."""
    x, y = splits["train"]
    steps, val_examples = (5 if budget.name == "fast" else 10), len(splits["val"][0])
    speed = measure_training_speed(model, x, y, steps=steps)
    plan = size_training(budget, speed, len(x), seconds, val_examples=val_examples)
    if budget.name == "cpu" and plan.augment:
        augmented = measure_training_speed(model, x, y, steps=steps, augment=True)
        plan = size_training(budget, speed, len(x), seconds, val_examples, augmented_images_per_second=augmented)
    return plan


# --- Test-accuracy curves (notebooks 06 and 08) ---------------------------------------------------------


def _check_splits(splits: dict, names) -> None:
    from vgg_helpers.data import check_images

    for name in names:
        if name not in splits:
            raise ValueError(f"splits has no {name!r} set; pass the dict vgg_helpers.data.mnist_splits returns.")
        check_images(*splits[name], what=f"{name} images")


@dataclasses.dataclass
class TrainingCurve:
    """Test accuracy along one training run, measured at regular intervals off the training clock."""

    name: str
    accuracies: list  #: test accuracy after each evaluation interval
    interval_seconds: list  #: training seconds of each evaluation interval
    steps_per_eval: int  #: training steps between two evaluations
    batch_size: int
    train_examples: int  #: images in one pass over the training set (its last batch may be smaller)

    @property
    def examples_seen(self) -> np.ndarray:
        """Training images seen at each evaluation, the smaller last batch of each pass counted as it is."""
        steps = self.steps_per_eval * np.arange(1, len(self.accuracies) + 1)
        return images_after(steps, self.batch_size, self.train_examples)

    @property
    def elapsed_seconds(self) -> np.ndarray:
        """Training seconds at each evaluation."""
        return np.cumsum(self.interval_seconds)

    @property
    def train_seconds(self) -> float:
        """Training seconds in all, evaluations excluded."""
        return float(np.sum(self.interval_seconds))

    @property
    def images_per_second(self) -> float:
        """Training speed over the whole run, evaluations excluded."""
        return float(self.examples_seen[-1]) / self.train_seconds


def images_after(steps, batch_size: int, train_examples: int):
    """Training images in the first ``steps`` batches of a repeated pass over ``train_examples`` images,
    whose last batch holds what is left (``steps`` may be an array)."""
    if batch_size < 1 or train_examples < 1:
        raise ValueError(f"need a batch size and a training set of at least 1, got {batch_size} and {train_examples}.")
    per_pass = -(-train_examples // batch_size)
    passes, rest = np.divmod(steps, per_pass)
    return passes * train_examples + np.minimum(rest * batch_size, train_examples)


class TestAccuracyClock(keras.callbacks.Callback):
    """Training time of each Keras "epoch" (here: one evaluation interval) and the test accuracy after it,
    evaluated off the clock. ``report(interval, seconds, accuracy)``, if given, is called after each."""

    def __init__(self, test_ds, report=None):
        super().__init__()
        self.test_ds, self.report = test_ds, report
        self.seconds: list[float] = []
        self.accuracies: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.accuracies.append(float(self.model.evaluate(self.test_ds, verbose=0, return_dict=True)["accuracy"]))
        if self.report is not None:
            self.report(epoch + 1, float(np.sum(self.seconds)), self.accuracies[-1])


def train_and_evaluate(
    name,
    model,
    splits,
    epochs,
    batch_size,
    learning_rate,
    schedule,
    evals_per_epoch=8,
    report=None,
    *,
    compile=None,
    callbacks=(),
) -> TrainingCurve:
    """Train ``model`` for ``epochs`` passes (no augmentation), measuring the test accuracy ``evals_per_epoch``
    times per pass off the clock. ``schedule`` is "one-cycle" (:func:`warmup_cosine`), "constant", or a function
    ``(learning_rate, total_steps)`` that returns the rate or schedule. ``compile(model, rate_or_schedule)``
    compiles the model (by default :func:`compile_classifier` with Adam); ``callbacks`` run before each
    evaluation; ``report(name, interval, seconds, accuracy)`` is called after it."""
    from vgg_helpers.data import make_dataset, training_dataset

    if epochs <= 0 or evals_per_epoch < 1:
        raise ValueError(f"epochs must be positive and evals_per_epoch at least 1, got {epochs} and {evals_per_epoch}.")
    schedules = {"one-cycle": warmup_cosine, "constant": lambda rate, total: rate}
    if not callable(schedule) and schedule not in schedules:
        raise ValueError(f"schedule must be 'one-cycle', 'constant' or a function, got {schedule!r}.")
    _check_splits(splits, ("train", "test"))
    train_ds = training_dataset(*splits["train"], batch_size=batch_size, augment=False).repeat()
    test_ds = make_dataset(*splits["test"], batch_size=1000)
    train_examples = len(splits["train"][0])
    steps_per_epoch = int(np.ceil(train_examples / batch_size))
    interval = int(np.ceil(steps_per_epoch / evals_per_epoch))
    intervals = max(1, int(round(epochs * evals_per_epoch)))  # about `epochs` passes, an evaluation every `interval` steps
    make_rate = schedule if callable(schedule) else schedules[schedule]
    rate = make_rate(learning_rate, interval * intervals)
    if compile is None:
        compile_classifier(model, keras.optimizers.Adam(rate))
    else:
        compile(model, rate)
    clock = TestAccuracyClock(test_ds, report=None if report is None else lambda *a: report(name, *a))
    model.fit(train_ds, steps_per_epoch=interval, epochs=intervals, shuffle=False, verbose=0, callbacks=[*callbacks, clock])
    return TrainingCurve(name, clock.accuracies, clock.seconds, interval, batch_size, train_examples)
