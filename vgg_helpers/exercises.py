"""Self-checks for the exercises at the end of each notebook.

An exercise cell leaves its answer as ``None``; the check cell below it calls::

    vh.exercises.check("00-rarest-digit", rarest_digit, y_train=y_train)

which prints "not answered yet" and returns ``False`` for ``None`` (so *Run All* still reaches
the end of the notebook), raises ``AssertionError`` with a hint for a wrong answer, and prints
a tick and returns ``True`` for a right one. Each notebook's hidden solution cell runs the same
check on the solution.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

_CHECKERS: dict[str, Callable[..., None]] = {}


def checker(key: str):
    """Register ``func(answer, **context)`` as the check of exercise ``key``; it raises on a wrong answer."""

    def register(func):
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} is registered twice.")
        _CHECKERS[key] = func
        return func

    return register


def check(key: str, answer, **context) -> bool:
    """Check ``answer`` to exercise ``key``: ``False`` if unanswered, ``AssertionError`` if wrong."""
    if key not in _CHECKERS:
        raise ValueError(f"no exercise called {key!r}; known: {', '.join(sorted(_CHECKERS))}.")
    if answer is None or answer is Ellipsis:
        print(f"{key}: not answered yet. Replace the None above with your answer and run both cells.")
        return False
    _CHECKERS[key](answer, **context)
    print(f"{key}: ✓ correct")
    return True


# --- 00_start_here ------------------------------------------------------------------------------


@checker("00-rarest-digit")
def _rarest_digit(answer, y_train):
    counts = np.bincount(np.asarray(y_train), minlength=10)
    assert isinstance(answer, (int, np.integer)), f"answer with one digit 0-9 as an int, not {answer!r}"
    assert answer == int(counts.argmin()), (
        f"digit {answer} has {counts[answer]:,} training images; another class has fewer. "
        "Hint: np.bincount(y_train) counts the images of each class."
    )


@checker("00-mean-pixel")
def _mean_pixel(answer, x_train):
    expected = float(np.asarray(x_train).mean(dtype=np.float64) / 255.0)  # no 376 MB float copy
    assert 0.0 <= float(answer) <= 1.0, f"{answer} is outside [0, 1]. Hint: the pixels are uint8, 0 to 255; divide by 255."
    assert abs(float(answer) - expected) < 1e-3, (
        f"{float(answer):.4f} is not the mean of the scaled pixels. Hint: x_train.mean() / 255 "
        "(the mean of the scaled pixels, without making a scaled copy of all 47 million)."
    )


# --- 01_vgg_history -----------------------------------------------------------------------------


def _vgg16_table():
    from vgg_helpers.architectures import layer_table, vgg_config

    return layer_table(vgg_config("D"))


@checker("01-block3-params")
def _block3_params(answer):
    convs = [r for r in _vgg16_table() if r.kind == "conv"]
    expected = sum(r.params for r in convs[4:7])  # conv5-7: the three 256-filter convs
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer != expected - 3 * 256, "close: you left out the biases (one per filter)."
    assert answer == expected, (
        f"{answer:,} is not it. Hint: a 3×3 conv from C_in to C_out channels has "
        "3·3·C_in·C_out weights and C_out biases; block 3's first conv takes 128 channels in."
    )


@checker("01-gap-params")
def _gap_params(answer):
    table = _vgg16_table()
    fc1 = next(r for r in table if r.name == "fc1")
    expected = table.total("params") - fc1.params + (512 * 4096 + 4096)
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer == expected, (
        f"{answer:,} is not it. Hint: global average pooling turns the 7×7×512 map into 512 "
        "numbers, so FC1 becomes a 512 → 4096 layer (weights and biases); the rest is unchanged."
    )


@checker("01-receptive-field")
def _receptive_field(answer):
    from vgg_helpers.architectures import receptive_field

    assert answer == receptive_field(5), (
        f"{answer} is not it. Hint: each stride-1 3×3 conv widens the receptive field by 2 pixels."
    )


# --- 02_conv_levels -----------------------------------------------------------------------------


@checker("02-pool8-macs")
def _pool8_macs(answer):
    from vgg_helpers.architectures import blog_vgg, layer_table

    expected = layer_table(blog_vgg(pools=(2, 4, 8))).total("macs")
    assert isinstance(answer, (int, np.integer)), f"answer with an int, not {answer!r}"
    assert answer == expected, (
        f"{answer:,} is not it. Hint: vh.architectures.layer_table(vh.architectures.blog_vgg(pools=...)) "
        "gives the table of any pooling choice; .total('macs') adds it up."
    )


def measured_receptive_field(model, size: int = 15) -> int:
    """Receptive field of a conv stack, measured: ones for kernels, no biases, one bright pixel."""
    import keras

    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    probe = keras.Sequential(
        [keras.Input((size, size, 1))]
        + [
            keras.layers.Conv2D(1, layer.kernel_size, padding="same", use_bias=False, kernel_initializer="ones")
            for layer in convs
        ]
    )
    impulse = np.zeros((1, size, size, 1), dtype="float32")
    impulse[0, size // 2, size // 2, 0] = 1.0
    response = np.asarray(probe(impulse))[0, :, size // 2, 0]
    rows = np.flatnonzero(response)
    return int(rows.max() - rows.min() + 1)


@checker("02-two-conv-level")
def _two_conv_level(answer):
    import keras

    assert isinstance(answer, keras.Model), f"answer with a Keras model, not {type(answer).__name__}"
    convs = [layer for layer in answer.layers if isinstance(layer, keras.layers.Conv2D)]
    assert len(convs) == 2, f"the level should have two Conv2D layers, it has {len(convs)}. Hint: keras.Sequential([...])."
    assert all(tuple(c.kernel_size) == (3, 3) for c in convs), "Hint: both convolutions should be 3×3."
    field = measured_receptive_field(answer)
    assert field == 5, f"its receptive field measures {field}×{field}, not 5×5. Hint: use padding='same' and stride 1."
    print(f"two 3×3 convs: receptive field measured {field}×{field}")


# --- 03_exploding_loss --------------------------------------------------------------------------


@checker("03-he-stddev")
def _he_stddev(answer):
    expected = float(np.sqrt(2.0 / (3 * 3 * 256)))
    assert abs(float(answer) - float(np.sqrt(1.0 / (3 * 3 * 256)))) > 1e-4, (
        "close: that keeps the variance of a linear layer. Hint: a ReLU zeroes half its inputs, "
        "so E[x²] is half of Var[y]: you need twice the variance."
    )
    assert abs(float(answer) - expected) < 1e-4, (
        f"{answer} is not it. Hint: Var[y] = n_in · Var[w] · E[x²] with n_in = 3·3·256 inputs per "
        "output, and after a ReLU E[x²] = Var[y]/2; solve for the std of w."
    )


@checker("03-logit-scale")
def _logit_scale(answer, measured):
    ratio = float(answer) / float(measured)
    assert 0.5 < ratio < 2, (
        f"{float(answer):.3g} is {ratio:.2g}× the measured logit std {float(measured):.3g}. Hint: apply "
        "std(y) = √(n_in · Var[w] · E[x²]) three times, with n_in = 4096, Var[w] = 1, E[x²] ≈ 100 after "
        "the conv stack, and E[x²] = std²/2 after each ReLU."
    )


# --- 04_training_mnist --------------------------------------------------------------------------


@checker("04-steps-per-epoch")
def _steps_per_epoch(answer, n_train, batch_size):
    expected = -(-int(n_train) // int(batch_size))
    assert isinstance(answer, (int, np.integer)), f"answer with a whole number of steps, not {answer!r}"
    assert int(answer) == expected, (
        f"{answer} steps would not see each of the {n_train:,} images exactly once. Hint: every step takes "
        f"{batch_size} images and the last, smaller batch still counts as a step: round up."
    )


@checker("04-most-confused")
def _most_confused(answer, labels, predictions):
    from vgg_helpers.plots import confusion_matrix

    errors = confusion_matrix(labels, predictions)
    np.fill_diagonal(errors, 0)
    assert isinstance(answer, tuple) and len(answer) == 2, f"answer with a (true digit, predicted digit) tuple, not {answer!r}"
    true, said = int(answer[0]), int(answer[1])
    assert true != said, "a pair with the same digit twice is a correct prediction, not a confusion. Hint: look off the diagonal."
    assert errors[true, said] == errors.max(), (
        f"the model said {said} for a true {true} {errors[true, said]} times; another pair happens "
        f"{errors.max()} times. Hint: the largest off-diagonal entry of the confusion matrix, matrix[true, predicted]."
    )


@checker("04-top2-accuracy")
def _top2_accuracy(answer, probabilities, labels):
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=int)
    top2 = np.argsort(probabilities, axis=1)[:, -2:]
    expected = float(np.mean((top2 == labels[:, None]).any(axis=1)))
    top1 = float(np.mean(probabilities.argmax(axis=1) == labels))
    assert abs(float(answer) - top1) > 1e-9 or top1 == expected, (
        "that is the top-1 accuracy. Hint: count an image as right when its label is among the two "
        "highest probabilities (np.argsort(probabilities, axis=1)[:, -2:])."
    )
    assert abs(float(answer) - expected) < 1e-6, (
        f"{answer} is not it. Hint: a fraction between 0 and 1 — the share of images whose label is among "
        "their two most probable digits."
    )


# --- 05_original_tf1_code -----------------------------------------------------------------------


@checker("05-adam-megabytes")
def _adam_megabytes(answer, params):
    expected = 2 * int(params) * 4 / 1e6
    assert abs(float(answer) - expected / 2) > 1e-6 * expected, (
        "that is one running average. Hint: Adam keeps two per weight, m (the mean of the gradients) and v "
        "(the mean of their squares)."
    )
    assert abs(float(answer) - expected) <= 0.01 * expected, (
        f"{answer} MB is not it. Hint: two float32 numbers (4 bytes each) per parameter, in MB (10⁶ bytes)."
    )


# --- 06_vgg_vs_alexnet --------------------------------------------------------------------------


@checker("06-alexnet-params")
def _alexnet_params(answer):
    from vgg_helpers.architectures import blog_alexnet, layer_table

    expected = layer_table(blog_alexnet()).total("params")
    assert int(answer) == expected, (
        f"{int(answer):,} is not it. Hint: a 3×3 conv from c_in to c_out channels has 9·c_in·c_out weights + c_out "
        "biases; after three 'same' pools the 28×28 image is 4×4×256 = 4,096 values, the input of the first dense layer."
    )


@checker("06-best-network")
def _best_network(answer, final):
    assert answer in final, f"{answer!r} is not one of the labels: {', '.join(final)}. Hint: use a key of `final`."
    best = max(final.values())
    assert final[answer] == best, (
        f"{answer} reached {final[answer]:.2%}; another network reached {best:.2%}. Hint: max(final, key=final.get)."
    )
