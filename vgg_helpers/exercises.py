"""Self-checks for the exercises at the end of each notebook.

An exercise cell leaves its answer as ``None``; the check cell below it calls::

    vh.exercises.check("00-rarest-digit", rarest_digit, y_train=y_train)

It prints "not answered yet" and returns ``None`` for ``None`` (so *Run All* still reaches the end of the
notebook, and nothing but that line shows under the cell). A right answer prints a tick and returns ``True``.
A wrong one prints what is wrong and a hint, and returns ``False``, without a traceback: the first hint names
the idea to look at again, and from the second wrong try of the same exercise on, the hint also says how.
Each check compares the answer with a value computed from the exercise's own setup, at a tolerance that the
exercise's typical mistakes fall outside; where a statement forbids a library call, the check makes that call
fail while it runs the answer. Each notebook's hidden solution cell asserts the same check on the solution.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

_CHECKERS: dict[str, Callable[..., None]] = {}
_WRONG_TRIES: dict[str, int] = {}  #: wrong answers so far, per exercise, in this kernel


class Wrong(Exception):
    """A wrong answer: ``what`` is wrong with it, ``concept`` names the idea to look at again, and ``how``
    (shown from the second wrong try on) says how to get it."""

    def __init__(self, what: str, concept: str = "", how: str = ""):
        super().__init__(what)
        self.what, self.concept, self.how = what, concept, how


def expect(condition, what: str, concept: str = "", how: str = "") -> None:
    """Raise :class:`Wrong` unless ``condition``."""
    if not condition:
        raise Wrong(what, concept, how)


def checker(key: str):
    """Register ``func(answer, **context)`` as the check of exercise ``key``; it raises :class:`Wrong` on a wrong
    answer."""

    def register(func):
        if key in _CHECKERS:
            raise ValueError(f"exercise {key!r} is registered twice.")
        _CHECKERS[key] = func
        return func

    return register


def check(key: str, answer, **context) -> bool | None:
    """Check ``answer`` to exercise ``key``: ``None`` if unanswered, ``False`` (with a hint printed) if wrong,
    ``True`` if right."""
    if key not in _CHECKERS:
        raise ValueError(f"no exercise called {key!r}; known: {', '.join(sorted(_CHECKERS))}.")
    if answer is None or answer is Ellipsis:
        print(f"{key}: not answered yet. Replace the None above with your answer and run both cells.")
        return None
    try:
        _CHECKERS[key](answer, **context)
    except Wrong as wrong:
        tries = _WRONG_TRIES[key] = _WRONG_TRIES.get(key, 0) + 1
        lines = [f"{key}: ✗ not yet. {wrong.what}"]
        if wrong.concept:
            lines.append(f"Hint: {wrong.concept}")
        if wrong.how and tries > 1:
            lines.append(f"How: {wrong.how}")
        elif wrong.how:
            lines.append("(Try again: from the second wrong answer on, the hint also says how.)")
        print("\n".join(lines))
        return False
    print(f"{key}: ✓ correct")
    return True


# --- Helpers of the checks ----------------------------------------------------------------------------


def number(answer, what: str = "one number") -> float:
    """``answer`` as a float: a Python or NumPy number, or a tensor or array holding one value. A tuple, a list,
    an array of several values or a string is a :class:`Wrong` answer that says what was expected."""
    if isinstance(answer, (tuple, list)) or isinstance(answer, (str, bytes, bool)):
        raise Wrong(
            f"you answered {type(answer).__name__} {_short(answer)}, not a number.",
            f"answer with {what}: a float."
            + (" Take the number you want out of the tuple." if isinstance(answer, tuple) else ""),
        )
    try:
        value = np.asarray(answer, dtype=np.float64)
    except (TypeError, ValueError):
        raise Wrong(f"{_short(answer)} is not a number.", f"answer with {what}: a float.") from None
    if value.size != 1:
        raise Wrong(f"your answer holds {value.size} numbers (shape {value.shape}).", f"answer with {what}: a float.")
    return float(value.reshape(-1)[0])


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def agrees(got: float, expected: float, rel: float = 1e-4) -> bool:
    """``got`` equals ``expected`` to ``rel``, or is ``expected`` rounded to two or more significant figures."""
    if abs(got - expected) <= rel * abs(expected):
        return True
    return any(math.isclose(got, float(f"{expected:.{digits}g}"), rel_tol=1e-9) for digits in range(2, 8))


def expect_value(got: float, expected: float, mistakes: dict, concept: str, how: str, rel: float = 1e-4) -> None:
    """Accept ``got`` if it :func:`agrees` with ``expected``; else name the first of ``mistakes`` (``{value: what
    it is}``) it agrees with, or say that a number within 5% needs two significant figures, or give the hint."""
    if agrees(got, expected, rel):
        return
    for value, meaning in mistakes.items():
        if agrees(got, value, max(rel, 0.01)):
            raise Wrong(f"{got:.4g} is {meaning}", concept, how)
    if abs(got - expected) <= 0.05 * abs(expected):
        raise Wrong(
            f"{got:.4g} is near the answer but not it to two significant figures.",
            "round the answer to at least two significant figures (not one, and rounded rather than cut off).",
        )
    raise Wrong(f"{got:.4g} is not it.", concept, how)


_MISSING = object()


@contextlib.contextmanager
def forbidden(*targets, why: str):
    """While the answer runs, each ``(owner, name)`` in ``targets`` raises :class:`Wrong`: a library call that
    would do the exercise for the learner. ``why`` is the hint."""
    saved = [
        (owner, name, vars(owner).get(name, _MISSING) if isinstance(owner, type) else getattr(owner, name))
        for owner, name in targets
    ]

    refused = []  # the refusal, however the library that caught it re-raises it (Keras rewraps a layer's errors)

    def refuse(name):
        def call(*args, **kwargs):
            refused.append(Wrong(f"your answer calls {name}, which the exercise asks you to write yourself.", why))
            raise refused[-1]

        return call

    try:
        for owner, name, _ in saved:
            setattr(owner, name, refuse(f"{owner.__name__}.{name}" if isinstance(owner, type) else name))
        yield
    except Exception:
        if refused:
            raise refused[0] from None
        raise
    finally:
        for owner, name, original in saved:
            if original is _MISSING:
                delattr(owner, name)  # it was inherited
            else:
                setattr(owner, name, original)


def mentions(answer, *names: str) -> str | None:
    """The first of ``names`` that the source code of ``answer`` (a function or class, not a lambda, whose source is
    the whole line it sits on) contains, if it can be read."""
    if getattr(answer, "__name__", "<lambda>") == "<lambda>":
        return None
    try:
        source = inspect.getsource(answer)
    except (OSError, TypeError):
        return None
    return next((name for name in names if name in source), None)


def expect_callable(answer, signature: str) -> None:
    expect(
        callable(answer) and not isinstance(answer, type),
        f"you answered {type(answer).__name__} {_short(answer)}.",
        f"answer with a function: def {signature}: ... (the function itself, not what it returns).",
    )


# --- 00_start_here ------------------------------------------------------------------------------


@checker("00-mean-pixel")
def _mean_pixel(answer, x_train):
    got = number(answer, "the mean pixel value, scaled to [0, 1]")
    expected = float(np.asarray(x_train).mean(dtype=np.float64) / 255.0)  # no 376 MB float copy
    expect(
        0.0 <= got <= 1.0,
        f"{got:.4g} is outside [0, 1].",
        "the pixels are uint8, from 0 to 255: scale them to [0, 1].",
        "divide the mean by 255: x_train.mean() / 255.",
    )
    expect_value(
        got, expected, {}, "the mean of all 47 million scaled pixels, every image and every pixel.",
        "x_train.mean() / 255 (the mean of the scaled pixels, without making a scaled copy of them all).", rel=1e-3,
    )  # fmt: skip


@checker("00-test-pipeline")
def _test_pipeline(answer, x_test, y_test, batch_size=500):
    import tensorflow as tf

    x_test, y_test = np.asarray(x_test), np.asarray(y_test)
    expect(
        isinstance(answer, tf.data.Dataset),
        f"you answered {type(answer).__name__}, not a tf.data.Dataset.",
        "a pipeline is a tf.data.Dataset built from the arrays (section 5).",
        "tf.data.Dataset.from_tensor_slices((x_test, y_test.astype('int32'))), then .batch(...) and .map(...).",
    )
    first = next(iter(answer))
    expect(isinstance(first, tuple) and len(first) == 2, "its elements are not (images, labels) pairs.",
           "Keras' fit and evaluate take (images, labels) pairs: slice the two arrays together.")  # fmt: skip
    images, labels = first
    n = min(batch_size, len(x_test))
    expect(tuple(images.shape) != (n, 28, 28), "the images have no channel axis.",
           "Keras' Conv2D expects (batch, height, width, channels).", "images[..., None] in the map function.")  # fmt: skip
    expect(
        tuple(images.shape) == (n, 28, 28, 1),
        f"the first batch has shape {tuple(images.shape)}, not {(n, 28, 28, 1)}.",
        f"batches of {batch_size} images, each 28×28 with one channel.",
        f".batch({batch_size}), then images[..., None].",
    )
    expect(images.dtype == tf.float32, f"the images are {images.dtype.name}.", "the network computes in float32.",
           "tf.cast(images, tf.float32) in the map function.")  # fmt: skip
    high = float(tf.reduce_max(images))
    expect(high <= 1.0, f"the pixels go up to {high:g}.", "scale the pixels to [0, 1].", "divide by 255.")
    expect(
        np.allclose(images.numpy()[..., 0], x_test[:n] / 255.0, atol=1e-6),
        "these are not the first test images in order, scaled by 1/255.",
        "a test pipeline keeps the images in order: no shuffling.",
    )
    expect(labels.dtype == tf.int32, f"the labels are {labels.dtype.name}.", "labels are integer class numbers.",
           "y_test.astype('int32').")  # fmt: skip
    expect(np.array_equal(labels.numpy(), y_test[:n]), "the labels do not match their images.",
           "keep each label with its image, in order.")  # fmt: skip
    total = sum(int(batch[0].shape[0]) for batch in answer)
    expect(
        total == len(x_test),
        f"the pipeline yields {total:,} images, the test set has {len(x_test):,}.",
        "a test pipeline goes through every test image once, the last batch smaller if need be.",
        "no drop_remainder, take or repeat.",
    )
    print(f"{-(-total // batch_size)} batches of up to {batch_size}: {total:,} test images, in order")


# --- 01_vgg_history -----------------------------------------------------------------------------


def _config_table(name: str):
    from vgg_helpers.architectures import layer_table, vgg_config

    return layer_table(vgg_config(name))


def _integer(answer, what: str) -> int:
    expect(
        isinstance(answer, (int, np.integer)) and not isinstance(answer, bool),
        f"you answered {type(answer).__name__} {_short(answer)}.",
        f"answer with {what}: an int (a count is a whole number).",
    )
    return int(answer)


@checker("01-block3-params")
def _block3_params(answer):
    def block3(name):  # conv5-7 of C and D: the third block, 256 filters, 128 channels in
        return sum(r.params for r in [r for r in _config_table(name) if r.kind == "conv"][4:7])

    got, expected = _integer(answer, "the number of parameters"), block3("C")
    concept = "a k×k conv from C_in to C_out channels has k·k·C_in·C_out weights and one bias per filter."
    how = "add the three convs: 3·3·128·256 + 256, then 3·3·256·256 + 256, then C's 1×1: 1·1·256·256 + 256."
    expect(got != expected - 3 * 256, f"{got:,} leaves out the biases.", "each filter has a bias too.", how)
    expect(got != block3("D"), f"{got:,} is D's block 3.", "C's third conv in this block is 1×1, not 3×3.", how)
    expect(got == expected, f"{got:,} is not it.", concept, how)


@checker("01-gap-params")
def _gap_params(answer):
    table = _config_table("D")
    fc1 = next(r for r in table if r.name == "fc1")
    got, expected = _integer(answer, "the number of parameters"), table.total("params") - fc1.params + (512 * 4096 + 4096)
    expect(got != table.total("params"), f"{got:,} is VGG-16 unchanged.", "global average pooling changes FC1's input.")
    expect(
        got == expected,
        f"{got:,} is not it.",
        "global average pooling turns the 7×7×512 map into 512 numbers, so only FC1 changes.",
        "VGG-16's total − FC1's 25,088·4096 + 4096 parameters + a 512 → 4096 layer's 512·4096 + 4096.",
    )


@checker("01-receptive-field")
def _receptive_field(answer):
    from vgg_helpers.architectures import receptive_field

    got = _integer(answer, "the width of the receptive field in pixels")
    expect(
        got == receptive_field(5),
        f"{got} is not it.",
        "each stride-1 3×3 conv widens the receptive field by 2 pixels (section 4).",
        "1 + 2 · (number of convs).",
    )


# --- 02_conv_levels -----------------------------------------------------------------------------


@checker("02-pool8-macs")
def _pool8_macs(answer):
    from vgg_helpers.architectures import blog_vgg, layer_table

    got = _integer(answer, "the number of multiply-accumulates per image")
    expected = layer_table(blog_vgg(pools=(2, 4, 8))).total("macs")
    expect(got != layer_table(blog_vgg()).total("macs"), f"{got:,} is the blog's network, pools after 2, 4 and 12.",
           "move the third pool to after level 8.")  # fmt: skip
    expect(
        got == expected,
        f"{got:,} is not it.",
        "the table of section 5 gives any pooling choice's multiply-accumulates.",
        "vh.architectures.layer_table(vh.architectures.blog_vgg(pools=(2, 4, 8))).total('macs').",
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


def _is_relu(layer) -> bool:
    """A ReLU layer, or an Activation layer that applies the ReLU."""
    import keras

    return isinstance(layer, keras.layers.ReLU) or (
        isinstance(layer, keras.layers.Activation) and layer.activation is keras.activations.relu
    )


@checker("02-two-conv-level")
def _two_conv_level(answer):
    import keras

    expect(isinstance(answer, keras.Model), f"you answered {type(answer).__name__}, not a Keras model.",
           "a level is a small model: keras.Sequential([keras.Input(...), ...]) as in section 4.")  # fmt: skip
    layers = [layer for layer in answer.layers if not isinstance(layer, keras.layers.InputLayer)]
    convs = [layer for layer in layers if isinstance(layer, keras.layers.Conv2D)]
    expect(len(convs) == 2, f"the level has {len(convs)} Conv2D layers.", "the level has two convolutions, one after the other.")
    expect(all(tuple(c.kernel_size) == (3, 3) for c in convs), "a convolution is not 3×3.", "both convolutions are 3×3.")
    expect(
        all(c.padding == "same" for c in convs),
        "a convolution has padding='valid', which shrinks the map by 2 pixels (28 → 26 → 24).",
        "the statement asks for SAME padding, which keeps 28 × 28, as in section 1's reconstructed conv2D "
        "(tf.nn.conv2d(..., padding='SAME')).",
        "Conv2D(filters, 3, padding='same', activation='relu').",
    )
    for conv in convs:
        following = layers[layers.index(conv) + 1] if layers.index(conv) + 1 < len(layers) else None
        expect(
            conv.activation is keras.activations.relu or (following is not None and _is_relu(following)),
            f"{conv.name} has no ReLU after it.",
            "each convolution has its own ReLU.",
            "activation='relu' in each Conv2D.",
        )
    expect(tuple(answer.input_shape[1:]) == (28, 28, 1), f"the input is {answer.input_shape[1:]}, not 28×28×1.",
           "the level takes one MNIST digit.", "keras.Input((28, 28, 1)).")  # fmt: skip
    field = measured_receptive_field(answer)
    expect(field == 5, f"its receptive field measures {field}×{field}, not 5×5.", "stride 1, no dilation.")
    print(f"two 3×3 convs: receptive field measured {field}×{field}")


#: AlexNet's LRN (Krizhevsky et al., 2012, Section 3.3): k = 2, n = 5 (depth radius 2), α = 10⁻⁴, β = 0.75.
ALEXNET_LRN = {"depth_radius": 2, "bias": 2.0, "alpha": 1e-4, "beta": 0.75}


def _lrn_peak(neighbours: int, bias: float, alpha: float, beta: float) -> tuple[float, float]:
    """(input, output) where a / (bias + alpha · neighbours · a²)^beta peaks: d/da = 0 at neighbours·α·a² (2β − 1) = bias."""
    a = np.sqrt(bias / (neighbours * alpha * (2 * beta - 1)))
    return float(a), float(a / (bias + neighbours * alpha * a**2) ** beta)


@checker("02-lrn-cap")
def _lrn_cap(answer):
    from vgg_helpers.architectures import BLOG_LRN

    got = number(answer, "the largest output, a float")
    k, alpha, beta = ALEXNET_LRN["bias"], ALEXNET_LRN["alpha"], ALEXNET_LRN["beta"]
    peak_input, expected = _lrn_peak(1, k, alpha, beta)
    mistakes = {
        _lrn_peak(5, k, alpha, beta)[1]: "the cap with all five channels equal, not with silent neighbours.",
        _lrn_peak(1, BLOG_LRN["bias"], BLOG_LRN["alpha"], BLOG_LRN["beta"])[1]: "the cap with alexnet.py's constants.",
        peak_input: "the input at which the output peaks; the answer is the output there.",
    }
    expect_value(
        got, expected, mistakes,
        "with silent neighbours the sum of squares holds the channel alone: b = a / (k + α a²)^β; find its largest value.",
        "feed inputs from 1 to 1000 in small steps into the middle of 5 channels (the others zero) through "
        "vh.models.LocalResponseNormalization(depth_radius=2, bias=2.0, alpha=1e-4, beta=0.75) and take the largest "
        "output; or set the derivative to zero: α a² (2β − 1) = k.",
    )  # fmt: skip


# --- 03_exploding_loss --------------------------------------------------------------------------


@checker("03-he-stddev")
def _he_stddev(answer):
    got = number(answer, "the standard deviation σ")
    n_in = 3 * 3 * 256
    expect_value(
        got, float(np.sqrt(2.0 / n_in)),
        {float(np.sqrt(1.0 / n_in)): "the σ that keeps the variance of a linear layer, with no ReLU after it.",
         2.0 / n_in: "a variance; the answer is the standard deviation, its square root.",
         float(np.sqrt(2.0 / (3 * 3))): "computed with the kernel's 9 positions alone; each output sums all channels too."},
        "Var[y] = n_in · Var[w] · E[x²] (section 3), and a ReLU passes half of its input's power: E[x²] = Var[y]/2.",
        "n_in = 3·3·256 inputs per output; Var[y] = n_in · Var[w] · Var[y]/2 gives Var[w] = 2 / n_in; σ = √(2 / n_in).",
    )  # fmt: skip


#: Exercise 03-logit-scale's setup: E[x²] after the conv stack, and the dense layers' n_in and Var[w].
LOGIT_SETUP = {"input_mean_square": 100.0, "fan_in": 4096, "weight_variance": 1.0, "dense_layers": 3}


def _predicted_std(mean_square, fan_in, weight_variance, layers, relu_halves=True, relu_after_last=False) -> float:
    """The standard deviation after ``layers`` dense layers, E[x²] halved by the ReLU between two of them."""
    for _ in range(layers):
        variance = fan_in * weight_variance * mean_square
        mean_square = variance / 2 if relu_halves else variance
    return float(np.sqrt(mean_square if relu_after_last else variance))


@checker("03-logit-scale")
def _logit_scale(answer, measured):
    got = number(answer, "the predicted standard deviation of the logits")
    s = LOGIT_SETUP
    setup = (s["input_mean_square"], s["fan_in"], s["weight_variance"])
    mistakes = {
        _predicted_std(*setup, s["dense_layers"], relu_halves=False): "what you get without halving E[x²] at each ReLU.",
        _predicted_std(*setup, s["dense_layers"], relu_after_last=True): "after a ReLU on the logits, which have none.",
        float(measured): "the measurement of section 3; the exercise asks for the prediction.",
        _predicted_std(*setup, 1): "the first dense layer's output; go on through all three.",
        _predicted_std(*setup, 2): "the second dense layer's output; the logits are the third's.",
    }
    expect_value(
        got, _predicted_std(*setup, s["dense_layers"]), mistakes,
        "apply Var[y] = n_in · Var[w] · E[x²] once per dense layer; between two layers a ReLU halves the power: "
        "E[x²] = Var[y]/2.",
        "Var = 4096 · 1 · 100 for the first layer; E[x²] = Var/2; repeat twice more; the answer is √Var of the third.",
    )  # fmt: skip


@checker("03-fixed-level")
def _fixed_level(answer):
    import keras

    expect(isinstance(answer, keras.Model), f"you answered {type(answer).__name__}, not a keras.Model.",
           "build it with the functional API or keras.Sequential, as section 5 does.")  # fmt: skip
    layers = [layer for layer in answer.layers if not isinstance(layer, keras.layers.InputLayer)]
    kinds = ["ReLU" if _is_relu(layer) else type(layer).__name__ for layer in layers]
    expect(
        kinds == ["Conv2D", "BatchNormalization", "ReLU"],
        f"the layers are {kinds}.",
        "the fix normalises the convolution's output before the non-linearity: conv, then BatchNorm, then ReLU.",
        "Conv2D (no activation), keras.layers.BatchNormalization(), keras.layers.ReLU().",
    )
    conv = layers[0]
    expect(conv.filters == 16 and tuple(conv.kernel_size) == (3, 3) and conv.padding == "same",
           f"the conv has {conv.filters} filters of {conv.kernel_size}, padding {conv.padding!r}.",
           "16 filters of 3×3 with padding='same'.")  # fmt: skip
    expect(not conv.use_bias, "the conv has a bias.", "BatchNorm subtracts each channel's mean right after it, bias and all.",
           "Conv2D(..., use_bias=False).")  # fmt: skip
    expect(conv.activation is keras.activations.linear, f"the conv applies {conv.activation.__name__} itself.",
           "the ReLU comes after BatchNorm, as a layer of its own.")  # fmt: skip
    init = conv.kernel_initializer.get_config()
    expect(
        type(conv.kernel_initializer).__name__ == "HeNormal"
        or (init.get("scale") == 2.0 and init.get("mode") == "fan_in"
            and init.get("distribution") in ("truncated_normal", "untruncated_normal")),
        f"the conv is initialised with {type(conv.kernel_initializer).__name__}.",
        "He initialisation, the σ of exercise 1.", "kernel_initializer='he_normal'.",
    )  # fmt: skip
    expect(tuple(answer.input_shape[1:]) == (28, 28, 8), f"the input is {answer.input_shape[1:]}, not 28×28×8.",
           "keras.Input((28, 28, 8)).")  # fmt: skip
    out = keras.ops.convert_to_numpy(answer(np.random.default_rng(0).random((16, 28, 28, 8), dtype=np.float32), training=True))
    expect(out.shape == (16, 28, 28, 16) and out.min() >= 0, f"a batch comes out with shape {out.shape}.",
           "16 maps of 28 × 28, all values ≥ 0 after the ReLU.")  # fmt: skip


def _batchnorm_case(seed: int):
    """A small batch whose statistics differ from the layer's moving ones, with a variance near epsilon."""
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 0.05, (4, 3, 3, 5)).astype("float32") * rng.uniform(0.5, 2.0, 5).astype("float32")
    gamma, beta = rng.uniform(0.5, 2.0, 5).astype("float32"), rng.normal(0, 1, 5).astype("float32")
    moving_mean, moving_variance = rng.normal(1, 1, 5).astype("float32"), rng.uniform(0.5, 2, 5).astype("float32")
    return x, gamma, beta, moving_mean, moving_variance


def _normalised(x, mean, variance, gamma, beta, epsilon):
    return gamma * (x - mean) / np.sqrt(variance + epsilon) + beta


@checker("03-batchnorm-by-hand")
def _batchnorm_by_hand(answer):
    import keras
    import tensorflow as tf

    expect_callable(answer, "batchnorm(x, gamma, beta, moving_mean, moving_variance, epsilon, training)")
    epsilon = 1e-3
    for seed in (0, 1):
        x, gamma, beta, moving_mean, moving_variance = _batchnorm_case(seed)
        layer = keras.layers.BatchNormalization(epsilon=epsilon)
        layer.build(x.shape)
        layer.set_weights([gamma, beta, moving_mean, moving_variance])
        batch_mean, batch_variance = x.mean(axis=(0, 1, 2)), x.var(axis=(0, 1, 2))
        for training in (True, False):
            expected = keras.ops.convert_to_numpy(layer(x, training=training))
            layer.set_weights([gamma, beta, moving_mean, moving_variance])  # training=True moved the moving statistics
            with forbidden(
                (keras.layers.BatchNormalization, "call"), (tf.nn, "batch_normalization"), (keras.ops, "batch_normalization"),
                why="compute it with NumPy: the mean and variance over the batch and both spatial axes, then the formula.",
            ):  # fmt: skip
                got = answer(x.copy(), gamma, beta, moving_mean, moving_variance, epsilon, training)
            got = np.asarray(keras.ops.convert_to_numpy(got) if not isinstance(got, np.ndarray) else got, dtype=np.float64)
            mode = "training" if training else "inference"
            expect(got.shape == x.shape, f"in {mode} mode your function returns shape {got.shape}, not x's {x.shape}.",
                   "BatchNorm changes the values, not the shape.")  # fmt: skip
            if np.allclose(got, expected, rtol=1e-4, atol=1e-4):
                continue
            n = x.shape[0] * x.shape[1] * x.shape[2]
            mistakes = [
                (_normalised(x, moving_mean, moving_variance, gamma, beta, epsilon),
                 "in training mode you normalised with the moving statistics.",
                 "in training, BatchNorm normalises each channel with the statistics of the batch in hand."),
                (_normalised(x, batch_mean, batch_variance, gamma, beta, epsilon),
                 "in inference mode you normalised with the batch's own statistics.",
                 "in inference, BatchNorm uses the moving statistics, so that an image's output does not depend on the "
                 "other images of its batch."),
                (_normalised(x, batch_mean, batch_variance * n / (n - 1), gamma, beta, epsilon),
                 "you divided the variance by N − 1.",
                 "BatchNorm's batch variance is the plain mean of the squared deviations (divided by N)."),
                (_normalised(x, batch_mean if training else moving_mean,
                             (batch_variance if training else moving_variance) - epsilon, gamma, beta, epsilon),
                 "you left out epsilon.", "epsilon sits under the square root, added to the variance."),
                (_normalised(x, x.mean(axis=0), x.var(axis=0), gamma, beta, epsilon),
                 "you took the statistics over the batch axis only, one per pixel.",
                 "one mean and one variance per channel: over the batch, the height and the width (axes 0, 1 and 2)."),
            ]  # fmt: skip
            for wrong, what, concept in mistakes:
                if np.allclose(got, wrong, rtol=1e-4, atol=1e-4):
                    raise Wrong(what, concept)
            raise Wrong(
                f"in {mode} mode your output differs from the layer's by up to {np.abs(got - expected).max():.3g}.",
                "training: the batch's mean and variance per channel; inference: the moving ones; then scale and shift.",
                "gamma · (x − mean) / √(variance + epsilon) + beta, with mean and variance from "
                "x.mean(axis=(0, 1, 2)) and x.var(axis=(0, 1, 2)) in training, moving_mean and moving_variance in inference.",
            )
    print("training and inference mode: the same outputs as keras.layers.BatchNormalization, on two batches")


# --- 04_training_mnist --------------------------------------------------------------------------


def _epoch_end(callback, threshold, logs) -> bool:
    """Whether ``callback`` (made with ``threshold``) stops training after an epoch with these logs."""
    import keras

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False
    callback.set_model(model)
    try:
        callback.on_epoch_end(0, dict(logs))
    except KeyError as err:
        raise Wrong(
            f"StopAt({threshold}).on_epoch_end raised KeyError {err} for an epoch whose logs are {logs}.",
            "fit logs 'val_accuracy' only when it has validation data; a callback should not crash without it.",
            "logs.get('val_accuracy') gives None instead of raising; stop only when it is not None and ≥ the threshold.",
        ) from None
    return bool(model.stop_training)


@checker("04-stop-at")
def _stop_at(answer):
    import keras

    expect(
        isinstance(answer, type) and issubclass(answer, keras.callbacks.Callback),
        f"you answered {_short(answer)}, not a callback class.",
        "a callback is a class that subclasses keras.callbacks.Callback, like the one in section 3.",
        "class StopAt(keras.callbacks.Callback): with __init__(self, threshold) and on_epoch_end(self, epoch, logs=None).",
    )
    for threshold, logs, expected in [(0.995, {"val_accuracy": 0.99}, False), (0.995, {"val_accuracy": 0.996}, True),
                                      (0.9, {"val_accuracy": 0.9}, True), (0.9, {"loss": 0.1}, False)]:  # fmt: skip
        stopped = _epoch_end(answer(threshold), threshold, logs)
        if stopped != expected:
            at = "reaching the threshold counts" if logs.get("val_accuracy") == threshold else "compare with the threshold"
            raise Wrong(
                f"StopAt({threshold}) after an epoch with logs {logs} {'stopped' if stopped else 'did not stop'} training.",
                f"read the validation accuracy from the logs in on_epoch_end ({at}).",
                "if logs.get('val_accuracy') is not None and logs['val_accuracy'] >= self.threshold: "
                "self.model.stop_training = True.",
            )


@checker("04-top2-accuracy")
def _top2_accuracy(answer, probabilities, labels):
    got = number(answer, "the top-2 accuracy, a fraction between 0 and 1")
    probabilities, labels = np.asarray(probabilities), np.asarray(labels, dtype=int)
    top2 = np.argsort(probabilities, axis=1)[:, -2:]
    expected = float(np.mean((top2 == labels[:, None]).any(axis=1)))
    top1 = float(np.mean(probabilities.argmax(axis=1) == labels))
    expect(got <= 1.0 or not agrees(got / 100, expected), f"{got:.4g} is in percent.", "answer with a fraction: 0.995, not 99.5.")
    expect(abs(got - top1) > 1e-9 or top1 == expected, "that is the top-1 accuracy, the test accuracy.",
           "count an image as right when its label is among its two most probable digits.",
           "np.argsort(probabilities, axis=1)[:, -2:] gives each image's two most probable digits.")  # fmt: skip
    # Near 1 the leading digits say nothing (0.9987 is 1.0 to two figures): the error rate, 1 − answer, must agree.
    if abs(got - expected) < 1e-6 or agrees(1 - got, 1 - expected):
        return
    expect(
        abs(got - expected) >= 0.005,
        f"{got:.6g} is near the answer but not precise enough.",
        "near 1, give the fraction to four decimals (0.9987, say): its error rate, 1 − answer, needs two significant figures.",
    )
    raise Wrong(
        f"{got:.4g} is not it.",
        "the share of test images whose label is one of their two most probable digits.",
        "top2 = np.argsort(probabilities, axis=1)[:, -2:]; np.mean((top2 == labels[:, None]).any(axis=1)).",
    )


def _schedules_forbidden():
    import keras

    from vgg_helpers import training

    return forbidden(
        (keras.optimizers.schedules.CosineDecay, "__call__"), (training, "warmup_cosine"),
        why="write the warm-up and the cosine with plain arithmetic (math.cos or np.cos), not with Keras' schedule.",
    )  # fmt: skip


def _one_cycle_reference(step, peak, total_steps, warmup_steps) -> float:
    """The one-cycle schedule of notebook 04, written out (what Keras' CosineDecay computes with these arguments)."""
    if step < warmup_steps:
        return peak / 10 + (peak - peak / 10) * step / warmup_steps
    progress = min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


@checker("04-one-cycle")
def _one_cycle(answer):
    import tensorflow as tf

    from vgg_helpers.training import warmup_cosine

    expect_callable(answer, "my_one_cycle(step, peak, total_steps, warmup_steps)")
    for peak, total, warmup in [(0.02, 860, 430), (0.01, 200, 50)]:
        schedule = warmup_cosine(peak, total, warmup)
        for step in sorted({0, 1, warmup // 2, warmup, warmup + 1, (warmup + total) // 2, total - 1, total}):
            expected = float(schedule(step))
            with _schedules_forbidden():
                value = answer(step, peak, total, warmup)
            expect(not isinstance(value, tf.Tensor), f"my_one_cycle returns a tensor ({_short(value)}).",
                   "return a plain number, computed with Python or NumPy arithmetic.")  # fmt: skip
            got = number(value, "the learning rate at that step")
            if abs(got - expected) <= 1e-6 + 1e-4 * expected:
                continue
            phase = "warm-up" if step < warmup else "decay"
            raise Wrong(
                f"at step {step} of {total} (warm-up {warmup} steps, peak {peak}) Keras' schedule gives {expected:.6g}, "
                f"yours {got:.6g} ({phase}).",
                "a straight line from peak/10 to peak during the warm-up; after it, a cosine from peak down to peak/100.",
                "warm-up: peak/10 + (peak − peak/10) · step/warmup_steps; after it: peak · (0.01 + 0.99 · (1 + cos(π · "
                "progress)) / 2), progress = (step − warmup_steps)/(total_steps − warmup_steps).",
            )


#: Exercise 04-fit-small: epochs, batch size and the one-cycle schedule's peak (per epoch, one epoch of warm-up).
FIT_SMALL = {"epochs": 6, "batch_size": 64, "peak": 0.01, "warmup_epochs": 1}


def small_convnet():
    """The small network that exercise 04-fit-small trains (two 8- and 16-filter convs, pools, a dense layer)."""
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(10),
        ]
    )


class _Crash(Exception):
    """The crash that exercise 04-fit-small's check causes after an epoch."""


def _fit_small_callbacks(crash_after: int | None):
    import keras

    class Probe(keras.callbacks.Callback):  # counts each epoch's steps, keeps its logs; raises _Crash after `crash_after`
        def __init__(self):
            super().__init__()
            self.steps: dict[int, int] = {}
            self.logs: dict[int, dict] = {}

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch
            self.steps[epoch] = 0

        def on_train_batch_end(self, batch, logs=None):
            self.steps[self.epoch] += 1

        def on_epoch_end(self, epoch, logs=None):
            self.logs[epoch] = dict(logs or {})
            if crash_after is not None and epoch == crash_after:
                raise _Crash(f"the check's crash after epoch {epoch + 1}")

    return Probe()


def _fit(answer, train, val, backup_dir, stop_at, probe):
    import keras

    keras.utils.set_random_seed(0)
    model = small_convnet()
    try:
        with _schedules_forbidden():
            history = answer(model, train, val, str(backup_dir), stop_at, [probe])
    except KeyError as err:
        raise Wrong(
            f"train_small raised KeyError {err}.",
            "a callback reads a key that fit does not log; fit logs val_accuracy only when it gets validation_data.",
            "fit(..., validation_data=val); in StopAt, logs.get('val_accuracy').",
        ) from None
    return model, history


@checker("04-fit-small")
def _fit_small(answer, train, val):
    import keras

    expect_callable(answer, "train_small(model, train, val, backup_dir, stop_at, callbacks)")
    epochs, batch_size = FIT_SMALL["epochs"], FIT_SMALL["batch_size"]
    steps = -(-len(train[0]) // batch_size)
    with tempfile.TemporaryDirectory() as folder:
        # 1. A run that crashes after its second epoch, then the same call again: it should resume.
        backup, crashed = Path(folder) / "backup", _fit_small_callbacks(crash_after=1)
        try:
            _fit(answer, train, val, backup, 1.01, crashed)
        except _Crash:
            pass
        else:
            raise Wrong("train_small finished although the check's callback crashed after epoch 2.",
                        "pass the callbacks you are given on to fit, with your own.",
                        "callbacks=[...your three...] + list(callbacks).")  # fmt: skip
        expect(backup.exists() and any(backup.iterdir()), "after the crash, backup_dir holds no backup.",
               "keras.callbacks.BackupAndRestore saves the training state in its folder after every epoch.",
               "keras.callbacks.BackupAndRestore(backup_dir) among fit's callbacks.")  # fmt: skip
        probe = _fit_small_callbacks(crash_after=None)
        model, history = _fit(answer, train, val, backup, 1.01, probe)
        expect(isinstance(history, keras.callbacks.History), f"train_small returned {_short(history)}, not fit's History.",
               "return what model.fit returns.")  # fmt: skip
        expect(
            history.epoch[:1] in ([1], [2]) and history.epoch[-1] == epochs - 1,  # [1]: its backup came after the crash
            f"called again after the crash, fit ran the epochs {[e + 1 for e in history.epoch]}.",
            f"BackupAndRestore resumes after the last epoch it saved: here from epoch 3 (or 2) to {epochs}.",
            f"fit(..., epochs={epochs}) with the same backup_dir in both calls.",
        )
        expect("val_accuracy" in history.history, "the history has no val_accuracy.",
               "fit validates after every epoch when it gets the validation set.", "fit(..., validation_data=val).")  # fmt: skip
        expect(set(probe.steps.values()) == {steps}, f"an epoch took {sorted(set(probe.steps.values()))} steps, not {steps}.",
               f"batches of {batch_size}: {len(train[0])} images make {steps} steps.",
               f"fit(..., batch_size={batch_size}).")  # fmt: skip
        expect(isinstance(model.optimizer, keras.optimizers.Adam), f"the optimizer is {type(model.optimizer).__name__}.",
               "compile with Adam.")  # fmt: skip
        logits = model.predict(val[0], verbose=0)
        loss = float(keras.ops.convert_to_numpy(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(val[1], logits)))
        expect(
            abs(loss - history.history["val_loss"][-1]) <= 1e-3 * max(loss, 1.0),
            f"the validation loss fit logged ({history.history['val_loss'][-1]:.4g}) is not the cross-entropy of the "
            f"model's logits ({loss:.4g}).",
            "the model ends with Dense(10) and no softmax: its outputs are logits.",
            "loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True).",
        )
        rates = history.history.get("learning_rate", [])
        schedule = [_one_cycle_reference(e, FIT_SMALL["peak"], epochs, FIT_SMALL["warmup_epochs"]) for e in history.epoch]
        expect(
            len(rates) == len(schedule) and np.allclose(rates, schedule, rtol=1e-5),
            f"the learning rates of epochs {[e + 1 for e in history.epoch]} were {[float(f'{r:.3g}') for r in rates]}, "
            f"not {[float(f'{r:.3g}') for r in schedule]}.",
            "keras.callbacks.LearningRateScheduler sets the rate at the start of each epoch from your function.",
            f"LearningRateScheduler(lambda epoch, lr: float(my_one_cycle(epoch, {FIT_SMALL['peak']}, {epochs}, "
            f"{FIT_SMALL['warmup_epochs']}))).",
        )
        # 2. A fresh run in a new folder, asked to stop at the accuracy that the crashed run reached at epoch 2.
        stop_at = crashed.logs.get(1, {}).get("val_accuracy")
        expect(stop_at is not None, "the crashed run logged no val_accuracy.", "fit(..., validation_data=val).")
        first_run = _fit(answer, train, val, Path(folder) / "again", stop_at, _fit_small_callbacks(None))[1]
        accuracies = first_run.history.get("val_accuracy", [])
        reached = next((i for i, accuracy in enumerate(accuracies) if accuracy >= stop_at), None)
        expect(
            reached is not None and len(accuracies) == reached + 1 and len(accuracies) < epochs,
            f"with stop_at={stop_at:.4f} the run went on for {len(accuracies)} epochs, validation accuracies "
            f"{[round(a, 4) for a in accuracies]}.",
            "StopAt(stop_at) among the callbacks stops training after the first epoch that reaches stop_at.",
            "callbacks=[LearningRateScheduler(...), StopAt(stop_at), BackupAndRestore(backup_dir)] + list(callbacks).",
        )
    print(f"resumed at epoch {history.epoch[0] + 1} after a crash; rates {', '.join(f'{r:.3g}' for r in rates)}; "
          f"stopped after epoch {reached + 1} "
          f"at validation accuracy {accuracies[reached]:.3f} ≥ {stop_at:.3f}")  # fmt: skip


# --- 05_original_tf1_code -----------------------------------------------------------------------


def _in_new_graph(build):
    """Call ``build()`` in a fresh TF1 graph (in eager or graph mode alike); return ``(graph, its result)``."""
    import tensorflow.compat.v1 as tf1

    graph = tf1.Graph()
    with graph.as_default():
        tf1.set_random_seed(0)  # the same numbers in every check
        return graph, build()


@checker("05-placeholder-feed")
def _placeholder_feed(answer, digits):
    import tensorflow.compat.v1 as tf1

    expect_callable(answer, "mean_ink_graph()")
    graph, built = _in_new_graph(answer)
    expect(isinstance(built, tuple) and len(built) == 2, f"mean_ink_graph() returned {_short(built)}.",
           "the function returns the pair (images, ink): the placeholder and the tensor computed from it.")  # fmt: skip
    images, ink = built
    expect(isinstance(images, tf1.Tensor) and images.op.type == "Placeholder", "images is not a placeholder.",
           "a TF1 graph's input is a tf.placeholder, which feed_dict fills at run time (section 2).")  # fmt: skip
    expect(images.dtype == tf1.float32, f"the placeholder holds {images.dtype.name}.", "the pixels are tf.float32.")
    expect(images.shape.as_list() == [None, 784], f"the placeholder's shape is {images.shape.as_list()}.",
           "None as the first dimension lets any number of flattened digits through.", "[None, 784].")  # fmt: skip
    digits = np.asarray(digits, dtype=np.float32)
    with tf1.Session(graph=graph) as sess:
        for n in (len(digits) - 2, len(digits)):
            got = np.asarray(sess.run(ink, feed_dict={images: digits[:n]}))
            expect(got.shape == (n,), f"fed {n} digits, ink has shape {got.shape}.", "one number per image.",
                   "tf.reduce_mean(images, axis=1).")  # fmt: skip
            expect(np.allclose(got, digits[:n].mean(axis=1), atol=1e-6), "ink is not each image's mean pixel.",
                   "the mean, not the sum, over each image's 784 pixels.", "tf.reduce_mean(images, axis=1).")  # fmt: skip
    print(f"fed {len(digits) - 2} and then {len(digits)} digits through one placeholder; mean ink of the first: {got[0]:.4f}")


@checker("05-he-variable")
def _he_variable(answer):
    import tensorflow as tf  # tf.Variable: the base class of TF1 and TF2 variables alike
    import tensorflow.compat.v1 as tf1

    expect_callable(answer, "he_conv_weights(c_in, c_out)")
    for c_in, c_out in [(64, 64), (512, 256)]:  # the blog's levels 2 and 16 (c_out = 2·c_in would hide a mistake)
        graph, variable = _in_new_graph(lambda c_in=c_in, c_out=c_out: answer(c_in, c_out))
        expect(isinstance(variable, tf.Variable), f"he_conv_weights({c_in}, {c_out}) returned {type(variable).__name__}.",
               "the blog keeps its weights in variables.", "tf.Variable(tf.random_normal(shape, stddev=...)).")  # fmt: skip
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            value = np.asarray(sess.run(variable))
        expect(c_in == c_out or value.shape != (3, 3, c_out, c_in), f"the shape is {value.shape}: channels swapped.",
               "a conv kernel's shape is [height, width, in channels, out channels].")  # fmt: skip
        expect(value.shape == (3, 3, c_in, c_out), f"he_conv_weights({c_in}, {c_out}) has shape {value.shape}.",
               "a conv kernel's shape is [height, width, in channels, out channels].", "[3, 3, c_in, c_out].")  # fmt: skip
        std, he = float(value.std()), float(np.sqrt(2.0 / (9 * c_in)))
        concept = "He's standard deviation is √(2 / fan_in), with fan_in the inputs of one output (notebook 03)."
        expect(abs(std - 1.0) > 0.05, "that is the blog's standard deviation, 1.", concept, "stddev=(2 / (3 * 3 * c_in)) ** 0.5.")
        expect(abs(std - np.sqrt(1.0 / (9 * c_in))) > 0.01 * he, "that σ keeps the variance of a linear layer.",
               "after a ReLU only half the signal's power is left, so He doubles the variance.",
               "stddev=(2 / (3 * 3 * c_in)) ** 0.5.")  # fmt: skip
        expect(c_in == c_out or abs(std - np.sqrt(2.0 / (9 * c_out))) > 0.01 * he, "your fan-in counts the filters.",
               "the fan-in counts the inputs of one output: 3·3·c_in.")  # fmt: skip
        expect(abs(std - he) < 0.03 * he and abs(float(value.mean())) < 0.1 * he,
               f"the weights have standard deviation {std:.4g}, He's is {he:.4g}.", concept,
               "tf.random_normal([3, 3, c_in, c_out], stddev=(2 / (3 * 3 * c_in)) ** 0.5).")  # fmt: skip
        print(f"{c_in} → {c_out} channels: shape {value.shape}, standard deviation {std:.4f} (He: {he:.4f})")


# --- 06_vgg_vs_alexnet --------------------------------------------------------------------------


@checker("06-batchnorm-convnet")
def _batchnorm_convnet(answer):
    import keras

    expect(isinstance(answer, keras.Model), f"you answered {type(answer).__name__}, not a Keras model.",
           "keras.Sequential([...]) with the layers of vh.models.simple_convnet(), changed after each Conv2D.")  # fmt: skip
    layers = [layer for layer in answer.layers if not isinstance(layer, keras.layers.InputLayer)]
    convs = [i for i, layer in enumerate(layers) if isinstance(layer, keras.layers.Conv2D)]
    expect(len(convs) == 2, f"Keras' example has two Conv2D layers, yours has {len(convs)}.",
           "start from the layers of vh.models.simple_convnet() (print its summary) and change only what follows "
           "each Conv2D.")  # fmt: skip
    fix = "Conv2D(..., use_bias=False), then keras.layers.BatchNormalization(), then keras.layers.ReLU()."
    for i in convs:
        conv, after = layers[i], layers[i + 1 : i + 3]
        kinds = [type(layer).__name__ for layer in after] or ["nothing"]
        expect(after and isinstance(after[0], keras.layers.BatchNormalization),
               f"{conv.name} is followed by {kinds[0]}, not BatchNormalization.",
               "notebook 03's fix: BatchNorm right after each convolution.", fix)  # fmt: skip
        expect(not conv.use_bias, f"{conv.name} still has a bias.",
               "BatchNorm subtracts each channel's mean right after the convolution, so a bias would do nothing.",
               fix)  # fmt: skip
        expect(conv.activation is keras.activations.linear, f"{conv.name} applies {conv.activation.__name__} before BatchNorm.",
               "normalise the convolution's output, then apply the ReLU.", fix)  # fmt: skip
        expect(len(after) > 1 and _is_relu(after[1]), f"the BatchNorm after {conv.name} is followed by {kinds[-1]}, not a ReLU.",
               "the ReLU comes after BatchNorm, as a layer.", fix)  # fmt: skip
    try:
        logits = keras.ops.convert_to_numpy(answer(np.zeros((2, 28, 28, 1), "float32"), training=False))
    except Exception as err:  # noqa: BLE001 - any failure of the forward pass is the learner's to see
        raise Wrong(f"a batch of two 28×28×1 images does not go through: {err}", "keras.Input((28, 28, 1)) first.") from None
    expect(logits.shape == (2, 10), f"the model outputs shape {logits.shape}, not (2, 10).", "end with keras.layers.Dense(10).")
    print(f"{answer.count_params():,} parameters; conv → BatchNorm → ReLU at both levels")


def final_accuracies(curves) -> list[float]:
    """The last test accuracy of each run of one cell (a list of ``TrainingCurve``)."""
    return [float(curve.accuracies[-1]) for curve in curves]


@checker("06-cell-spread")
def _cell_spread(answer, results):
    expect_callable(answer, "final_spread(curves)")
    for label, curves in results.items():
        finals = final_accuracies(curves)
        expected = (float(np.mean(finals)), min(finals), max(finals))
        got = answer(curves)
        expect(isinstance(got, (tuple, list)) and len(got) == 3, f"final_spread(results[{label!r}]) returned {_short(got)}.",
               "return three numbers: the mean, the lowest and the highest.")  # fmt: skip
        got = tuple(number(v, "an accuracy") for v in got)
        if np.allclose(got, expected, atol=1e-9):
            continue
        bests = [max(curve.accuracies) for curve in curves]
        expect(not np.allclose(got, (np.mean(bests), min(bests), max(bests)), atol=1e-9),
               "those are the best accuracies of the runs, not their last.",
               "compare the networks after the same number of images: the last evaluation, curve.accuracies[-1].")  # fmt: skip
        expect(not np.allclose(got, [100 * v for v in expected], atol=1e-6), "those are in percent.",
               "keep fractions (0.95, not 95).")  # fmt: skip
        raise Wrong(
            f"for {label!r} you give {got}, not the mean, lowest and highest of its final accuracies.",
            "one final accuracy per seed, then their mean, minimum and maximum.",
            "finals = [c.accuracies[-1] for c in curves]; return np.mean(finals), min(finals), max(finals).",
        )


# --- 07_data_parallel ---------------------------------------------------------------------------


@checker("07-global-batch")
def _global_batch(answer, replicas, per_replica_batch, base_rate, base_batch):
    expect(isinstance(answer, tuple) and len(answer) == 2, f"you answered {_short(answer)}.",
           "answer with a tuple of two numbers: (global_batch, learning_rate).")  # fmt: skip
    global_batch, rate = answer
    expected_batch = int(replicas) * int(per_replica_batch)
    expected_rate = float(base_rate) * expected_batch / int(base_batch)
    if not isinstance(global_batch, (int, np.integer)) and agrees(number(global_batch), expected_rate):
        raise Wrong(f"your tuple {answer} has the two numbers swapped.", "the global batch first, then the learning rate.")
    expect(
        isinstance(global_batch, (int, np.integer)) and not isinstance(global_batch, bool),
        f"the global batch {global_batch!r} is not a whole number.",
        "the global batch counts images: an int.",
    )
    expect(
        int(global_batch) == expected_batch,
        f"{int(global_batch)} is not the global batch.",
        "one update averages over the images of all replicas together (section 1).",
        f"{replicas} replicas × {per_replica_batch} images each.",
    )
    expect_value(
        number(rate, "the learning rate"), expected_rate,
        {float(base_rate) * int(replicas): "the rate multiplied by the number of GPUs: that is the rule against one "
                                           "replica's batch, but this rate was tuned for a batch of "
                                           f"{int(base_batch)}, not {int(per_replica_batch)}.",
         float(base_rate): "the rate unchanged.",
         float(base_rate) * np.sqrt(expected_batch / int(base_batch)): "the square-root rule; the exercise asks for the "
                                                                       "linear one."},
        "the linear scaling rule multiplies the rate by k, the factor by which the batch grew from the one the rate was "
        "tuned for (section 1).",
        f"{base_rate:g} × global batch / {base_batch}.",
    )  # fmt: skip


def _average_loss_forbidden():
    import tensorflow as tf

    return forbidden(
        (tf.nn, "compute_average_loss"),
        why="divide the sum of the per-example losses by the global batch yourself, with keras.ops.",
    )


@checker("07-replica-loss")
def _replica_loss(answer, global_batch_size):
    import keras

    expect_callable(answer, "replica_loss(labels, logits, global_batch_size)")
    expect(mentions(answer, "compute_average_loss") is None, "your function calls tf.nn.compute_average_loss.",
           "the exercise asks you to write what it does: divide the sum of the per-example losses by the global "
           "batch.")  # fmt: skip
    local = int(global_batch_size) // 2  # one of two replicas
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, local).astype("int32")
    logits = rng.normal(size=(local, 10)).astype("float32")
    per_example = keras.ops.convert_to_numpy(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
    expected = float(per_example.sum()) / int(global_batch_size)
    with _average_loss_forbidden():
        got = number(keras.ops.convert_to_numpy(answer(labels, logits, global_batch_size)), "the replica's loss")
    expect_value(
        got, expected,
        {2 * expected: "the mean over this replica's own examples: summed over two replicas by the all-reduce, it "
                       "doubles the gradient.",
         float(per_example.sum()): "the sum, not yet divided by anything."},
        "each replica divides the sum of its per-example losses by the global batch, so that the replicas' losses add "
        "up to the global batch's mean (section 1).",
        "keras.ops.sum(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)) / global_batch_size.",
        rel=1e-5,
    )  # fmt: skip


def _tiny_synchronized_net():
    import keras

    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, use_bias=False, kernel_initializer="he_normal"),
            keras.layers.BatchNormalization(synchronized=True),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(10),
        ]
    )


def _one_device_step(initial, x, y, learning_rate):
    """The check's own step on one device: (loss, correct, update)."""
    import keras
    import tensorflow as tf

    model = _tiny_synchronized_net()
    model.set_weights(initial)
    with tf.GradientTape() as tape:
        logits = model(x, training=True)
        loss = keras.ops.mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    correct = int(np.sum(np.argmax(logits.numpy(), axis=1) == y))
    return float(loss), correct, [-learning_rate * g.numpy() for g in gradients]


@checker("07-train-step")
def _train_step(answer, strategy, images, labels):
    import keras
    import tensorflow as tf

    expect_callable(answer, "make_my_step(strategy, model, optimizer, global_batch)")
    x, y = (np.asarray(images, "float32") / 255.0)[..., None], np.asarray(labels, "int32")
    global_batch, rate = len(x), 0.1
    keras.utils.set_random_seed(0)
    initial = _tiny_synchronized_net().get_weights()
    loss_1, correct_1, update_1 = _one_device_step(initial, x, y, rate)
    with strategy.scope():
        model, optimizer = _tiny_synchronized_net(), keras.optimizers.SGD(learning_rate=rate)
    model.set_weights(initial)
    before = [v.numpy() for v in model.trainable_variables]
    step = answer(strategy, model, optimizer, global_batch)
    expect_callable(step, "step(batch), returned by make_my_step")
    batch = next(iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices((x, y)).batch(global_batch))))
    with _average_loss_forbidden():
        out = step(batch)
    expect(isinstance(out, tuple) and len(out) == 2, f"step(batch) returned {_short(out)}.",
           "return two numbers: the global batch's loss and the number of images classified right.")  # fmt: skip
    expect(
        not any(isinstance(value, tf.distribute.DistributedValues) for value in out),
        "step(batch) returned one value per replica.",
        "strategy.reduce adds up the replicas' values into one.",
        "strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_value, axis=None).",
    )
    loss, correct = number(out[0], "the loss"), number(out[1], "the number of images classified right")
    update = [v.numpy() - w for v, w in zip(model.trainable_variables, before, strict=True)]
    gap = np.sqrt(sum(np.sum((u - r) ** 2) for u, r in zip(update, update_1, strict=True)) / sum(np.sum(r**2) for r in update_1))
    replicas = strategy.num_replicas_in_sync
    if gap > 1e-3:  # float32 rounding: a right step stays under it (tests/test_exercises.py runs one)
        ratio = np.sqrt(sum(np.sum(u**2) for u in update) / sum(np.sum(r**2) for r in update_1))
        expect(abs(ratio) > 1e-6, "the weights did not move.", "each replica applies its gradients.",
               "optimizer.apply_gradients(zip(gradients, model.trainable_variables)) in the replica's step.")  # fmt: skip
        expect(not math.isclose(ratio, replicas, rel_tol=0.01),
               f"your step moved the weights {replicas} times as far as one device does.",
               "each replica's loss is its sum divided by the global batch: the all-reduce adds the replicas' gradients.",
               "loss = replica_loss(labels, logits, global_batch) (exercise 2).")  # fmt: skip
        raise Wrong(f"your step's update differs from one device's by {gap:.2g} of its size.",
                    "two replicas with synchronized BatchNorm should make one device's step, to float32 rounding "
                    "(section 2).")  # fmt: skip
    expect(agrees(loss, loss_1, 1e-4), f"the loss {loss:.5g} is not the global batch's {loss_1:.5g}.",
           "each replica's loss is already divided by the global batch: add them up.",
           "strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica_losses, axis=None).")  # fmt: skip
    expect(agrees(correct, correct_1, 1e-9), f"{correct:g} images right, not {correct_1}.",
           "count the images each replica classified right, then add the replicas' counts.",
           "in the replica: keras.ops.sum(keras.ops.cast(keras.ops.argmax(logits, axis=1) == labels, 'int32')); then "
           "strategy.reduce(SUM, ...).")  # fmt: skip
    print(f"{replicas} replicas: loss {loss:.4f}, {correct:.0f} of {global_batch} right; the update matches one device's "
          f"to {gap:.1e} of its size")  # fmt: skip


@checker("07-overlap-speedup")
def _overlap_speedup(answer):
    expect_callable(answer, "overlapped_speedup(t_compute, gradient_bytes, devices, bytes_per_second)")
    for t_compute, gradient_bytes, devices, bandwidth in [(0.05, 210e6, 8, 12.5e9), (0.05, 210e6, 8, 1.25e9),
                                                          (0.5, 75e6, 1, 1.25e9)]:  # fmt: skip
        t_comm = 2 * (devices - 1) / devices * gradient_bytes / bandwidth
        expected = devices * t_compute / max(t_compute, t_comm)
        value = answer(t_compute, gradient_bytes, devices, bandwidth)
        if isinstance(value, tuple):
            raise Wrong(f"overlapped_speedup returned a tuple, {_short(value)}.",
                        "section 4's speedup returns (speed-up, whether communication dominates); yours returns the "
                        "speed-up alone, a float.")  # fmt: skip
        got = number(value, "the speed-up")
        if abs(got - expected) <= 1e-9 * expected:
            continue
        expect(abs(got - devices * t_compute / (t_compute + t_comm)) > 1e-9 * expected,
               "that is section 4's model without overlap, where the step waits for the all-reduce.",
               "with full overlap the step lasts as long as the longer of the two, max(t_compute, t_comm).")  # fmt: skip
        raise Wrong(
            f"overlapped_speedup({t_compute}, {gradient_bytes:g}, {devices}, {bandwidth:g}) = {got:.4g}, "
            f"expected {expected:.4g}.",
            "N devices process N batches in the time of one overlapped step, max(t_compute, t_comm).",
            "t_comm = 2 · (devices − 1) / devices · gradient_bytes / bytes_per_second; speed-up = devices · t_compute / "
            "max(t_compute, t_comm).",
        )


# --- 08_where_depth_pays ------------------------------------------------------------------------


def _row_rule(config) -> tuple[int, ...]:
    """The checker's own rule: 3×3 convs counted between pools (a 1×1 conv has no row)."""
    row, convs = [], 0
    for layer in config.layers:
        if layer.kind == "conv":
            if layer.kernel != 3:
                raise ValueError(f"{config.name} has a {layer.kernel}×{layer.kernel} conv")
            convs += 1
        elif layer.kind == "pool":
            row.append(convs)
            convs = 0
    return tuple(row)


@checker("08-row-rule")
def _convs_per_block(answer, table):
    from vgg_helpers.architectures import Architecture, _paper_layers, vgg_config

    expect_callable(answer, "convs_per_block(config)")
    concept = "count the layers whose kind is 'conv', and start a new block after each 'pool' (section 2)."
    made_up = Architecture("made-up", _paper_layers(([64] * 3, [128], [256] * 5, [512], [512, 512]), False), (224, 224, 3))
    for config in [vgg_config(name) for name in ("A", "A-LRN", "B", "D", "E")] + [made_up]:
        expected = _row_rule(config)
        got = answer(config)
        expect(isinstance(got, tuple), f"for {config.name} your function returned a {type(got).__name__}.",
               "the table's rows are tuples.", "return tuple(row).")  # fmt: skip
        expect(all(isinstance(n, (int, np.integer)) for n in got), "the row holds something else than whole numbers.",
               "a row holds numbers of convs: ints.")  # fmt: skip
        if got != expected:
            what = f"{config.name}: {got}, but it has {expected} convs per block."
            if len(got) != 5:
                what += f" Your row has {len(got)} blocks, the configuration 5 (one per pool)."
            elif sum(got) > sum(expected):
                what += " You count more layers than its 3×3 convs (LRN, dense or dropout?)."
            raise Wrong(what, concept, "loop over config.layers; layer.kind == 'conv' adds one, 'pool' closes the block.")
    try:
        got = answer(vgg_config("C"))
    except ValueError:
        pass
    else:
        raise Wrong(f"C has three 1×1 convs, but your function returned {got} for it.",
                    "a conv whose kernel is not 3 has no place in a row of 3×3 convs: raise ValueError.")  # fmt: skip
    expect(answer(vgg_config("E")) == tuple(table["E"]), "E's row is not the table's E.", concept)


@checker("08-most-confused")
def _most_confused(answer, labels, predictions):
    from vgg_helpers.data import FASHION_CLASSES
    from vgg_helpers.plots import confusion_matrix

    confusion = confusion_matrix(labels, predictions)
    both_ways = confusion + confusion.T
    np.fill_diagonal(both_ways, 0)
    i, j = np.unravel_index(both_ways.argmax(), both_ways.shape)
    expected = {FASHION_CLASSES[i], FASHION_CLASSES[j]}
    expect(not isinstance(answer, str) and hasattr(answer, "__len__"), f"you answered {_short(answer)}.",
           f"answer with two class names, e.g. {{'{FASHION_CLASSES[0]}', '{FASHION_CLASSES[6]}'}}.")  # fmt: skip
    names = set(answer)
    expect(not all(isinstance(n, (int, np.integer)) for n in names), "those are labels, not names.",
           "vh.data.FASHION_CLASSES[label] gives a class's name.")  # fmt: skip
    expect(len(names) == 2 and names <= set(FASHION_CLASSES), f"{_short(answer)} is not two names of vh.data.FASHION_CLASSES.",
           "answer with two different names from vh.data.FASHION_CLASSES.")  # fmt: skip
    off = confusion.copy()
    np.fill_diagonal(off, 0)
    a, b = np.unravel_index(off.argmax(), off.shape)
    expect(names == expected or names != {FASHION_CLASSES[a], FASHION_CLASSES[b]},
           "that is the largest mix-up in one direction.", "count each pair's mix-ups in both directions.",
           "confusion + confusion.T, then the largest entry off the diagonal.")  # fmt: skip
    expect(names == expected, "not that pair.", "the pair mixed up most often, both directions together.",
           "the largest entry of confusion + confusion.T off its diagonal.")  # fmt: skip
    print(f"{' and '.join(sorted(expected))}: {both_ways[i, j]} test images mixed up, in both directions")
