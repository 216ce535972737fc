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
