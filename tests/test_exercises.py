"""Exercise self-checks: each passes its solution, reports an empty answer, and fails the natural mistakes and
shortcuts of its exercise with a hint, printed, not a traceback."""

import json
import os
import subprocess
import sys
from types import SimpleNamespace

import keras
import numpy as np
import pytest
import tensorflow as tf

from vgg_helpers import exercises

Y = np.array([0, 1, 1, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 9] * 2)
X = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)

# 8 test images: two 4→9 mistakes, one 7→1; the label of 3 of the 8 comes second, of 1 comes third
LABELS = np.array([4, 4, 7, 0, 1, 2, 3, 5])
PREDICTED = np.array([9, 9, 1, 0, 1, 2, 3, 6])
PROBS = np.full((8, 10), 0.01)
PROBS[np.arange(8), PREDICTED] = 0.6
PROBS[[0, 1, 2], LABELS[[0, 1, 2]]] = 0.3
PROBS[7, LABELS[7]] = 0.02
PROBS[7, 8] = 0.3


@pytest.fixture(autouse=True)
def first_try():
    """Every test starts as a learner's first try of each exercise."""
    exercises._WRONG_TRIES.clear()
    yield
    exercises._WRONG_TRIES.clear()


def fixed_level(use_bias=False, relu=keras.layers.ReLU):
    inputs = keras.Input((28, 28, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=use_bias, kernel_initializer="he_normal")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, relu()(x))


class StopAt(keras.callbacks.Callback):
    def __init__(self, threshold):
        super().__init__()
        self.threshold = threshold

    def on_epoch_end(self, epoch, logs=None):
        if (logs or {}).get("val_accuracy", 0.0) >= self.threshold:
            self.model.stop_training = True


class StopAbove(StopAt):  # wrong: reaching the threshold should count
    def on_epoch_end(self, epoch, logs=None):
        if (logs or {}).get("val_accuracy", 0.0) > self.threshold:
            self.model.stop_training = True


class StopAtKeyError(StopAt):  # the natural first try: crashes on logs without val_accuracy
    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] >= self.threshold:
            self.model.stop_training = True


def one_cycle(step, peak, total_steps, warmup_steps):
    if step < warmup_steps:
        return peak / 10 + (peak - peak / 10) * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * progress)))


def linear_cycle(step, peak, total_steps, warmup_steps):  # wrong: a straight line down instead of a cosine
    if step < warmup_steps:
        return one_cycle(step, peak, total_steps, warmup_steps)
    return peak * (1 - 0.99 * (step - warmup_steps) / (total_steps - warmup_steps))


def cosine_decay_cycle(step, peak, total_steps, warmup_steps):  # the shortcut: Keras' schedule does the exercise
    schedule = keras.optimizers.schedules.CosineDecay(
        peak / 10, total_steps - warmup_steps, alpha=0.01, warmup_target=peak, warmup_steps=warmup_steps
    )
    return float(schedule(step))


def conv_stack(*kernels, padding="same"):
    return keras.Sequential(
        [keras.Input((28, 28, 1))] + [keras.layers.Conv2D(8, k, padding=padding, activation="relu") for k in kernels]
    )


def convs_per_block(config):
    row, convs = [], 0
    for layer in config.layers:
        if layer.kind == "conv":
            if layer.kernel != 3:
                raise ValueError("a 1×1 conv")
            convs += 1
        elif layer.kind == "pool":
            row.append(convs)
            convs = 0
    return tuple(row)


def rows_by_name(config):  # the shortcut: looks the row up instead of counting
    return {"E": (2, 2, 4, 4, 4), "D": (2, 2, 3, 3, 3), "B": (2,) * 5}.get(config.name[-1], (1, 1, 2, 2, 2))


def batchnorm(x, gamma, beta, moving_mean, moving_variance, epsilon, training, ddof=0, axes=(0, 1, 2), eps=True):
    mean = x.mean(axis=axes) if training else moving_mean
    variance = x.var(axis=axes, ddof=ddof) if training else moving_variance
    return gamma * (x - mean) / np.sqrt(variance + (epsilon if eps else 0)) + beta


def batchnorm_with_the_layer(x, gamma, beta, moving_mean, moving_variance, epsilon, training):  # the shortcut
    layer = keras.layers.BatchNormalization(epsilon=epsilon)
    layer.build(x.shape)
    layer.set_weights([gamma, beta, moving_mean, moving_variance])
    return layer(x, training=training)


def replica_loss(labels, logits, global_batch_size):
    return keras.ops.sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / global_batch_size


def replica_loss_library(labels, logits, global_batch_size):  # forbidden by the statement
    per_example = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return tf.nn.compute_average_loss(per_example, global_batch_size=global_batch_size)


def speedup_tuple(t, g, n, b):  # the shape of the notebook's own speedup: (speed-up, communication dominates)
    t_comm = 2 * (n - 1) / n * g / b
    return n * t / max(t, t_comm), t_comm > t


# Fashion-MNIST test labels and a network's predictions: Coat (4) → Pullover (2) 4 times, the largest mix-up in one
# direction; Shirt (6) → T-shirt/top (0) 3 times and back 2 times, 5 in both directions, the largest pair
FASHION_LABELS = np.array([6, 6, 6, 0, 0, 4, 4, 4, 4, 1, 1])
FASHION_PREDICTED = np.array([0, 0, 0, 6, 6, 2, 2, 2, 2, 1, 1])
GLOBAL_BATCH = {"replicas": 8, "per_replica_batch": 128, "base_rate": 0.1, "base_batch": 256}

# key, context, right answer, [(wrong answer, what its message should say), ...]
CASES = [
    ("00-mean-pixel", {"x_train": X}, float(X.mean() / 255), [(float(X.mean()), "outside"), ((0.5, 0.5), "not a number")]),
    (
        "00-test-pipeline",
        {"x_test": X, "y_test": Y[:2]},
        tf.data.Dataset.from_tensor_slices(((X / 255).astype("float32")[..., None], Y[:2].astype("int32"))).batch(500),
        [
            (tf.data.Dataset.from_tensor_slices((X.astype("float32")[..., None], Y[:2].astype("int32"))).batch(500), "255"),
            (tf.data.Dataset.from_tensor_slices(((X / 255).astype("float32"), Y[:2].astype("int32"))).batch(500), "channel"),
        ],
    ),  # fmt: skip
    (
        "01-block3-params",
        {},
        (9 * 128 * 256 + 256) + (9 * 256 * 256 + 256) + (1 * 256 * 256 + 256),
        [((9 * 128 * 256 + 256) + 2 * (9 * 256 * 256 + 256), "D's block"), (9 * 128 * 256 + 9 * 256 * 256 + 256 * 256, "biases")],
    ),
    ("01-gap-params", {}, 138_357_544 - 102_764_544 + 512 * 4096 + 4096, [(138_357_544, "unchanged"), (1.0, "int")]),
    ("01-receptive-field", {}, 11, [(10, "not it")]),
    ("02-pool8-macs", {}, 471_696_384, [(744_195_072, "pools after 2, 4 and 12")]),
    (
        "02-two-conv-level",
        {},
        conv_stack(3, 3),
        [(conv_stack(3), "1 Conv2D"), (conv_stack(3, 3, padding="valid"), "padding='valid'"), (conv_stack(5, 3), "3×3")],
    ),
    ("02-lrn-cap", {}, 52.17, [(58.86, "alexnet.py"), (23.33, "all five"), (200.0, "input at which"), (50.0, "not it")]),
    (
        "03-he-stddev",
        {},
        float(np.sqrt(2 / 2304)),
        [(float(np.sqrt(1 / 2304)), "linear layer"), (2 / 2304, "variance"), (0.03, "two significant figures")],
    ),
    (
        "03-logit-scale",
        {"measured": 9.68e5},
        1.31e6,  # two significant figures of 1,310,720 are enough
        [
            (9.68e5, "measurement"),
            (2.62e6, "without halving"),
            (9.27e5, "ReLU on the logits"),
            (1.45e6, "not it"),
            (6.4e2, "first dense layer"),
            (1e6, "not it"),
        ],
    ),  # fmt: skip
    (
        "03-fixed-level",
        {},
        fixed_level(),
        [(fixed_level(use_bias=True), "bias"), (fixed_level(relu=lambda: keras.layers.Activation("tanh")), "layers are")],
    ),
    (
        "03-batchnorm-by-hand",
        {},
        batchnorm,
        [
            (lambda *a: batchnorm(*a[:-1], training=True), "batch's own statistics"),
            (lambda *a: batchnorm(*a[:-1], training=False), "moving statistics"),
            (lambda *a: batchnorm(*a, ddof=1), "N − 1"),
            (lambda *a: batchnorm(*a, eps=False), "epsilon"),
            (lambda *a: batchnorm(*a, axes=0), "one per pixel"),
            (batchnorm_with_the_layer, "calls BatchNormalization.call"),
        ],
    ),  # fmt: skip
    (
        "04-stop-at",
        {},
        StopAt,
        [(StopAbove, "did not stop"), (StopAtKeyError, "KeyError"), (StopAt(0.9), "not a callback class")],
    ),
    (
        "04-top2-accuracy",
        {"probabilities": PROBS, "labels": LABELS},
        0.875,
        [(0.5, "top-1"), (87.5, "percent"), (0.625, "not it")],
    ),
    ("04-one-cycle", {}, one_cycle, [(linear_cycle, "decay"), (cosine_decay_cycle, "CosineDecay.__call__")]),
    (
        "05-placeholder-feed",
        {"digits": np.linspace(0, 1, 7 * 784, dtype=np.float32).reshape(7, 784)},
        lambda: (p := tf.compat.v1.placeholder(tf.float32, [None, 784]), tf.reduce_mean(p, axis=1)),
        [
            (lambda: (p := tf.compat.v1.placeholder(tf.float32, [None, 784]), tf.reduce_mean(p)), "shape"),
            (lambda: (p := tf.compat.v1.placeholder(tf.float32, [7, 784]), tf.reduce_mean(p, axis=1)), "[None, 784]"),
        ],
    ),  # fmt: skip
    (
        "05-he-variable",
        {},
        lambda c_in, c_out: tf.Variable(tf.random.normal([3, 3, c_in, c_out], stddev=(2 / (9 * c_in)) ** 0.5)),
        [
            (lambda c_in, c_out: tf.Variable(tf.random.normal([3, 3, c_in, c_out])), "blog's standard deviation"),
            (lambda c_in, c_out: tf.Variable(tf.random.normal([3, 3, c_in, c_out], stddev=(1 / (9 * c_in)) ** 0.5)), "linear"),
        ],
    ),  # fmt: skip
    (
        "06-batchnorm-convnet",
        {},
        keras.Sequential(
            [keras.Input((28, 28, 1))]
            + [
                layer
                for filters in (32, 64)
                for layer in (
                    keras.layers.Conv2D(filters, 3, use_bias=False),
                    keras.layers.BatchNormalization(),
                    keras.layers.Activation("relu"),
                    keras.layers.MaxPooling2D(2),
                )
            ]
            + [keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10)]
        ),
        [
            (
                keras.Sequential(  # Keras' example as it is: no BatchNorm
                    [keras.Input((28, 28, 1))]
                    + [
                        layer
                        for filters in (32, 64)
                        for layer in (keras.layers.Conv2D(filters, 3, activation="relu"), keras.layers.MaxPooling2D(2))
                    ]
                    + [keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10)]
                ),
                "not BatchNormalization",
            )
        ],
    ),  # fmt: skip
    (
        "06-cell-spread",
        {
            "results": {
                "deep": [SimpleNamespace(accuracies=a) for a in ([0.5, 0.9, 0.8], [0.6, 0.7, 0.9])],
                "shallow": [SimpleNamespace(accuracies=[0.2, 0.4])],
            }
        },
        lambda curves: (
            np.mean([c.accuracies[-1] for c in curves]),
            min(c.accuracies[-1] for c in curves),
            max(c.accuracies[-1] for c in curves),
        ),
        [
            (
                lambda curves: (
                    np.mean([max(c.accuracies) for c in curves]),
                    min(max(c.accuracies) for c in curves),
                    max(max(c.accuracies) for c in curves),
                ),
                "best accuracies",
            ),
            (
                lambda curves: tuple(
                    100 * v
                    for v in (
                        np.mean([c.accuracies[-1] for c in curves]),
                        min(c.accuracies[-1] for c in curves),
                        max(c.accuracies[-1] for c in curves),
                    )
                ),
                "percent",
            ),
        ],
    ),  # fmt: skip
    (
        "07-global-batch",
        GLOBAL_BATCH,
        (1024, 0.4),
        [
            ((1024, 0.8), "number of GPUs"),
            ((1024, 0.1), "unchanged"),
            ((0.4, 1024), "swapped"),
            ((1024.5, 0.4), "whole"),
            ((512, 0.4), "512 is not the global batch"),
            ((1024, 0.2), "square-root"),
            (1024, "tuple"),
        ],
    ),  # fmt: skip
    (
        "07-replica-loss",
        {"global_batch_size": 128},
        replica_loss,
        [
            (
                lambda labels, logits, n: keras.ops.mean(
                    keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
                ),
                "mean over this replica",
            ),
            (replica_loss_library, "compute_average_loss"),
        ],
    ),  # fmt: skip
    (
        "07-overlap-speedup",
        {},
        lambda t, g, n, b: n * t / max(t, 2 * (n - 1) / n * g / b),
        [(lambda t, g, n, b: n * t / (t + 2 * (n - 1) / n * g / b), "without overlap"), (speedup_tuple, "tuple")],
    ),
    ("08-row-rule", {"table": {"E": (2, 2, 4, 4, 4)}}, convs_per_block, [(rows_by_name, "convs per block")]),
    (
        "08-most-confused",
        {"labels": FASHION_LABELS, "predictions": FASHION_PREDICTED},
        {"Shirt", "T-shirt/top"},
        [({"Coat", "Pullover"}, "one direction"), ({6, 0}, "labels")],
    ),
]
SLOW = {"04-fit-small": "test_fit_small", "07-train-step": "test_train_step"}  # tested below, with training


@pytest.mark.parametrize("key, context, right, wrongs", CASES, ids=[case[0] for case in CASES])
def test_checks(key, context, right, wrongs, capsys):
    assert exercises.check(key, None, **context) is None  # a check cell shows the message, not a stray False
    assert "not answered yet" in capsys.readouterr().out
    for wrong, message in wrongs:
        assert exercises.check(key, wrong, **context) is False, (key, wrong)
        out = capsys.readouterr().out
        assert "✗ not yet" in out and "Hint:" in out and "Traceback" not in out, out
        assert message is None or message in out, (message, out)
    assert exercises.check(key, right, **context) is True
    assert "✓" in capsys.readouterr().out


def test_every_registered_exercise_is_tested():
    assert {case[0] for case in CASES} | set(SLOW) == set(exercises._CHECKERS)


def test_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise called"):
        exercises.check("99-nothing", 1)


def test_the_second_wrong_try_says_how(capsys):
    """The first hint names the idea; from the second wrong try on it also gives the formula."""
    assert exercises.check("03-he-stddev", 0.5) is False
    first = capsys.readouterr().out
    assert "Hint: Var[y] = n_in · Var[w] · E[x²]" in first and "How:" not in first and "second wrong answer" in first
    assert exercises.check("03-he-stddev", 0.4) is False
    assert "How: n_in = 3·3·256" in capsys.readouterr().out


def test_a_top2_accuracy_near_one_needs_its_error_rate_to_two_figures(capsys):
    """0.9987 is 1.0 to two significant figures: near 1 the check compares the error rate instead."""
    labels = np.arange(10_000) % 10
    probabilities = np.eye(10)[labels]
    probabilities[13:113] = np.eye(10)[(labels[13:113] + 1) % 10] + 0.5 * np.eye(10)[labels[13:113]]  # second choice
    probabilities[:13] = np.eye(10)[(labels[:13] + 5) % 10] + 0.5 * np.eye(10)[(labels[:13] + 6) % 10]  # not in the top two
    context = {"probabilities": probabilities, "labels": labels}
    assert exercises.check("04-top2-accuracy", 0.9987, **context) and exercises.check("04-top2-accuracy", 0.99870001, **context)
    assert exercises.check("04-top2-accuracy", 1.0, **context) is False
    assert "not precise enough" in capsys.readouterr().out
    assert exercises.check("04-top2-accuracy", 0.999, **context) is False


def test_rounded_answers():
    """Two significant figures pass; one does not, and an answer near it is told how precise to be."""
    assert exercises.agrees(1.3e6, 1_310_720) and exercises.agrees(0.0295, float(np.sqrt(2 / 2304)))
    assert not exercises.agrees(1e6, 1_310_720) and not exercises.agrees(1.33e6, 1_310_720)
    with pytest.raises(exercises.Wrong, match="two significant figures"):
        exercises.expect_value(1.33e6, 1_310_720, {}, "concept", "how")


def test_forbidden_calls_are_restored():
    with exercises.forbidden((keras.optimizers.schedules.CosineDecay, "__call__"), (tf.nn, "compute_average_loss"), why="w"):
        with pytest.raises(exercises.Wrong):
            tf.nn.compute_average_loss(tf.ones(2), global_batch_size=2)
    assert float(keras.optimizers.schedules.CosineDecay(1.0, 10)(0)) == 1.0
    assert float(tf.nn.compute_average_loss(tf.ones(2), global_batch_size=2)) == 1.0


def test_an_activation_layer_is_a_relu_layer(capsys):
    """Activation("relu") after BatchNorm is the fix as much as ReLU() is."""
    assert exercises.check("03-fixed-level", fixed_level(relu=lambda: keras.layers.Activation("relu"))) is True
    assert exercises.check("03-he-stddev", 0.029) is True  # two significant figures are enough


def test_two_conv_level_measures_the_field():
    assert exercises.measured_receptive_field(conv_stack(3, 3, 3)) == 7
    assert exercises.measured_receptive_field(conv_stack(5)) == 5


# --- 04-fit-small: trains a small network three times per answer (a few seconds each) --------------------


def make_train_small(backup=True, pass_callbacks=True, from_logits=True, stop=True, schedule=one_cycle, validate=True):
    epochs, peak = exercises.FIT_SMALL["epochs"], exercises.FIT_SMALL["peak"]

    def train_small(model, train, val, backup_dir, stop_at, callbacks=()):
        model.compile(optimizer=keras.optimizers.Adam(), metrics=["accuracy"],
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits))  # fmt: skip
        own = [keras.callbacks.LearningRateScheduler(lambda epoch, lr: float(schedule(epoch, peak, epochs, 1)))]
        own += [StopAt(stop_at)] if stop else []
        own += [keras.callbacks.BackupAndRestore(backup_dir)] if backup else []
        return model.fit(*train, validation_data=val if validate else None, epochs=epochs, batch_size=64, verbose=0,
                         callbacks=own + (list(callbacks) if pass_callbacks else []))  # fmt: skip

    return train_small


@pytest.fixture(scope="module")
def small_data():
    from conftest import tiny_splits

    splits = tiny_splits(n_train=384, n_val=128, n_test=1)
    return {"train": splits["train"], "val": splits["val"]}


def test_fit_small(small_data, capsys):
    check = exercises._CHECKERS["04-fit-small"]
    check(make_train_small(), **small_data)
    assert "resumed at epoch 3 after a crash" in capsys.readouterr().out
    for wrong, message in [
        (dict(backup=False), "holds no backup"),
        (dict(pass_callbacks=False), "finished although"),
        (dict(from_logits=False), "logits"),
        (dict(stop=False), "went on for"),
        (dict(schedule=linear_cycle), "learning rates"),
        (dict(validate=False), "val_accuracy"),
        (dict(schedule=cosine_decay_cycle), "CosineDecay"),
    ]:
        with pytest.raises(exercises.Wrong, match=message):
            check(make_train_small(**wrong), **small_data)


# --- 07-train-step: needs two replicas, so it runs in a process whose CPU is split in two ----------------

TRAIN_STEP = """
import json, os
os.environ["VGG_LOGICAL_CPUS"] = "2"
import vgg_helpers as vh
import keras, numpy as np, tensorflow as tf
strategy = tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
rng = np.random.default_rng(0)
images, labels = rng.integers(0, 256, (64, 28, 28)).astype("uint8"), rng.integers(0, 10, 64)


def answer(divide_by_global=True, reduce="SUM", library=False, count=True):
    def make_my_step(strategy, model, optimizer, global_batch):
        def replica_step(x, y):
            with tf.GradientTape() as tape:
                logits = model(x, training=True)
                per_example = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
                if library:
                    loss = tf.nn.compute_average_loss(per_example, global_batch_size=global_batch)
                else:
                    loss = keras.ops.sum(per_example) / (global_batch if divide_by_global else tf.cast(tf.shape(x)[0], "float32"))
            gradients = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            right = keras.ops.sum(keras.ops.cast(keras.ops.argmax(logits, axis=1) == tf.cast(y, "int32"), "float32"))
            return loss, right

        @tf.function
        def step(batch):
            loss, right = strategy.run(replica_step, args=batch)
            if reduce == "NONE":
                return loss, right
            op = getattr(tf.distribute.ReduceOp, reduce)
            total = strategy.reduce(op, loss, axis=None)
            return total, strategy.reduce(op, right, axis=None) if count else total

        return step

    return make_my_step


results = {}
for name, kwargs in [("right", {}), ("per-replica mean", {"divide_by_global": False}), ("reduce mean", {"reduce": "MEAN"}),
                     ("no reduce", {"reduce": "NONE"}), ("library", {"library": True}), ("no count", {"count": False})]:
    vh.exercises._WRONG_TRIES.clear()
    try:
        vh.exercises._CHECKERS["07-train-step"](answer(**kwargs), strategy=strategy, images=images, labels=labels)
        results[name] = "passed"
    except vh.exercises.Wrong as wrong:
        results[name] = wrong.what
print(json.dumps(results))
"""


def test_train_step(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run([sys.executable, "-c", TRAIN_STEP], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout.strip().splitlines()[-1])
    assert results.pop("right") == "passed"
    assert "2 times as far" in results["per-replica mean"]
    assert "loss" in results["reduce mean"] and "one value per replica" in results["no reduce"]
    assert "compute_average_loss" in results["library"] and "images right" in results["no count"]
