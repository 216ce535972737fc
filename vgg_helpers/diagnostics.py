"""Diagnostics for a network at initialisation: the ln(classes) rule, per-layer scales, gradients.

check_initial_loss(initial_loss(model, x, y))       # ≈ 2.30 for 10 classes, or a warning
stats = activation_stats(model, x)                   # std/mean/max/dead per level, dense, logits
predicted = scale_predictions(model, x)              # Var[y] = n_in · Var[w] · E[x²], per layer
grads = gradient_stats(model, x, y)                  # per weight layer: largest |g|, non-finite share, norm
callback = EarlyWarning()                            # in model.fit: flags a huge first loss, stops on NaN
"""

from __future__ import annotations

import dataclasses
import html
import math

import keras
import numpy as np
import tensorflow as tf

from vgg_helpers.models import levels

#: A first loss more than this many times ln(classes) means the output scale is wrong.
LOSS_ALARM_FACTOR = 10.0


def expected_initial_loss(classes: int = 10) -> float:
    """Cross-entropy of a uniform guess over ``classes``: ln(classes) (2.30 for 10)."""
    if classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {classes}.")
    return math.log(classes)


def initial_loss(model: keras.Model, x, y) -> float:
    """Mean cross-entropy of ``model``'s logits on ``(x, y)``, in inference mode."""
    logits = model(np.asarray(x, dtype="float32"), training=False)
    loss = keras.losses.sparse_categorical_crossentropy(np.asarray(y), logits, from_logits=True)
    return float(np.mean(keras.ops.convert_to_numpy(loss)))


def initial_loss_ok(loss: float, classes: int = 10, tolerance: float = 0.5) -> bool:
    """The sanity rule without the printing: is ``loss`` within ``tolerance`` of ln(classes)?"""
    return math.isfinite(loss) and abs(loss - expected_initial_loss(classes)) <= tolerance


def check_initial_loss(loss: float, classes: int = 10, tolerance: float = 0.5, name: str = "model") -> bool:
    """The sanity rule: an untrained classifier should start near ln(classes). Prints the verdict."""
    expected = expected_initial_loss(classes)
    if not math.isfinite(loss):
        print(
            f"✗ {name}: initial loss is {loss}: activations overflowed. Check the weight scale, "
            "and that the inputs are scaled to [0, 1]."
        )
        return False
    if initial_loss_ok(loss, classes, tolerance):
        print(f"✓ {name}: initial loss {loss:.3f} ≈ ln {classes} = {expected:.3f}")
        return True
    print(
        f"✗ {name}: initial loss {loss:.4g}, expected ≈ ln {classes} = {expected:.2f}: the logits are "
        f"{'far too large: check the initialisation scale' if loss > expected else 'biased'}."
    )
    return False


# --- Probing inside a model ------------------------------------------------------------------------


def probe_model(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """A model returning the output of every conv level, every dense layer and the logits, with names."""
    found = levels(model)
    names = [level.name for level in found]
    names[-1] = "logits"
    return keras.Model(model.input, [level.output.output for level in found]), names


@dataclasses.dataclass(frozen=True)
class LayerStats:
    name: str
    std: float
    mean: float
    max_abs: float
    dead: float  #: fraction of units (channels) that output 0 for every image of the batch
    finite: float  #: fraction of values that are finite
    squares_finite: float  #: fraction whose square is finite in float32 (|x| < 1.8e19)


class StatsTable(list):
    """Rows of :class:`LayerStats`; shows as a table in a notebook."""

    def __init__(self, rows, title: str = ""):
        super().__init__(rows)
        self.title = title

    def column(self, field: str) -> np.ndarray:
        return np.array([getattr(r, field) for r in self], dtype=float)

    def to_frame(self):
        """The table as a ``pandas.DataFrame`` (numbers, not strings), indexed by layer."""
        import pandas as pd

        return pd.DataFrame([dataclasses.asdict(r) for r in self]).set_index("name")

    _HEADERS = {"std": "std", "mean": "mean", "max_abs": "max |x|", "dead": "dead units", "finite": "finite",
                "squares_finite": "x² finite in float32"}  # fmt: skip
    _FORMATS = {"std": "{:.3g}", "mean": "{:.3g}", "max_abs": "{:.3g}",
                "dead": "{:.0%}", "finite": "{:.0%}", "squares_finite": "{:.0%}"}  # fmt: skip

    def _display_frame(self):
        frame = self.to_frame()
        for column, fmt in self._FORMATS.items():
            frame[column] = frame[column].map(fmt.format)
        frame.index.name = "layer"
        return frame.rename(columns=self._HEADERS)

    def __str__(self):
        text = self._display_frame().to_string()
        return f"{self.title}\n{text}" if self.title else text

    __repr__ = __str__

    def _repr_html_(self):
        caption = f"<p><b>{html.escape(self.title)}</b></p>" if self.title else ""
        return caption + self._display_frame().to_html(border=0)


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _stats(name: str, values: np.ndarray) -> LayerStats:
    """Statistics accumulated in float64 (no float64 copy), so the true magnitude shows even where
    float32 squares overflow."""
    values = np.asarray(values)
    finite = np.isfinite(values)
    with np.errstate(all="ignore"):
        all_finite = bool(finite.all())
        std = float(np.std(values, dtype=np.float64)) if all_finite else float("nan")
        mean = float(np.mean(values, dtype=np.float64)) if all_finite else float("nan")
        max_abs = float(np.max(np.abs(values))) if values.size else 0.0
        per_unit = values.reshape(-1, values.shape[-1])
        dead = float(np.mean(np.all(per_unit == 0, axis=0)))
        squares_finite = float(np.mean(np.abs(values) <= np.sqrt(FLOAT32_MAX)))
    return LayerStats(name, std, mean, max_abs, dead, float(finite.mean()), squares_finite)


def activation_stats(model: keras.Model, x, title: str = "", training: bool = False) -> StatsTable:
    """Std, mean, max |x|, dead fraction and finite fraction after every level, dense layer and the logits.

    ``training=True`` runs the model as ``fit`` does (BatchNorm normalises with the batch's own statistics,
    dropout is on); by default it runs as ``predict`` does."""
    probe, names = probe_model(model)
    with np.errstate(over="ignore"):
        outputs = probe(np.asarray(x, dtype="float32"), training=training)
    return StatsTable(
        [_stats(n, keras.ops.convert_to_numpy(o)) for n, o in zip(names, outputs, strict=True)], title or model.name
    )


@dataclasses.dataclass(frozen=True)
class ScalePrediction:
    name: str
    fan_in: int
    weight_var: float
    input_mean_square: float  #: E[x²] of the layer's input
    predicted_std: float  #: sqrt(fan_in · Var[w] · E[x²]) (+ Var[b], zero here)
    measured_std: float  #: std of the layer's output before its activation


def weight_layers(model: keras.Model) -> list[tuple[str, keras.layers.Layer]]:
    """The model's conv and dense layers, in order, named ``conv1``, ``conv2``, …, ``fc1``, …"""
    return [(level.short, level.weights) for level in levels(model)]


def scale_predictions(model: keras.Model, x) -> list[ScalePrediction]:
    """For each conv and dense layer: predicted and measured std of its pre-activation output.

    The prediction is Var[y] = n_in · Var[w] · E[x²] (independent zero-mean weights), with E[x²]
    measured on the layer's actual input and Var[w] on its actual kernel.
    """
    named = weight_layers(model)
    inputs_model = keras.Model(model.input, [layer.input for _, layer in named])
    with np.errstate(over="ignore"):
        inputs = inputs_model(np.asarray(x, dtype="float32"), training=False)
    if not isinstance(inputs, (list, tuple)):
        inputs = [inputs]
    rows = []
    for (name, layer), inp in zip(named, inputs, strict=True):
        kernel = layer.kernel
        if isinstance(layer, keras.layers.Conv2D):
            pre = tf.nn.conv2d(inp, kernel, strides=1, padding="SAME")
        else:
            pre = tf.matmul(inp, kernel)
        if layer.use_bias:
            pre = pre + layer.bias
        fan_in = int(np.prod(kernel.shape[:-1]))
        _, weight_var = _mean_and_variance(keras.ops.convert_to_numpy(kernel))
        input_mean, input_var = _mean_and_variance(keras.ops.convert_to_numpy(inp))
        ex2 = input_var + input_mean**2
        predicted = math.sqrt(fan_in * weight_var * ex2) if math.isfinite(ex2) else float("inf")
        _, pre_var = _mean_and_variance(keras.ops.convert_to_numpy(pre))
        measured = math.sqrt(pre_var) if math.isfinite(pre_var) else float("inf")
        rows.append(ScalePrediction(name, fan_in, weight_var, ex2, predicted, measured))
    return rows


#: Entries reduced at a time in float64 (by ``_mean_and_variance`` and ``gradient_stats``): 8 MB copies
#: whatever the layer's size.
_CHUNK = 2**20


def _mean_and_variance(values: np.ndarray, chunk: int = _CHUNK) -> tuple[float, float]:
    """Mean and variance accumulated in float64, a chunk at a time.

    A float64 copy of a full-width dense kernel (4096 × 4096) is 134 MB, and ``var`` makes a second
    one: this keeps the extra memory to 8 MB. Overflowed (infinite) values give an infinite variance.
    """
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise ValueError("cannot take the variance of an empty array.")
    total = squares = 0.0
    with np.errstate(all="ignore"):
        for start in range(0, flat.size, chunk):
            part = flat[start : start + chunk].astype(np.float64)
            total += float(part.sum())
            squares += float(np.dot(part, part))
        mean = total / flat.size
        variance = max(squares / flat.size - mean * mean, 0.0) if math.isfinite(squares) else float("inf")
    return mean, variance


def _measure(values: np.ndarray, limit: float) -> dict:
    """Largest |g|, share not finite, share above ``limit`` and the norm of a flat float32 array, in float64,
    one chunk at a time (a whole float64 copy of the blog's first dense kernel would be 134 MB, several
    temporaries of it half a gigabyte)."""
    largest, not_finite, over, squares = 0.0, 0, 0, 0.0
    for start in range(0, max(values.size, 1), _CHUNK):
        chunk = values[start : start + _CHUNK].astype(np.float64)
        finite = chunk[np.isfinite(chunk)]
        not_finite += chunk.size - finite.size
        over += int(np.count_nonzero(np.abs(chunk) > limit))
        if finite.size:
            largest = max(largest, float(np.abs(finite).max()))
            squares += float(np.dot(finite, finite))
    size = max(values.size, 1)
    return {
        "largest |g|": largest if not_finite < values.size else float("nan"),
        "not finite": not_finite / size,
        "g² overflows float32": over / size,
        "norm": float(np.sqrt(squares)),
    }


def _group_gradients(model: keras.Model, kernels: list):
    """A compiled function of (x, y): the gradient of the loss with respect to ``kernels``. A graph frees each
    intermediate once it is used: at the blog's full width its peak is half an eager tape's."""

    @tf.function
    def gradients(x, y):
        with tf.GradientTape() as tape:
            logits = model(x, training=False)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        return tape.gradient(loss, kernels)

    return gradients


def gradient_stats(model: keras.Model, x, y):
    """For every conv and dense kernel, the gradient of the loss on one batch, at the current weights, as
    TensorFlow computes it (float32) but measured in float64, so that the measurement cannot overflow:
    the largest |g|, the share of entries that are not finite, the share whose square overflows float32
    (|g| > 1.8·10¹⁹: what Adam's running average of g² cannot hold), and the norm. A ``pandas.DataFrame``
    indexed by layer.

    The gradients are taken in groups (all conv kernels, then each dense kernel on its own), each in a
    compiled graph, and dropped once measured: at the blog's full width all of them at once are 210 MB, the
    largest group 75 MB (docs/benchmarks.md has the memory this saves).
    """
    import pandas as pd

    x = tf.convert_to_tensor(np.asarray(x, dtype="float32"))
    y = tf.convert_to_tensor(np.asarray(y))
    named = weight_layers(model)
    groups = [[item for item in named if item[0].startswith("conv")]] + [[item] for item in named if item[0].startswith("fc")]
    rows = {}
    limit = np.sqrt(FLOAT32_MAX)
    for group in filter(None, groups):
        grads = _group_gradients(model, [layer.kernel for _, layer in group])(x, y)
        for (name, _), g in zip(group, grads, strict=True):
            values = np.zeros(1, np.float32) if g is None else keras.ops.convert_to_numpy(g).ravel()
            rows[name] = _measure(values, limit)
        del grads
    return pd.DataFrame.from_dict({name: rows[name] for name, _ in named}, orient="index")


# --- The early-warning callback -------------------------------------------------------------------


class EarlyWarning(keras.callbacks.TerminateOnNaN):
    """Flags a first-batch loss far above ln(classes), and stops training on a NaN or infinite loss.

    Keras' ``TerminateOnNaN`` stops on a non-finite loss; this adds a message saying what to check,
    and the same check of the loss scale at the very first batch, before hours are spent.
    """

    def __init__(self, classes: int = 10, factor: float = LOSS_ALARM_FACTOR):
        super().__init__()
        self.classes = classes
        self.factor = factor
        self.threshold = factor * expected_initial_loss(classes)
        self.messages: list[str] = []
        self._seen_first = False

    def _say(self, message: str) -> None:
        self.messages.append(message)
        print(message)

    def on_train_begin(self, logs=None):
        self._seen_first = False

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        loss = float(loss)
        if not math.isfinite(loss):
            self._say(
                f"EarlyWarning: the loss is {loss} at batch {batch}; training stopped. Check the weight "
                "initialisation (activations overflow float32 when each layer multiplies their scale), "
                "the learning rate, and that the inputs are scaled to [0, 1]."
            )
        elif not self._seen_first and loss > self.threshold:
            self._say(
                f"EarlyWarning: the first batch's loss is {loss:.3g}, more than {self.factor:g} "
                f"× ln {self.classes} = {self.threshold:.3g}. An untrained classifier should start near "
                f"{expected_initial_loss(self.classes):.2f}: the logits are far too large. Check the "
                "initialisation scale (e.g. He or Glorot instead of N(0, 1)) and the input scaling."
            )
        self._seen_first = True
        super().on_batch_end(batch, logs)
