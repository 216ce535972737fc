"""Helpers for the VGG teaching notebooks.

Start every notebook with ``budget = vgg_helpers.setup(requires=...)``. The submodules:
``runtime`` (budgets, quiet TensorFlow import), ``data`` (MNIST and ``tf.data``),
``plots`` (figures), ``exercises`` (self-checks).
"""

from vgg_helpers._version import __version__
from vgg_helpers import data, exercises, plots
from vgg_helpers.runtime import BUDGETS, Budget, setup

__all__ = ["__version__", "BUDGETS", "Budget", "setup", "data", "exercises", "plots"]
