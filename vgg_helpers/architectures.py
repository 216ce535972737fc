"""VGG architectures as data, per-layer tables of shapes, parameters, compute and memory, and layers.

An :class:`Architecture` is a list of :class:`Layer` specs. The same object feeds
:func:`layer_table` (pure arithmetic, no TensorFlow) and ``vgg_helpers.models.build_model``
(a Keras model), so the table and ``model.summary()`` agree by construction::

    arch = vgg_config("D")                 # VGG-16 of the paper, 224×224×3, 1000 classes
    table = layer_table(arch)              # one row per layer
    table.total("params")                  # 138,357,544
    trace_shapes(blog_vgg(), (28, 28, 1))  # the blog post's MNIST network

Pure arithmetic: nothing here imports TensorFlow or Keras (the LRN layer is in ``vgg_helpers.models``).
"""

from __future__ import annotations

import dataclasses
import html
import math
from collections.abc import Iterable, Sequence

KINDS = ("conv", "bn", "pool", "lrn", "dense", "dropout")
BYTES_PER_FLOAT32 = 4
#: The blog's LRN settings (the TensorFlow CIFAR-10 tutorial's): depth radius 4, bias 1, alpha 0.001/9, beta 0.75.
BLOG_LRN = {"depth_radius": 4, "bias": 1.0, "alpha": 0.001 / 9.0, "beta": 0.75}


def conv_macs(height: int, width: int, kernel, channels_in: int, channels_out: int) -> int:
    """Multiply-accumulates of a convolution producing a ``height`` × ``width`` map; ``kernel`` is a size or (h, w)."""
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    return height * width * kh * kw * channels_in * channels_out


def dense_macs(units_in: int, units_out: int) -> int:
    return units_in * units_out


def group_levels(items, starts_level, skip=lambda item: False) -> list[list]:
    """Split a sequence of layers (or table rows) into levels: each level starts at an item for which
    ``starts_level`` is true and holds what follows up to the next one; ``skip`` items belong to none
    and close the level before them. Used for the table (:func:`trace_levels`) and for Keras models
    (``vgg_helpers.models.levels``), so both see the same levels."""
    groups: list[list] = []
    for item in items:
        if skip(item):
            groups.append([])
        elif starts_level(item) or not groups:
            groups.append([item])
        else:
            groups[-1].append(item)
    return [g for g in groups if g]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer of an architecture.

    ``kind`` is one of :data:`KINDS`. ``units`` is the number of filters (conv) or outputs
    (dense); ``kernel`` the conv kernel size; ``relu`` whether a ReLU follows; ``bias`` whether
    the layer has a bias; ``scale`` whether the width multiplier applies (not to the class layer);
    ``rate`` the dropout rate.
    """

    kind: str
    units: int = 0
    kernel: int = 3
    relu: bool = True
    bias: bool = True
    scale: bool = True
    rate: float = 0.0


def conv(filters: int, kernel: int = 3, relu: bool = True, bias: bool = True) -> Layer:
    return Layer("conv", filters, kernel, relu, bias)


def pool() -> Layer:
    return Layer("pool", relu=False, bias=False)


def lrn() -> Layer:
    return Layer("lrn", relu=False, bias=False)


def batchnorm(relu: bool = True) -> Layer:
    return Layer("bn", relu=relu, bias=False)


# blog_vgg's keyword arguments `lrn` and `batchnorm` shadow the constructors above inside it.
_lrn_layer, _batchnorm_layer = lrn, batchnorm


def dense(units: int, relu: bool = True, scale: bool = True) -> Layer:
    return Layer("dense", units, relu=relu, scale=scale)


def dropout(rate: float) -> Layer:
    return Layer("dropout", relu=False, bias=False, rate=rate)


@dataclasses.dataclass(frozen=True)
class Architecture:
    """A named stack of layers for a given input shape. ``pool_padding`` is 'same' or 'valid'."""

    name: str
    layers: tuple[Layer, ...]
    input_shape: tuple[int, int, int]
    pool_padding: str = "same"
    description: str = ""

    @property
    def weight_layers(self) -> int:
        """Conv and dense layers: the 'depth' the VGG paper counts (16 for D, 19 for E)."""
        return sum(layer.kind in ("conv", "dense") for layer in self.layers)


# --- The paper's configurations (Simonyan & Zisserman 2015, Table 1) ---------------------------


def _paper_layers(blocks: Sequence[Sequence], lrn_after_first: bool = False) -> tuple[Layer, ...]:
    """Blocks of convs (an int = 3×3 conv, (n, 1) = 1×1 conv), a max-pool after each, then FC."""
    layers: list[Layer] = []
    for i, block in enumerate(blocks):
        for j, item in enumerate(block):
            filters, kernel = (item, 3) if isinstance(item, int) else item
            layers.append(conv(filters, kernel))
            if lrn_after_first and i == 0 and j == 0:
                layers.append(lrn())
        layers.append(pool())
    layers += [dense(4096), dropout(0.5), dense(4096), dropout(0.5), dense(1000, relu=False, scale=False)]
    return tuple(layers)


_PAPER_BLOCKS = {
    "A": ([64], [128], [256, 256], [512, 512], [512, 512]),
    "A-LRN": ([64], [128], [256, 256], [512, 512], [512, 512]),
    "B": ([64, 64], [128, 128], [256, 256], [512, 512], [512, 512]),
    "C": ([64, 64], [128, 128], [256, 256, (256, 1)], [512, 512, (512, 1)], [512, 512, (512, 1)]),
    "D": ([64, 64], [128, 128], [256] * 3, [512] * 3, [512] * 3),
    "E": ([64, 64], [128, 128], [256] * 4, [512] * 4, [512] * 4),
}
#: Parameter counts the paper's Table 2 gives, in millions.
PAPER_PARAMS_MILLIONS = {"A": 133, "A-LRN": 133, "B": 133, "C": 134, "D": 138, "E": 144}


def vgg_config(name: str, input_shape=(224, 224, 3)) -> Architecture:
    """One of the paper's configurations A, A-LRN, B, C, D (VGG-16) or E (VGG-19)."""
    key = name.upper()
    if key not in _PAPER_BLOCKS:
        raise ValueError(f"no VGG configuration {name!r}; the paper has {', '.join(_PAPER_BLOCKS)}.")
    layers = _paper_layers(_PAPER_BLOCKS[key], lrn_after_first=key == "A-LRN")
    arch = Architecture(f"VGG config {key}", layers, tuple(input_shape))
    return dataclasses.replace(arch, description=f"{arch.weight_layers} weight layers")


VGG_CONFIG_NAMES = tuple(_PAPER_BLOCKS)

# --- The blog post's MNIST network ----------------------------------------------------------------

#: Filters of the blog's 16 conv levels.
BLOG_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 256)
#: The blog pools after these conv levels (1-based).
BLOG_POOLS = (2, 4, 12)


def _add_weight_layer(layers: list[Layer], layer: Layer, batchnorm: bool) -> None:
    """Append a conv or dense layer; with ``batchnorm``, as weights only (no bias, no ReLU) followed by
    BatchNorm + ReLU."""
    if batchnorm:
        layers.append(dataclasses.replace(layer, relu=False, bias=False))
        layers.append(_batchnorm_layer())
    else:
        layers.append(layer)


def blog_vgg(
    widths: Sequence[int] = BLOG_WIDTHS,
    pools: Iterable[int] = BLOG_POOLS,
    lrn: bool = True,
    batchnorm: bool = False,
    dense_units: Sequence[int] = (4096, 4096),
    dropout_rate: float = 0.25,
    classes: int = 10,
    input_shape=(28, 28, 1),
    pool_padding: str = "same",
) -> Architecture:
    """The blog's VGG for MNIST: each conv level is conv 3×3 + ReLU, a 2×2 max-pool after the
    levels in ``pools``, then LRN; then dense layers with dropout and the class layer. The post does
    not show its dense half or its dropout value: dropout after each hidden dense layer, keeping 75%
    of the units, is this collection's reconstruction (docs/blog-post.md). ``batchnorm=True`` puts
    BatchNorm between each conv/dense and its ReLU (and drops the now redundant biases).
    """
    pools = tuple(sorted(set(pools)))
    for p in pools:
        if not 1 <= p <= len(widths):
            raise ValueError(f"cannot pool after conv {p}: the network has conv levels 1 to {len(widths)}.")
    layers: list[Layer] = []

    for level, filters in enumerate(widths, start=1):
        _add_weight_layer(layers, conv(filters), batchnorm)
        if level in pools:
            layers.append(pool())
        if lrn:
            layers.append(_lrn_layer())
    for units in dense_units:
        _add_weight_layer(layers, dense(units), batchnorm)
        if dropout_rate:
            layers.append(dropout(dropout_rate))
    layers.append(dense(classes, relu=False, scale=False))
    parts = [f"{len(widths)} convs", "pools after " + ", ".join(map(str, pools)) if pools else "no pools"]
    parts += ["LRN"] if lrn else []
    parts += ["BatchNorm"] if batchnorm else []
    return Architecture("blog VGG", tuple(layers), tuple(input_shape), pool_padding, "; ".join(parts))


#: Filters of the three conv levels of TensorFlow-Examples' "AlexNet" (alexnet.py), this collection's stand-in for the
#: AlexNet implementation the blog post says it drew on.
ALEXNET_WIDTHS = (64, 128, 256)


def blog_alexnet(
    widths: Sequence[int] = ALEXNET_WIDTHS,
    lrn: bool = True,
    batchnorm: bool = False,
    dense_units: Sequence[int] = (1024, 1024),
    dropout_rate: float = 0.2,
    classes: int = 10,
    input_shape=(28, 28, 1),
) -> Architecture:
    """The "AlexNet" for 28×28 MNIST of TensorFlow-Examples' ``alexnet.py``, whose helpers' arguments the blog
    post's match (the post says it drew on an AlexNet implementation): three levels of conv 3×3 + ReLU, 2×2
    max-pool ('same'), LRN and dropout (keep 0.8, a rate of 0.2, as ``alexnet.py`` has it), then dense
    1024 → 1024 → classes without dropout.
    5,624,842 parameters at full width. ``batchnorm=True`` puts BatchNorm between each conv/dense and its
    ReLU, as :func:`blog_vgg` does.
    """
    layers: list[Layer] = []

    for filters in widths:
        _add_weight_layer(layers, conv(filters), batchnorm)
        layers.append(pool())
        if lrn:
            layers.append(_lrn_layer())
        if dropout_rate:
            layers.append(dropout(dropout_rate))
    for units in dense_units:
        _add_weight_layer(layers, dense(units), batchnorm)
    layers.append(dense(classes, relu=False, scale=False))
    parts = [f"{len(widths)} convs, a pool after each"] + (["LRN"] if lrn else []) + (["BatchNorm"] if batchnorm else [])
    return Architecture("blog AlexNet", tuple(layers), tuple(input_shape), "same", "; ".join(parts))


# --- Tables -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Row:
    """One layer of a :class:`LayerTable`. ``activations`` counts output values per image."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int
    activations: int

    @property
    def activation_bytes(self) -> int:
        return self.activations * BYTES_PER_FLOAT32


class LayerTable(list):
    """Rows of :func:`layer_table`, with totals; shows as a table in a notebook."""

    columns = ("layer", "output shape", "parameters", "MACs", "activations (KiB)")

    def __init__(self, rows: Iterable[Row], title: str = ""):
        super().__init__(rows)
        self.title = title

    def total(self, field: str, kinds: Iterable[str] | None = None) -> int:
        kinds = None if kinds is None else set(kinds)
        return sum(getattr(r, field) for r in self if kinds is None or r.kind in kinds)

    def to_frame(self):
        """The table as a ``pandas.DataFrame``, one row per layer (numbers, not strings)."""
        import pandas as pd

        return pd.DataFrame(
            {
                "layer": [r.name for r in self],
                "output shape": ["×".join(map(str, r.output_shape)) for r in self],
                "parameters": [r.params for r in self],
                "MACs": [r.macs for r in self],
                "activations (KiB)": [r.activation_bytes / 1024 for r in self],
            }
        )

    def _display_frame(self):
        """:meth:`to_frame` with a total row."""
        import pandas as pd

        total = {
            "layer": "total",
            "output shape": "",
            "parameters": self.total("params"),
            "MACs": self.total("macs"),
            "activations (KiB)": self.total("activations") * BYTES_PER_FLOAT32 / 1024,
        }
        return pd.concat([self.to_frame(), pd.DataFrame([total])], ignore_index=True)

    _FORMATS = {"parameters": "{:,}".format, "MACs": "{:,}".format, "activations (KiB)": "{:,.1f}".format}

    def __str__(self) -> str:
        text = self._display_frame().to_string(index=False, formatters=self._FORMATS, justify="right")
        return f"{self.title}\n{text}" if self.title else text

    def _repr_html_(self) -> str:
        html_table = self._display_frame().to_html(index=False, formatters=self._FORMATS, justify="right", border=0)
        return (f"<p><b>{html.escape(self.title)}</b></p>" if self.title else "") + html_table

    def __repr__(self) -> str:
        return str(self)


def scaled(units: int, width: float) -> int:
    """``units`` times the width multiplier, rounded, at least 1."""
    return max(1, int(round(units * width)))


def _check_width(width: float) -> None:
    if not (isinstance(width, (int, float)) and math.isfinite(width) and width > 0):
        raise ValueError(f"width must be a positive number (1.0 = the original widths), got {width!r}.")


def _pool_size(n: int, padding: str) -> int:
    return -(-n // 2) if padding == "same" else n // 2


def layer_table(arch: Architecture, width: float = 1.0) -> LayerTable:
    """Per layer: output shape, parameters, multiply-accumulates and activations for one image.

    Convs use SAME padding (VGG pads by 1); pools are 2×2, stride 2, with ``arch.pool_padding``.
    Raises ``ValueError`` for an unknown layer kind, a non-positive width or size, or a pool that
    shrinks the feature map below 1×1 (naming the layer).
    """
    _check_width(width)
    if arch.pool_padding not in ("same", "valid"):
        raise ValueError(f"pool_padding must be 'same' or 'valid', got {arch.pool_padding!r}.")
    h, w, c = arch.input_shape
    if min(h, w, c) <= 0:
        raise ValueError(f"input shape must be positive, got {arch.input_shape}.")
    rows = LayerTable([], title=f"{arch.name}" + (f" at width ×{width:g}" if width != 1 else ""))
    flat = None  # number of features once the dense layers start
    n_conv = n_dense = n_pool = 0
    last_conv = "the input"
    for layer in arch.layers:
        if layer.kind not in KINDS:
            raise ValueError(f"unknown layer kind {layer.kind!r}; use one of {', '.join(KINDS)}.")
        if layer.kind in ("conv", "dense") and layer.units <= 0:
            raise ValueError(f"{layer.kind} layer {n_conv + n_dense + 1} needs a positive number of units, got {layer.units}.")
        units = scaled(layer.units, width) if layer.scale else layer.units
        if layer.kind == "conv":
            if flat is not None:
                raise ValueError("a conv layer cannot follow a dense layer.")
            if layer.kernel <= 0:
                raise ValueError(f"conv {n_conv + 1}: kernel size must be positive, got {layer.kernel}.")
            n_conv += 1
            params = layer.kernel * layer.kernel * c * units + (units if layer.bias else 0)
            macs = conv_macs(h, w, layer.kernel, c, units)
            c = units
            last_conv = f"conv {n_conv}"
            rows.append(Row(f"conv{n_conv} {layer.kernel}×{layer.kernel}", "conv", (h, w, c), params, macs, h * w * c))
        elif layer.kind == "pool":
            n_pool += 1
            h2, w2 = _pool_size(h, arch.pool_padding), _pool_size(w, arch.pool_padding)
            if h2 < 1 or w2 < 1:
                raise ValueError(
                    f"pool {n_pool} (after {last_conv}) shrinks the {h}×{w} map to {h2}×{w2} with "
                    f"{arch.pool_padding.upper()} padding: pool fewer times, later, or use SAME padding."
                )
            h, w = h2, w2
            rows.append(Row(f"pool{n_pool} 2×2", "pool", (h, w, c), 0, 0, h * w * c))
        elif layer.kind == "lrn":
            rows.append(Row("LRN", "lrn", (h, w, c), 0, 0, h * w * c))
        elif layer.kind == "bn":
            shape = (h, w, c) if flat is None else (flat,)
            channels = shape[-1]
            rows.append(Row("BatchNorm", "bn", shape, 4 * channels, 0, math.prod(shape)))
        elif layer.kind == "dropout":
            shape = (flat,) if flat is not None else (h, w, c)
            rows.append(Row(f"dropout {layer.rate:g}", "dropout", shape, 0, 0, 0))
        elif layer.kind == "dense":
            if flat is None:
                flat = h * w * c
            n_dense += 1
            params = flat * units + (units if layer.bias else 0)
            rows.append(Row(f"fc{n_dense}", "dense", (units,), params, dense_macs(flat, units), units))
            flat = units
    return rows


def trace_shapes(arch: Architecture, input_shape=None, width: float = 1.0) -> LayerTable:
    """:func:`layer_table` for ``arch`` on another input shape (e.g. ``(28, 28, 1)``)."""
    if input_shape is not None:
        arch = dataclasses.replace(arch, input_shape=tuple(input_shape))
    return layer_table(arch, width)


def trace_levels(arch: Architecture, input_shape=None, width: float = 1.0) -> LayerTable:
    """One row per conv *level* (its conv, BatchNorm, pool and LRN together) and per dense layer.

    Each row has the level's output shape and its summed parameters, MACs and activations:
    the shape trace of the blog's ``convLevel`` stack for any configuration.
    """
    rows = trace_shapes(arch, input_shape, width)
    levels = group_levels(rows, lambda row: row.kind in ("conv", "dense"))
    table = LayerTable([], title=f"{rows.title}, per level")
    n_conv = n_dense = 0
    for group in levels:
        head = group[0]
        if head.kind == "conv":
            n_conv += 1
            name = f"level {n_conv}: " + " + ".join(r.name.split(" ")[0].rstrip("0123456789") for r in group)
        else:
            n_dense += 1
            name = f"fc{n_dense}" + "".join(f" + {r.name.split(' ')[0]}" for r in group[1:])
        table.append(
            Row(
                name,
                head.kind,
                group[-1].output_shape,
                sum(r.params for r in group),
                sum(r.macs for r in group),
                sum(r.activations for r in group),
            )
        )
    return table


def receptive_field(n_convs: int, kernel: int = 3) -> int:
    """Receptive field (pixels per side) of ``n_convs`` stacked stride-1 convs of size ``kernel``."""
    if n_convs < 0 or kernel < 1:
        raise ValueError("n_convs must be >= 0 and kernel >= 1.")
    return 1 + n_convs * (kernel - 1)
