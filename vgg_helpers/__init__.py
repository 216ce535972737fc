"""Helpers for the VGG teaching notebooks.

Start every notebook with ``budget = vgg_helpers.setup(requires=...)``. The submodules:
``runtime`` (budgets, quiet TensorFlow import), ``data`` (MNIST and ``tf.data``),
``architectures`` (VGG configs as data, layer tables), ``models`` (Keras
builders, the LRN layer), ``diagnostics`` (initial loss, per-layer scales and gradients),
``training`` (schedules, sizing a run to the machine, test-accuracy curves), ``runs`` (run folders that
keep the best model and resume safely), ``plots`` (figures), ``widgets`` (explorers), ``distributed``
(worker processes for notebook 07), ``exercises`` (self-checks). The benchmark is not here: it is the
maintainers' ``benchmarks`` package at the repository's root (``python -m benchmarks``).
"""

from vgg_helpers._version import __version__
from vgg_helpers.runtime import BUDGETS, Budget, import_tensorflow, release_memory, setup

import_tensorflow()  # before anything imports Keras, so TensorFlow's start-up logs stay hidden

from vgg_helpers import architectures, data, diagnostics, distributed, exercises, models, plots, runs, training, widgets  # noqa: E402

__all__ = [
    "__version__",
    "BUDGETS",
    "Budget",
    "release_memory",
    "setup",
    "architectures",
    "data",
    "diagnostics",
    "distributed",
    "exercises",
    "models",
    "plots",
    "runs",
    "training",
    "widgets",
]
