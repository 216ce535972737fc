"""Keras models built from :mod:`vgg_helpers.architectures` descriptions.

    model = build_model(blog_vgg(), initializer="blog")             # the blog's network, N(0, 1) init
    model = build_model(blog_vgg(lrn=False, batchnorm=True), width=1/8, initializer="he_normal")

The model has exactly the layers of ``layer_table(arch, width)``, so their parameter counts agree.
"""

from __future__ import annotations

import os

import keras

from vgg_helpers.architectures import (
    BYTES_PER_FLOAT32,
    Architecture,
    LocalResponseNormalization,
    layer_table,
    scaled,
)

#: Named initialisations used in the notebooks, besides any Keras initializer name.
INITIALIZERS = {
    "blog": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=1.0),  # tf.random_normal
    # The VGG paper (Section 3.1): "a normal distribution with the zero mean and 10^-2 variance", so σ = 0.1.
    "vgg_paper": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=0.1),
    # AlexNet's σ = 0.01 (Krizhevsky et al., 2012), which many VGG reimplementations use instead.
    "alexnet": lambda: keras.initializers.RandomNormal(mean=0.0, stddev=0.01),
}


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
    name: str | None = None,
) -> keras.Model:
    """A functional Keras model of ``arch`` at ``width``; weights from ``initializer``, biases zero.

    ``layer_table(arch, width)`` validates the architecture first, so a bad configuration raises
    the same ``ValueError`` (naming the layer) before any weight is allocated.
    """
    check_fits_in_memory(layer_table(arch, width), width)  # raises ValueError on a bad width or architecture
    init = get_initializer(initializer)
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
                name=f"fc{n_dense}",
                dtype="float32" if is_logits else None,  # logits stay float32 under mixed precision
            )(x)
    return keras.Model(inputs, x, name=name or arch.name.replace(" ", "_"))


def layer_groups(model: keras.Model) -> list[list[keras.layers.Layer]]:
    """The layers of a :func:`build_model` model grouped as levels.

    Each group starts at a Conv2D or Dense layer and holds what follows it up to the next one
    (BatchNorm, ReLU, pool, LRN, dropout); the Flatten before the dense layers belongs to none.
    """
    groups: list[list] = []
    for layer in model.layers[1:]:
        if isinstance(layer, keras.layers.Flatten):
            groups.append([])  # closes the conv level before it
            continue
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)) or not groups:
            groups.append([layer])
        else:
            groups[-1].append(layer)
    return [g for g in groups if g]


def level_outputs(model: keras.Model) -> keras.Model:
    """A model giving the output of every conv level of a :func:`build_model` model, in order.

    A level's output is taken after its pool and LRN, as the blog's ``convLevel`` returns it.
    """
    ends = [group[-1] for group in layer_groups(model) if isinstance(group[0], keras.layers.Conv2D)]
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
            total += h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)
