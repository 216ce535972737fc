"""The benchmark's VGG: its conv widths in the blog's notation, TensorFlow's fused BatchNorm swapped in for
Keras' layer, label smoothing on integer labels, and each configuration's optimizer, schedule and callbacks as
``vgg_helpers.training.train_and_evaluate`` takes them. None of this is in a notebook: notebook 04 trains with
Keras' own BatchNorm and loss, and Adam."""

from __future__ import annotations

import functools

import keras

from vgg_helpers.architectures import BLOG_WIDTHS, blog_vgg
from vgg_helpers.models import build_model
from vgg_helpers.training import compile_classifier, warmup_cosine


def format_widths(widths) -> str:
    """Filters per conv level in the blog's notation, repeats as "×n": "64-64-128-128-256×4-512×7-256"."""
    runs = []
    for w in widths:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    return "-".join(f"{w}×{n}" if n > 2 else "-".join([str(w)] * n) for w, n in runs)


def check_widths(widths) -> tuple[int, ...]:
    """``widths`` as a tuple, or ``ValueError`` unless it holds 16 whole numbers of at least one filter, one per
    conv level of the blog's topology."""
    widths = tuple(widths)
    if len(widths) != len(BLOG_WIDTHS) or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(
            f"the blog's topology has {len(BLOG_WIDTHS)} conv levels, each with at least one filter; got "
            f"{len(widths)} levels: {list(widths)}"
        )
    return widths


def parse_widths(text: str) -> tuple[int, ...]:
    """The inverse of :func:`format_widths` ("x" or "×"), checked by :func:`check_widths`."""
    widths = []
    for part in text.replace("x", "×").split("-"):
        count, times, repeat = part.partition("×")
        if not count.strip().isdigit() or (times and not repeat.strip().isdigit()):
            raise ValueError(f'widths look like "64-64-128-128-256×4-512×7-256" (× or x for repeats), got {text!r}')
        widths += [int(count)] * (int(repeat) if repeat else 1)
    return check_widths(widths)


#: The blog's widths with its seven 512-filter levels at 256 and its last level at 128: the same 16-conv topology,
#: each block after the second pool as wide as the 256-filter levels.
HALVED_TOP_WIDTHS = parse_widths("64-64-128-128-256×11-128")
#: The same with the seven 512-filter levels at 384 and the last at 192.
THREE_QUARTER_TOP_WIDTHS = parse_widths("64-64-128-128-256×4-384×7-192")

#: Keys a configuration may add to "width", "batch_size", "learning_rate", "epochs" and "fused_bn", with their
#: defaults (the recipe the sweep started from). "optimizer" is "adam" or "sgd" (Nesterov momentum 0.9); "ema"
#: evaluates a moving average of the weights with that momentum (Keras' ``use_ema`` and ``SwapEMAWeights``);
#: "batchnorm" False leaves BatchNorm out (He initialisation alone); "widths" gives the 16 conv levels' filters
#: before the width multiplier (the topology stays, the widths change); "seeds" runs those seeds instead of
#: ``--seeds``'.
SWEEP_OPTIONS = {
    "dropout": 0.25, "label_smoothing": 0.0, "warmup": 0.25, "optimizer": "adam", "beta_2": 0.999, "ema": None,
    "batchnorm": True, "widths": BLOG_WIDTHS,
}  # fmt: skip


@keras.saving.register_keras_serializable(package="benchmarks")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed with TensorFlow's fused kernel on 4-D inputs.

    The same maths and the same weights as the Keras layer (a test checks outputs and moving statistics
    against it), in one kernel instead of a dozen small operations: the benchmark's VGG trains faster
    with it on a CPU (docs/benchmarks.md). Other inputs fall back to the Keras layer.
    """

    def call(self, inputs, training=None, mask=None):
        import tensorflow as tf

        if (
            len(inputs.shape) != 4
            or self.axis not in (-1, 3)
            or mask is not None
            or self.renorm
            or not (self.scale and self.center)
        ):
            return super().call(inputs, training=training, mask=mask)
        x = tf.cast(inputs, tf.float32)
        if training and self.trainable:
            y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, epsilon=self.epsilon, data_format="NHWC", is_training=True
            )
            n = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
            variance = variance * (n - 1.0) / n  # the kernel returns the unbiased variance; Keras keeps the biased one
            self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
            self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        else:
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(
                x, self.gamma, self.beta, mean=self.moving_mean, variance=self.moving_variance, epsilon=self.epsilon,
                data_format="NHWC", is_training=False,
            )  # fmt: skip
        return tf.cast(y, self.compute_dtype)


def fuse_batchnorm(model: keras.Model) -> keras.Model:
    """A copy of ``model`` (same weights) whose BatchNorm layers on 4-D maps, the conv levels', are
    :class:`FusedBatchNormalization`; the dense layers' keep Keras' layer."""

    def clone(layer):
        if type(layer) is keras.layers.BatchNormalization and len(layer.input.shape) == 4:
            return FusedBatchNormalization.from_config(layer.get_config())
        return layer.__class__.from_config(layer.get_config())

    fused = keras.models.clone_model(model, clone_function=clone)
    fused.set_weights(model.get_weights())
    return fused


@keras.saving.register_keras_serializable(package="benchmarks")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Cross-entropy of logits against integer labels smoothed as Keras' ``CategoricalCrossentropy(label_smoothing=…)``
    smooths one-hot ones (Keras' sparse loss has no smoothing): the true class gets ``1 − s + s/10``, every other
    ``s/10``."""

    def __init__(self, label_smoothing: float = 0.1, classes: int = 10, **kwargs):
        super().__init__(name=kwargs.pop("name", "smoothed_sparse_crossentropy"), **kwargs)
        self.label_smoothing, self.classes = label_smoothing, classes

    def call(self, y_true, y_pred):
        labels = keras.ops.one_hot(keras.ops.reshape(keras.ops.cast(y_true, "int32"), (-1,)), self.classes)
        return keras.losses.categorical_crossentropy(labels, y_pred, from_logits=True, label_smoothing=self.label_smoothing)

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing, "classes": self.classes}


def build_vgg(config: dict, bn_momentum: float) -> keras.Model:
    """The fixed VGG of one configuration (He initialisation, no LRN), at its width and conv widths."""
    options = {**SWEEP_OPTIONS, **config}
    if config["fused_bn"] and not options["batchnorm"]:
        raise ValueError("a configuration without BatchNorm cannot fuse it: set fused_bn False")
    arch = blog_vgg(
        widths=check_widths(options["widths"]), lrn=False, batchnorm=options["batchnorm"],
        dropout_rate=options["dropout"],
    )  # fmt: skip
    model = build_model(arch, width=config["width"], initializer="he_normal", bn_momentum=bn_momentum)
    return fuse_batchnorm(model) if config["fused_bn"] else model


def training_arguments(config: dict) -> dict:
    """``train_and_evaluate``'s keyword arguments for one configuration (besides the model and data): its epochs,
    batch and peak rate, a one-cycle schedule with its warm-up, a ``compile`` with its optimizer and loss, and
    Keras' ``SwapEMAWeights`` where it evaluates a moving average. New callbacks on each call: one per run."""
    known = {"width", "batch_size", "learning_rate", "epochs", "fused_bn", "seeds", *SWEEP_OPTIONS}
    if set(config) - known:
        raise ValueError(f"unknown sweep keys {sorted(set(config) - known)}; known: {sorted(known)}")
    options = {**SWEEP_OPTIONS, **config}
    if options["optimizer"] not in ("adam", "sgd"):
        raise ValueError(f'a sweep\'s optimizer is "adam" or "sgd", got {options["optimizer"]!r}')
    if not 0 <= options["warmup"] < 1 or not 0 <= options["label_smoothing"] < 1:
        raise ValueError(
            f"warmup and label_smoothing are fractions in [0, 1), got {options['warmup']} and {options['label_smoothing']}"
        )
    check_widths(options["widths"])
    ema = {"use_ema": True, "ema_momentum": options["ema"]} if options["ema"] else {}
    if options["optimizer"] == "sgd":
        optimizer = functools.partial(keras.optimizers.SGD, momentum=0.9, nesterov=True, **ema)
    else:
        optimizer = functools.partial(keras.optimizers.Adam, beta_2=options["beta_2"], **ema)
    smoothing, warmup = options["label_smoothing"], options["warmup"]

    def compile(model, rate):
        compile_classifier(model, optimizer(rate), loss=SmoothedSparseCrossentropy(smoothing) if smoothing else None)

    def schedule(rate, total_steps):
        return warmup_cosine(rate, total_steps, int(total_steps * warmup))

    return dict(
        epochs=config["epochs"], batch_size=config["batch_size"], learning_rate=config["learning_rate"], schedule=schedule,
        compile=compile, callbacks=[keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if ema else [],
    )  # fmt: skip
