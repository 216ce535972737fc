"""Training speed of one configuration (docs/benchmarks.md's speed table), and a few timed steps of the
full-width blog model."""

from __future__ import annotations

import keras
import numpy as np

from benchmarks.machine import peak_rss_mb
from benchmarks.recipe import format_widths, fuse_batchnorm, parse_widths
from vgg_helpers.architectures import BLOG_WIDTHS, blog_vgg
from vgg_helpers.models import build_model, simple_convnet
from vgg_helpers.runtime import onednn_on
from vgg_helpers.training import measure_training_speed, time_train_steps

#: Keys of a ``--speed`` configuration and their defaults.
SPEED_DEFAULTS = {
    "net": "vgg", "width": 0.125, "widths": format_widths(BLOG_WIDTHS), "batch": 128, "bn": "keras", "augment": False,
    "jit": False, "steps": 30,
}  # fmt: skip


def speed_probe(config: dict) -> dict:
    """Images per second of ``model.fit`` for one configuration, measured by
    :func:`~vgg_helpers.training.measure_training_speed` on random images (speed does not depend on the
    pixels): the fixed VGG (``net`` "vgg"; ``widths`` as ``--widths`` writes them; ``bn`` "keras", "fused" or
    "none") or Keras' convnet ("convnet"), 5 warm-up steps, then ``steps`` timed. Returns the configuration
    with ``images_per_second``, the parameter count, whether oneDNN is on and the process's peak resident
    memory in MB. Run one per fresh process to compare oneDNN on and off (``TF_ENABLE_ONEDNN_OPTS`` is read
    when TensorFlow loads)."""
    unknown = set(config) - set(SPEED_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown --speed keys {sorted(unknown)}; known: {sorted(SPEED_DEFAULTS)}")
    c = {**SPEED_DEFAULTS, **config}
    if c["net"] not in ("vgg", "convnet") or c["bn"] not in ("keras", "fused", "none") or c["steps"] < 1:
        raise ValueError(f'--speed needs net "vgg" or "convnet", bn "keras", "fused" or "none", steps ≥ 1; got {c}')
    keras.utils.set_random_seed(0)
    if c["net"] == "convnet":
        model = simple_convnet()
    else:
        arch = blog_vgg(widths=parse_widths(c["widths"]), lrn=False, batchnorm=c["bn"] != "none")
        model = build_model(arch, width=c["width"], initializer="he_normal", bn_momentum=0.9)
        model = fuse_batchnorm(model) if c["bn"] == "fused" else model
    rng = np.random.default_rng(0)
    images = c["batch"] * (c["steps"] + 1)
    x, y = rng.integers(0, 256, (images, 28, 28), dtype=np.uint8), rng.integers(0, 10, images).astype(np.uint8)
    speed = measure_training_speed(
        model, x, y, batch_size=c["batch"], steps=c["steps"], augment=c["augment"], warmup_steps=5, jit_compile=c["jit"]
    )
    return {
        **c,
        "images_per_second": round(speed),
        "params": model.count_params(),
        "onednn": onednn_on(),
        "peak_mb": round(peak_rss_mb()),
    }


def full_width_lines(steps: int) -> list[str]:
    """``steps`` timed training steps of the blog's full-width model (Adam), and the minutes an epoch would take."""
    model = build_model(blog_vgg(), initializer="blog")
    timing = time_train_steps(model, batch_size=128, steps=steps, optimizer="adam")
    return [
        f"full-width blog model ({model.count_params():,} parameters, Adam):",
        f"  {timing}",
        f"  extrapolated: {timing.epoch_seconds(60_000) / 60:.0f} minutes per epoch of 60,000 images on this machine",
    ]
