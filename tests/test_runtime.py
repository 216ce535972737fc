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
        pytest.param(
            {"VGG_BUDGET": "GPU", "VGG_FAST": "1"}, False, "gpu", marks=pytest.mark.filterwarnings("ignore:VGG_BUDGET=gpu")
        ),
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
    check_version(" 0.1 ")  # packaging's rules: 0.1 == 0.1.0


def test_version_is_single_sourced():
    from importlib.metadata import version

    assert version("vgg-helpers") == vgg_helpers.__version__


def test_setup_prints_the_versions_and_oneDNN_and_seeds(capsys, monkeypatch):
    import tensorflow as tf

    monkeypatch.setenv("VGG_FAST", "1")
    budget = setup(requires=vgg_helpers.__version__, seed=7)
    line, onednn = capsys.readouterr().out.strip().split("\n")  # on a CPU: the versions, then oneDNN
    assert budget is BUDGETS["fast"]
    for part in (vgg_helpers.__version__, tf.__version__, "budget: fast", "CPU"):
        assert part in line
    assert onednn.startswith("oneDNN ")
    a = (np.random.rand(), float(tf.random.uniform(())))
    setup(seed=7, verbose=False)
    b = (np.random.rand(), float(tf.random.uniform(())))
    assert a == b


def test_setup_keeps_tensorflow_logs_off_stderr():
    """In a fresh process, importing TF through setup() writes nothing to stderr, nor do the first float32 and
    float16 ops after it (notebook 01 builds VGG-16 in float16: with oneDNN on, TensorFlow logs its first one)."""
    env = {**os.environ, "VGG_FAST": "1"}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    probe = (
        "import vgg_helpers as vh; vh.setup(); import tensorflow as tf; "
        "h = tf.ones((3, 3), tf.float16); (h @ h).numpy(); (tf.ones((3, 3)) @ tf.ones((3, 3))).numpy()"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.count("\n") == 2 and "budget: fast" in result.stdout and "oneDNN on" in result.stdout


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


_FREE_A_BIG_TENSOR = """
import vgg_helpers.runtime as runtime

tf = runtime.import_tensorflow()


def rss_mb():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))


before = rss_mb()
x = tf.random.normal([100_000_000])  # 400 MB
float(tf.reduce_sum(x))
del x
print(rss_mb() - before)
"""


_ENV_WHEN_TENSORFLOW_LOADS = """
import importlib.abc, os, sys


class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            print("allocator setting when TensorFlow loads:", os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR"))
            print("oneDNN setting when TensorFlow loads:", os.environ.get("TF_ENABLE_ONEDNN_OPTS"))
            sys.meta_path.remove(self)
        return None


sys.meta_path.insert(0, Watch())
import vgg_helpers
"""


def test_the_allocator_is_set_before_tensorflow_loads():
    """oneDNN reads TF_ONEDNN_USE_SYSTEM_ALLOCATOR when TensorFlow loads: importing vgg_helpers sets it first
    (and leaves a user's own value alone)."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
    for value, expected in ((None, "1"), ("0", "0")):
        if value is not None:
            env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = value
        result = subprocess.run(
            [sys.executable, "-c", _ENV_WHEN_TENSORFLOW_LOADS], capture_output=True, text=True, env=env, timeout=120
        )
        assert result.returncode == 0, result.stderr
        assert f"allocator setting when TensorFlow loads: {expected}" in result.stdout


def test_onednn_is_on_after_importing_vgg_helpers():
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("oneDNN's CPU kernels are checked on x86-64 Linux")
    assert _onednn_is_on(env)
    assert not _onednn_is_on({**env, "TF_ENABLE_ONEDNN_OPTS": "0"})  # the control: the user's 0 wins


@pytest.mark.parametrize(
    "on, flags, expected",
    [
        (True, {"avx2", "avx512f"}, "oneDNN on; TensorFlow's own default on this CPU: off (no AVX512_VNNI, AVX512_BF16, "
                                    "AVX_VNNI or AMX), so vgg_helpers sets TF_ENABLE_ONEDNN_OPTS=1 unless you set it"),
        (True, {"avx2", "avx512_vnni", "avx512_bf16"},
         "oneDNN on; TensorFlow's own default on this CPU: on (it has AVX512_VNNI, AVX512_BF16)"),
        (False, {"amx_tile", "amx_int8"}, "oneDNN off; TensorFlow's own default on this CPU: on (it has AMX_TILE, AMX_INT8)"),
    ],
)  # fmt: skip
def test_the_onednn_line_says_what_tensorflow_would_choose_here(on, flags, expected, monkeypatch):
    """AVX-512 alone is not what TensorFlow looks for: VNNI, BF16 or AMX is (tensorflow/core/util/util.cc)."""
    monkeypatch.setattr(runtime.platform, "system", lambda: "Linux")
    assert runtime.describe_onednn(on, flags) == expected


def _onednn_is_on(env) -> bool:
    probe = "import vgg_helpers; from tensorflow.python.util import _pywrap_util_port as p; print(p.IsMklEnabled())"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[-1] == "True"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
@pytest.mark.parametrize(("setting", "returned"), [(None, True), ("0", False)])
def test_freed_large_tensors_go_back_to_the_system(setting, returned):
    """With vgg_helpers' settings a freed 400 MB tensor goes back to the system.

    The control ("0": oneDNN's own allocator) shows what the setting is for: where oneDNN is on, its pool
    keeps the 400 MB. Where oneDNN is off (a user's TF_ENABLE_ONEDNN_OPTS=0, or a CPU TensorFlow has no
    oneDNN kernels for), that allocator is not used at all, so there is nothing to control and the control
    is skipped."""
    env = {k: v for k, v in os.environ.items() if k != "TF_ONEDNN_USE_SYSTEM_ALLOCATOR"}
    if setting is not None:
        env["TF_ONEDNN_USE_SYSTEM_ALLOCATOR"] = setting
        if not _onednn_is_on(env):
            pytest.skip("oneDNN is off in this TensorFlow on this CPU, so its allocator (the control) is not in use")
    result = subprocess.run([sys.executable, "-c", _FREE_A_BIG_TENSOR], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    kept_mb = float(result.stdout.split()[-1])
    assert (kept_mb < 100) if returned else (kept_mb > 300), kept_mb


_REALLOCATE_A_LARGE_BLOCK = """
import ctypes, sys
import numpy as np


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
if sys.argv[1] == "package":
    import vgg_helpers  # imports TensorFlow through runtime.import_tensorflow()
size = 8 << 20
block = np.ones(size, np.uint8)
del block  # by default, freeing it raises glibc's threshold to 8 MB
block = np.ones(size, np.uint8)
print("mapped" if libc.mallinfo2().hblkhd >= size else "heap")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
@pytest.mark.parametrize(("mode", "expected"), [("package", "mapped"), ("glibc default", "heap")])
def test_large_blocks_stay_mapped_so_that_free_returns_them(mode, expected):
    """Once vgg_helpers is imported, an 8 MB block is mapped again after one was freed, so freeing
    it returns it to the system; glibc's default (the control) puts the second one on its heap."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run(
        [sys.executable, "-c", _REALLOCATE_A_LARGE_BLOCK, mode], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == expected


def test_missing_tensorflow_says_what_to_install(monkeypatch):
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cpu\]'"):
        runtime.import_tensorflow()


def test_free_heap_is_returned_after_each_cell(monkeypatch):
    from IPython.core.interactiveshell import InteractiveShell

    assert runtime.trim_after_each_cell() is False  # no IPython shell in a plain pytest process
    shell = InteractiveShell.instance()
    try:
        calls = []
        monkeypatch.setattr(runtime, "_malloc_trim", lambda *_: calls.append("trim") or True)
        assert runtime.trim_after_each_cell() and runtime.trim_after_each_cell()  # setup() run twice
        assert shell.events.callbacks["post_run_cell"].count(runtime._malloc_trim) == 1
        shell.run_cell("x = 1")
        assert calls == ["trim"]
    finally:
        InteractiveShell.clear_instance()


def test_the_cpu_splits_into_logical_devices_before_tensorflow_starts():
    env = {**os.environ, "VGG_LOGICAL_CPUS": "2"}
    probe = "import vgg_helpers, tensorflow as tf; print(len(tf.config.list_logical_devices('CPU')))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "2"
    env["VGG_LOGICAL_CPUS"] = "two"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "VGG_LOGICAL_CPUS='two' must be a whole number" in result.stderr


def test_the_device_line_counts_the_cores_this_process_may_use(monkeypatch):
    # Under `taskset -c 0` (as on Binder's single core) the setup line must not claim the machine's cores.
    from vgg_helpers import runtime

    monkeypatch.setattr(runtime, "gpu_names", lambda: [])
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert runtime.describe_device() == "CPU (1 core)"
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert runtime.describe_device() == "CPU (3 cores)"
