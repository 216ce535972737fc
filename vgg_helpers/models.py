"""Keras models built from :mod:`vgg_helpers.architectures` descriptions.

    model = build_model(blog_vgg(), initializer="blog")             # the blog's network: N(0, 1) weights, zero biases
    model = build_model(blog_vgg(lrn=False, batchnorm=True), width=1/8, initializer="he_normal")

The model has exactly the layers of ``layer_table(arch, width)``, so their parameter counts agree.
"""

from __future__ import annotations

import dataclasses
import os

import keras

from vgg_helpers.architectures import (
    BYTES_PER_FLOAT32,
    Architecture,
    dense_macs,
    group_levels,
    layer_table,
    scaled,
)
from vgg_helpers.architectures import (
    conv_macs as _conv_macs,
)

# --- The LRN layer (Keras has none) -------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="vgg_helpers")
class LocalResponseNormalization(keras.layers.Layer):
    """Local response normalisation across channels, as ``tf.nn.local_response_normalization``.

    ``y = x / (bias + alpha * sum over the 2·depth_radius+1 nearest channels of x²) ** beta``.
    Defaults: the post's lsize=4, with bias, alpha and beta from alexnet.py.
    Registered, so ``.keras`` files load without ``safe_mode=False``.
    """

    def __init__(self, depth_radius=4, bias=1.0, alpha=0.001 / 9.0, beta=0.75, **kwargs):
        super().__init__(**kwargs)
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def call(self, inputs):
        import tensorflow as tf

        return tf.nn.local_response_normalization(
            inputs, depth_radius=self.depth_radius, bias=self.bias, alpha=self.alpha, beta=self.beta
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "depth_radius": self.depth_radius,
            "bias": self.bias,
            "alpha": self.alpha,
            "beta": self.beta,
        }


# --- Models from architecture descriptions -----------------------------------------------------------


#: Named initialisations used in the notebooks, besides any Keras initializer name.
#: Biases start at zero, except where :data:`RANDOM_BIASES` says otherwise.
INITIALIZERS = {
    # The blog post's weights: tf.random_normal, standard deviation 1 (its biases: tf.zeros; docs/blog-post.md).
    "blog": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
    # TensorFlow-Examples' alexnet.py (docs/blog-post.md): tf.random_normal for weights and biases alike.
    "tf_examples": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=1.0),
    # The VGG paper (Section 3.1): "a normal distribution with the zero mean and 10^-2 variance", so σ = 0.1.
    "vgg_paper": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=0.1),
    # AlexNet's σ = 0.01 (Krizhevsky et al., 2012).
    "alexnet": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=0.01),
}


#: Initialisations that draw the biases from the weights' distribution too. Only TensorFlow-Examples'
#: ``alexnet.py`` does; the blog post's VGG starts every bias at ``tf.zeros`` (docs/blog-post.md).
RANDOM_BIASES = {"tf_examples"}


def get_initializer(initializer):
    """A Keras initializer from a name in :data:`INITIALIZERS`, a Keras name, or an instance."""
    if isinstance(initializer, str) and initializer in INITIALIZERS:
        return INITIALIZERS[initializer]()
    try:
        return keras.initializers.get(initializer)
    except ValueError as err:
        raise ValueError(
            f"unknown initializer {initializer!r}: use one of {', '.join(INITIALIZERS)}, a Keras "
            "name such as 'he_normal' or 'glorot_uniform', or a keras.initializers object."
        ) from err


def available_memory_bytes() -> int | None:
    """Memory the system can still hand out (Linux: ``MemAvailable``; elsewhere the physical memory), or None."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(table, width: float, available: int | None = None) -> None:
    """Raise ``ValueError`` before allocating anything if the weights alone (float32) exceed the memory
    available; the message gives the widest width that fits."""
    available = available_memory_bytes() if available is None else available
    needed = table.total("params") * BYTES_PER_FLOAT32
    if available is None or needed <= available:
        return
    fits = width * (available / needed) ** 0.5  # parameters grow about as the square of the width
    raise ValueError(
        f"at width ×{width:g} this network has {table.total('params'):,} parameters: {needed / 1e9:,.1f} GB of float32 "
        f"weights alone, more than the {available / 1e9:,.1f} GB of memory available here (training needs about four "
        f"times the weights: weights, gradients and Adam's two averages). Use a width of at most about ×{fits:.2g}."
    )


def build_model(
    arch: Architecture,
    width: float = 1.0,
    initializer="he_normal",
    bn_momentum: float = 0.99,
) -> keras.Model:
    """A functional Keras model of ``arch`` at ``width``; weights from ``initializer``; biases zero (as the blog
    post's ``tf.zeros``), except for ``"tf_examples"``, whose biases come from the same N(0, 1) as its weights.

    ``layer_table(arch, width)`` validates the architecture first, so a bad configuration raises
    the same ``ValueError`` (naming the layer) before any weight is allocated.
    """
    check_fits_in_memory(layer_table(arch, width), width)  # raises ValueError on a bad width or architecture
    init = get_initializer(initializer)
    bias_init = init if isinstance(initializer, str) and initializer in RANDOM_BIASES else keras.initializers.Zeros()
    inputs = keras.Input(arch.input_shape, name="image")
    x = inputs
    n_conv = n_dense = n_pool = n_lrn = n_bn = n_drop = 0
    flattened = False

    def fresh(init_):  # one initializer object per layer, as Keras recommends
        return init_.__class__.from_config(init_.get_config())

    for layer in arch.layers:
        units = scaled(layer.units, width) if layer.scale else layer.units
        if layer.kind == "conv":
            n_conv += 1
            x = keras.layers.Conv2D(
                units,
                layer.kernel,
                padding="same",
                use_bias=layer.bias,
                activation="relu" if layer.relu else None,
                kernel_initializer=fresh(init),
                bias_initializer=fresh(bias_init),
                name=f"conv{n_conv}",
            )(x)
        elif layer.kind == "pool":
            n_pool += 1
            x = keras.layers.MaxPooling2D(2, 2, padding=arch.pool_padding, name=f"pool{n_pool}")(x)
        elif layer.kind == "lrn":
            n_lrn += 1
            x = LocalResponseNormalization(name=f"lrn{n_lrn}")(x)
        elif layer.kind == "bn":
            n_bn += 1
            x = keras.layers.BatchNormalization(momentum=bn_momentum, name=f"bn{n_bn}")(x)
            if layer.relu:
                x = keras.layers.ReLU(name=f"relu_bn{n_bn}")(x)
        elif layer.kind == "dropout":
            n_drop += 1
            x = keras.layers.Dropout(layer.rate, name=f"dropout{n_drop}")(x)
        elif layer.kind == "dense":
            if not flattened:
                x = keras.layers.Flatten(name="flatten")(x)
                flattened = True
            n_dense += 1
            is_logits = layer is arch.layers[-1]
            x = keras.layers.Dense(
                units,
                use_bias=layer.bias,
                activation="relu" if layer.relu else None,
                kernel_initializer=fresh(init),
                bias_initializer=fresh(bias_init),
                name=f"fc{n_dense}",
                dtype="float32" if is_logits else None,  # logits stay float32 under mixed precision
            )(x)
    return keras.Model(inputs, x, name=arch.name.replace(" ", "_"))


@dataclasses.dataclass(frozen=True)
class Level:
    """One level of a model: a Conv2D or Dense layer and what follows it up to the next one."""

    name: str  #: "conv level 3", "fc2"
    short: str  #: "conv3", "fc2"
    layers: tuple  #: the level's layers, its conv or dense layer first
    output: keras.layers.Layer  #: the layer whose output is the level's: the last one that is not dropout

    @property
    def weights(self) -> keras.layers.Layer:
        return self.layers[0]

    @property
    def is_conv(self) -> bool:
        return isinstance(self.layers[0], keras.layers.Conv2D)


def levels(model: keras.Model) -> list[Level]:
    """The model's levels, grouped as :func:`vgg_helpers.architectures.trace_levels` groups a table's rows.

    A conv level's output is taken after its BatchNorm, ReLU, pool and LRN, as the blog's ``convLevel``
    returns it (dropout excluded); the Flatten before the dense layers belongs to no level.
    """
    groups = group_levels(
        model.layers[1:],
        starts_level=lambda layer: isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)),
        skip=lambda layer: isinstance(layer, keras.layers.Flatten),
    )
    result, counts = [], {"conv": 0, "fc": 0}
    for group in groups:
        if not isinstance(group[0], (keras.layers.Conv2D, keras.layers.Dense)):
            continue  # layers before the first conv (e.g. an augmentation layer)
        kind = "conv" if isinstance(group[0], keras.layers.Conv2D) else "fc"
        counts[kind] += 1
        name = f"conv level {counts[kind]}" if kind == "conv" else f"fc{counts[kind]}"
        output = next((layer for layer in reversed(group) if not isinstance(layer, keras.layers.Dropout)), group[0])
        result.append(Level(name, f"{kind}{counts[kind]}", tuple(group), output))
    return result


def level_outputs(model: keras.Model) -> keras.Model:
    """A model giving the output of every conv level of ``model``, in order (see :func:`levels`)."""
    ends = [level.output for level in levels(model) if level.is_conv]
    if not ends:
        raise ValueError("the model has no conv levels.")
    return keras.Model(model.input, [layer.output for layer in ends], name=f"{model.name}_levels")


def simple_convnet(input_shape=(28, 28, 1), classes: int = 10) -> keras.Model:
    """Keras' "Simple MNIST convnet" example: 34,826 parameters (logits out instead of softmax)."""
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(classes),
        ],
        name="simple_convnet",
    )


def conv_macs(model: keras.Model) -> int:
    """Multiply-accumulates per image of a model's Conv2D and Dense layers (from their built shapes)."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += _conv_macs(h, w, (kh, kw), layer.input.shape[-1], c_out)
        elif isinstance(layer, keras.layers.Dense):
            total += dense_macs(layer.input.shape[-1], layer.units)
    return int(total)
