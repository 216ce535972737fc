"""Exercise self-checks: pass on the solution, report an empty answer, reject a wrong one."""

import keras
import numpy as np
import pytest

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


def conv_stack(*kernels):
    return keras.Sequential(
        [keras.Input((28, 28, 1))] + [keras.layers.Conv2D(8, k, padding="same", activation="relu") for k in kernels]
    )


CASES = [
    # key, context, right answer, wrong answer
    ("00-rarest-digit", {"y_train": Y}, 0, 6),
    ("00-mean-pixel", {"x_train": X}, float(X.mean() / 255), float(X.mean())),
    ("01-block3-params", {}, (9 * 128 * 256 + 256) + 2 * (9 * 256 * 256 + 256), 9 * 128 * 256 + 2 * 9 * 256 * 256),
    ("01-gap-params", {}, 138_357_544 - 102_764_544 + 512 * 4096 + 4096, 138_357_544),
    ("01-receptive-field", {}, 11, 10),
    ("02-pool8-macs", {}, 471_696_384, 744_195_072),
    ("02-two-conv-level", {}, conv_stack(3, 3), conv_stack(3)),
    ("03-he-stddev", {}, float(np.sqrt(2 / 2304)), 0.01),
    ("03-logit-scale", {"measured": 9.66e5}, 1.31e6, 4.1e3),
    ("04-steps-per-epoch", {"n_train": 55_000, "batch_size": 128}, 430, 429),
    ("04-most-confused", {"labels": LABELS, "predictions": PREDICTED}, (4, 9), (7, 1)),
    ("04-top2-accuracy", {"probabilities": PROBS, "labels": LABELS}, 0.875, 0.625),
    ("05-adam-megabytes", {"params": 52_446_922}, 419.575376, 629.363064),
    ("06-alexnet-params", {}, 5_624_842, 5_624_842 - 10_250),
    ("06-best-network", {"final": {"VGG (fixed)": 0.98, "AlexNet (original)": 0.9}}, "VGG (fixed)", "AlexNet (original)"),
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
    assert exercises.check(key, None, **context) is False
    assert "not answered yet" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="Hint|close"):
        exercises.check(key, wrong, **context)


def test_every_registered_exercise_is_tested():
    assert {case[0] for case in CASES} == set(exercises._CHECKERS)


def test_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise called"):
        exercises.check("99-nothing", 1)
