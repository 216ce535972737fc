"""Helpers for the VGG teaching notebooks.

Start every notebook with ``budget = vgg_helpers.setup(requires=...)``; the submodules hold
the rest: ``data`` (MNIST), ``runtime`` (budgets, quiet TensorFlow import).
"""

from vgg_helpers._version import __version__
from vgg_helpers.runtime import BUDGETS, Budget, setup

__all__ = ["__version__", "BUDGETS", "Budget", "setup"]
