"""Budgets, the version check and the setup call."""

import os
import subprocess
import sys

import numpy as np
import pytest

import vgg_helpers
from vgg_helpers import runtime
from vgg_helpers.runtime import BUDGETS, check_version, select_budget, setup


@pytest.mark.parametrize(
    "environ, has_gpu, expected",
    [
        ({"VGG_FAST": "1"}, False, "fast"),
        ({"VGG_FAST": "1"}, True, "fast"),  # CI on a GPU box is still CI
        ({}, True, "gpu"),
        ({}, False, "cpu"),
        ({"VGG_FAST": "0"}, False, "cpu"),
        ({"VGG_BUDGET": "cpu"}, True, "cpu"),
        ({"VGG_BUDGET": "GPU", "VGG_FAST": "1"}, False, "gpu"),
    ],
)
def test_select_budget(environ, has_gpu, expected):
    assert select_budget(environ, has_gpu=has_gpu).name == expected


@pytest.mark.parametrize("environ", [{"VGG_BUDGET": "huge"}, {"VGG_FAST": "maybe"}])
def test_select_budget_rejects_unknown_values(environ):
    with pytest.raises(ValueError, match="VGG_"):
        select_budget(environ, has_gpu=False)


def test_budgets_scale_in_order():
    fast, cpu, gpu = BUDGETS["fast"], BUDGETS["cpu"], BUDGETS["gpu"]
    assert fast.epochs == 1
    assert fast.train_examples < cpu.train_examples <= gpu.train_examples <= 60_000 - gpu.val_examples
    assert fast.width < cpu.width < gpu.width == 1.0
    assert fast.steps < cpu.steps < gpu.steps
    # BatchNorm's default momentum lags in short runs (DEVELOPERS.md): fast and cpu use 0.9.
    assert fast.bn_momentum == cpu.bn_momentum == 0.9
    for budget in BUDGETS.values():
        assert budget.test_examples <= 10_000 and budget.val_examples > 0


def test_check_version():
    check_version("0.0.1")
    check_version(vgg_helpers.__version__)
    with pytest.raises(ImportError, match="needs vgg_helpers >= 99.0"):
        check_version("99.0")


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert version("vgg-helpers") == vgg_helpers.__version__


def test_setup_prints_one_line_and_seeds(capsys, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("VGG_FAST", "1")
    budget = setup(requires=vgg_helpers.__version__, seed=7)
    line = capsys.readouterr().out.strip()
    assert "\n" not in line
    assert budget is BUDGETS["fast"]
    for part in (vgg_helpers.__version__, tf.__version__, "budget: fast", "CPU"):
        assert part in line
    a = (np.random.rand(), float(tf.random.uniform(())))
    setup(seed=7, verbose=False)
    b = (np.random.rand(), float(tf.random.uniform(())))
    assert a == b


def test_setup_keeps_tensorflow_logs_off_stderr():
    """In a fresh process, importing TF through setup() writes nothing to stderr."""
    env = {**os.environ, "VGG_FAST": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    result = subprocess.run(
        [sys.executable, "-c", "import vgg_helpers as vh; vh.setup()"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 1 and "budget: fast" in result.stdout


def test_plain_tensorflow_import_is_noisy():
    """The control for the test above: without setup(), TF 2.21 does log on import."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-c", "import tensorflow as tf; tf.constant(1.0) + 1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0
    assert "oneDNN" in result.stderr or "absl" in result.stderr


def test_missing_tensorflow_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cpu\]'"):
        runtime.import_tensorflow()
