"""Exercise self-checks: pass on the solution, report an empty answer, reject a wrong one."""

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


def fixed_level(use_bias=False, relu_layer=True):
    inputs = keras.Input((28, 28, 8))
    x = keras.layers.Conv2D(16, 3, padding="same", use_bias=use_bias, kernel_initializer="he_normal")(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.ReLU()(x) if relu_layer else x)


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


def one_cycle(step, peak, total_steps, warmup_steps):
    if step < warmup_steps:
        return peak / 10 + (peak - peak / 10) * step / warmup_steps
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return peak * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * progress)))


def linear_cycle(step, peak, total_steps, warmup_steps):  # wrong: a straight line down instead of a cosine
    if step < warmup_steps:
        return one_cycle(step, peak, total_steps, warmup_steps)
    return peak * (1 - 0.99 * (step - warmup_steps) / (total_steps - warmup_steps))


def conv_stack(*kernels):
    return keras.Sequential(
        [keras.Input((28, 28, 1))] + [keras.layers.Conv2D(8, k, padding="same", activation="relu") for k in kernels]
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


# Fashion-MNIST test labels and a network's predictions: Coat (4) → Pullover (2) 4 times, the largest mix-up in one
# direction; Shirt (6) → T-shirt/top (0) 3 times and back 2 times, 5 in both directions, the largest pair
FASHION_LABELS = np.array([6, 6, 6, 0, 0, 4, 4, 4, 4, 1, 1])
FASHION_PREDICTED = np.array([0, 0, 0, 6, 6, 2, 2, 2, 2, 1, 1])

CASES = [
    # key, context, right answer, wrong answer
    ("00-mean-pixel", {"x_train": X}, float(X.mean() / 255), float(X.mean())),
    ("08-row-rule", {"table": {"E": (2, 2, 4, 4, 4)}}, convs_per_block, rows_by_name),
    (
        "08-most-confused",
        {"labels": FASHION_LABELS, "predictions": FASHION_PREDICTED},
        {"Shirt", "T-shirt/top"},
        {"Coat", "Pullover"},  # one direction only
    ),
    (
        "00-test-pipeline",
        {"x_test": X, "y_test": Y[:2]},
        tf.data.Dataset.from_tensor_slices(((X / 255).astype("float32")[..., None], Y[:2].astype("int32"))).batch(500),
        tf.data.Dataset.from_tensor_slices((X.astype("float32")[..., None], Y[:2].astype("int32"))).batch(500),
    ),
    (
        "01-block3-params",
        {},
        (9 * 128 * 256 + 256) + (9 * 256 * 256 + 256) + (1 * 256 * 256 + 256),
        (9 * 128 * 256 + 256) + 2 * (9 * 256 * 256 + 256),
    ),
    ("01-gap-params", {}, 138_357_544 - 102_764_544 + 512 * 4096 + 4096, 138_357_544),
    ("01-receptive-field", {}, 11, 10),
    ("02-pool8-macs", {}, 471_696_384, 744_195_072),
    ("02-two-conv-level", {}, conv_stack(3, 3), conv_stack(3)),
    ("02-lrn-cap", {}, 58.857, 19.59),
    ("03-he-stddev", {}, float(np.sqrt(2 / 2304)), 0.01),
    ("03-logit-scale", {"measured": 9.66e5}, 1.31e6, 4.1e3),
    ("03-fixed-level", {}, fixed_level(), fixed_level(use_bias=True)),
    ("04-stop-at", {}, StopAt, StopAbove),
    ("04-one-cycle", {}, one_cycle, linear_cycle),
    ("04-top2-accuracy", {"probabilities": PROBS, "labels": LABELS}, 0.875, 0.625),
    (
        "05-placeholder-feed",
        {"digits": np.linspace(0, 1, 7 * 784, dtype=np.float32).reshape(7, 784)},
        lambda: (p := tf.compat.v1.placeholder(tf.float32, [None, 784]), tf.reduce_mean(p, axis=1)),
        lambda: (p := tf.compat.v1.placeholder(tf.float32, [None, 784]), tf.reduce_mean(p)),
    ),
    (
        "05-he-variable",
        {},
        lambda c_in, c_out: tf.Variable(tf.random.normal([3, 3, c_in, c_out], stddev=(2 / (9 * c_in)) ** 0.5)),
        lambda c_in, c_out: tf.Variable(tf.random.normal([3, 3, c_in, c_out])),
    ),
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
                    keras.layers.ReLU(),
                    keras.layers.MaxPooling2D(2),
                )
            ]
            + [keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10)]
        ),
        keras.Sequential(  # Keras' example as it is: no BatchNorm
            [keras.Input((28, 28, 1))]
            + [
                layer
                for filters in (32, 64)
                for layer in (keras.layers.Conv2D(filters, 3, activation="relu"), keras.layers.MaxPooling2D(2))
            ]
            + [keras.layers.Flatten(), keras.layers.Dropout(0.5), keras.layers.Dense(10)]
        ),
    ),
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
        lambda curves: (
            np.mean([max(c.accuracies) for c in curves]),
            min(max(c.accuracies) for c in curves),
            max(max(c.accuracies) for c in curves),
        ),
    ),
    ("07-global-batch", {"replicas": 8, "per_replica_batch": 128, "base_rate": 0.1, "base_batch": 256}, (1024, 0.4), (1024, 0.1)),
    (
        "07-replica-loss",
        {"global_batch_size": 128},
        lambda labels, logits, global_batch_size: tf.nn.compute_average_loss(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True), global_batch_size=global_batch_size
        ),
        lambda labels, logits, global_batch_size: keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        ),
    ),
    (
        "07-overlap-speedup",
        {},
        lambda t, g, n, b: n * t / max(t, 2 * (n - 1) / n * g / b),
        lambda t, g, n, b: n * t / (t + 2 * (n - 1) / n * g / b),
    ),
]


def test_he_stddev_spots_the_linear_answer():
    with pytest.raises(AssertionError, match="close: that keeps the variance of a linear layer"):
        exercises.check("03-he-stddev", float(np.sqrt(1 / 2304)))


def test_two_conv_level_rejects_5x5_and_measures_the_field():
    with pytest.raises(AssertionError, match="3×3"):
        exercises.check("02-two-conv-level", conv_stack(5, 3))
    assert exercises.measured_receptive_field(conv_stack(3, 3, 3)) == 7
    assert exercises.measured_receptive_field(conv_stack(5)) == 5


@pytest.mark.parametrize("key, context, right, wrong", CASES)
def test_checks(key, context, right, wrong, capsys):
    assert exercises.check(key, right, **context) is True
    assert "✓" in capsys.readouterr().out
    assert exercises.check(key, None, **context) is None  # a check cell shows the message, not a stray False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Hint|close"):
        exercises.check(key, wrong, **context)


def test_every_registered_exercise_is_tested():
    assert {case[0] for case in CASES} == set(exercises._CHECKERS)


def test_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise called"):
        exercises.check("99-nothing", 1)
