"""The code a notebook teaches and the package code later notebooks call by name must agree.

Cells tagged in a notebook (cell metadata ``tags``) are read here; only their function definitions
are executed, so nothing big is built.
"""

import ast
import json
from pathlib import Path

import keras
import numpy as np
import pytest

import vgg_helpers as vh

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook_functions(notebook: str, tag: str, **namespace) -> dict:
    """Execute the function definitions of the cells tagged ``tag`` in ``notebook``; return the namespace."""
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    tagged = [c for c in cells if tag in c.get("metadata", {}).get("tags", [])]
    assert tagged, f"no cell of {notebook} is tagged {tag!r}"
    namespace = {"vh": vh, "keras": keras, "np": np, **namespace}
    for cell in tagged:
        tree = ast.parse("".join(cell["source"]))
        tree.body = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Import, ast.ImportFrom))]
        exec(compile(tree, notebook, "exec"), namespace)
    return namespace


def describe(model: keras.Model) -> list[tuple]:
    """What makes two models the same network: each layer's kind, output shape, parameters and settings."""
    rows = []
    for layer in model.layers:
        config = layer.get_config()
        settings = {
            key: config[key]
            for key in ("filters", "kernel_size", "strides", "padding", "activation", "use_bias", "pool_size", "units", "rate")
            if key in config
        }
        settings.update({k: config[k] for k in ("momentum", "epsilon", "depth_radius", "alpha", "beta") if k in config})
        for key in ("kernel_initializer", "bias_initializer"):
            if key in config:
                init = config[key]
                settings[key] = (init["class_name"], init["config"].get("stddev"))
        rows.append((type(layer).__name__, tuple(layer.output.shape), layer.count_params(), settings))
    return rows


def test_notebook_02s_keras_network_is_what_build_model_makes():
    code = notebook_functions("02_conv_levels.ipynb", "keras-network")
    widths = [vh.architectures.scaled(w, 1 / 8) for w in vh.architectures.BLOG_WIDTHS]
    from_notebook = code["blog_network"](widths=widths, dense=(512, 512))
    from_package = vh.models.build_model(vh.architectures.blog_vgg(), width=1 / 8, initializer="blog")
    assert describe(from_notebook) == describe(from_package)


def test_the_comparison_notices_a_difference():
    """The control: a network with one pool moved is not the same."""
    code = notebook_functions("02_conv_levels.ipynb", "keras-network")
    widths = [vh.architectures.scaled(w, 1 / 8) for w in vh.architectures.BLOG_WIDTHS]
    moved = code["blog_network"](widths=widths, pools=(2, 4, 8), dense=(512, 512))
    package = vh.models.build_model(vh.architectures.blog_vgg(), width=1 / 8, initializer="blog")
    assert describe(moved) != describe(package)


@pytest.mark.parametrize("notebook", ["02_conv_levels.ipynb"])
def test_tagged_cells_exist(notebook):
    assert notebook_functions(notebook, "keras-network")
