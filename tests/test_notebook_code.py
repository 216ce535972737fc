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
from notebook04 import standard_callbacks

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


def test_notebook_03s_fixed_network_is_what_build_model_makes():
    code = notebook_functions("03_exploding_loss.ipynb", "fixed-network")
    widths = [vh.architectures.scaled(w, 1 / 8) for w in vh.architectures.BLOG_WIDTHS]
    from_notebook = code["fixed_network"](widths=widths, dense=(512, 512), bn_momentum=0.9)
    arch = vh.architectures.blog_vgg(lrn=False, batchnorm=True)
    from_package = vh.models.build_model(arch, width=1 / 8, initializer="he_normal", bn_momentum=0.9)
    assert describe(from_notebook) == describe(from_package)
    assert describe(from_notebook) != describe(vh.models.build_model(arch, width=1 / 8, bn_momentum=0.99))


def notebook_cell(notebook: str, tag: str, contains: str) -> str:
    cells = json.loads((NOTEBOOKS / notebook).read_text())["cells"]
    matches = [
        "".join(c["source"]) for c in cells if tag in c.get("metadata", {}).get("tags", []) and contains in "".join(c["source"])
    ]
    assert len(matches) == 1, f"{notebook}: {len(matches)} cells tagged {tag!r} contain {contains!r}"
    return matches[0]


def dotted(node) -> str:
    return f"{dotted(node.value)}.{node.attr}" if isinstance(node, ast.Attribute) else getattr(node, "id", "?")


def notebook_callbacks(source: str) -> list[tuple[str, dict]]:
    """The ``callbacks = [...]`` list of a cell: each entry's constructor and its literal keyword arguments."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "callbacks":
            return [
                (dotted(call.func), {kw.arg: kw.value.value for kw in call.keywords if isinstance(kw.value, ast.Constant)})
                for call in node.value.elts
            ]
    raise AssertionError("no `callbacks = [...]` in the training cell")


def test_fit_mnist_uses_notebook_04s_schedule():
    code = notebook_functions("04_training_mnist.ipynb", "recipe")
    for peak, total, warmup in [(0.02, 860, 430), (0.01, 3440, 430), (0.01, 16, 4)]:
        notebook = code["one_cycle"](peak, total, warmup)
        package = vh.training.warmup_cosine(peak, total, warmup)
        steps = sorted({*np.linspace(0, total, 60).astype(int), warmup - 1, warmup, warmup + 1})
        assert [float(notebook(s)) for s in steps] == pytest.approx([float(package(s)) for s in steps])


def test_fit_mnist_uses_notebook_04s_callbacks(tmp_path):
    written = notebook_callbacks(notebook_cell("04_training_mnist.ipynb", "recipe", "model.fit("))
    assert [name for name, _ in written] == [
        "keras.callbacks.BackupAndRestore",
        "keras.callbacks.ModelCheckpoint",
        "run.recorder",
        "vh.diagnostics.EarlyWarning",
        "vh.plots.LiveHistory",
    ]
    run = vh.runs.start(tmp_path, {"test": 1}, verbose=False)
    try:
        made = standard_callbacks(run)
    finally:
        run.close()
    settings = dict(written)
    backup, checkpoint, recorder, warning = made
    assert isinstance(backup, keras.callbacks.BackupAndRestore)
    assert backup.double_checkpoint == settings["keras.callbacks.BackupAndRestore"]["double_checkpoint"]
    assert isinstance(checkpoint, keras.callbacks.ModelCheckpoint)
    assert checkpoint.monitor == settings["keras.callbacks.ModelCheckpoint"]["monitor"]
    assert checkpoint.save_best_only == settings["keras.callbacks.ModelCheckpoint"]["save_best_only"]
    assert recorder.monitor == settings["run.recorder"]["monitor"]
    assert isinstance(warning, vh.diagnostics.EarlyWarning)


def test_the_gpu_depth_script_builds_notebook_08s_networks(monkeypatch):
    """benchmarks/depth_keras_jax.py (docs/benchmarks.md, "Depth on Fashion-MNIST") trains notebook 08's networks."""
    import importlib.util

    # The script sets KERAS_BACKEND=jax unless it is set: that would leak into the processes later tests start
    # (a JupyterLab whose kernels then fail on `import jax`). Keras is already imported on TensorFlow here.
    monkeypatch.setenv("KERAS_BACKEND", "tensorflow")

    cell = notebook_cell("08_where_depth_pays.ipynb", "depth-builder", "def vgg_from_row")
    code = notebook_functions("08_where_depth_pays.ipynb", "depth-builder", BLOCK_FILTERS=(64, 128, 256, 512, 512),
                              POOLED_BLOCKS=3)  # fmt: skip
    table = next(
        ast.literal_eval(node.value)
        for node in ast.parse(cell).body
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "CONFIGS"
    )
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "depth_keras_jax.py"
    spec = importlib.util.spec_from_file_location("depth_keras_jax", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)  # its main() runs only as a script
    assert script.CONFIGS == table and script.BLOCK_FILTERS == (64, 128, 256, 512, 512) and script.POOLED_BLOCKS == 3
    for row in table.values():
        assert describe(script.vgg_from_row(row, 1 / 8)) == describe(code["vgg_from_row"](row, 1 / 8))
    assert describe(script.vgg_from_row(table["E"], 1 / 8)) != describe(code["vgg_from_row"](table["D"], 1 / 8))
