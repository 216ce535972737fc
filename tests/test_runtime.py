"""Budgets, the version check and the setup call."""

import json
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


# --- what a fresh process gets from importing vgg_helpers ---------------------------------------------
#
# Each check below needs a process that imports TensorFlow afresh, which takes seconds. The probe runs once
# per environment and reports every fact as JSON; the controls run in the environments they change.

_PROBE = """
import contextlib, ctypes, importlib.abc, io, json, os, sys

facts = {}


class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            facts["allocator setting when TensorFlow loads"] = os.environ.get("TF_ONEDNN_USE_SYSTEM_ALLOCATOR")
            facts["oneDNN setting when TensorFlow loads"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
            sys.meta_path.remove(self)
        return None


sys.meta_path.insert(0, Watch())
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    import vgg_helpers as vh

    vh.setup()
facts["setup output"] = printed.getvalue()
import numpy as np
import tensorflow as tf
from tensorflow.python.util import _pywrap_util_port

# notebook 01 builds VGG-16 in float16: with oneDNN on, TensorFlow logs its first float16 op
half = tf.ones((3, 3), tf.float16)
(half @ half).numpy()
(tf.ones((3, 3)) @ tf.ones((3, 3))).numpy()
facts["oneDNN on"] = bool(_pywrap_util_port.IsMklEnabled())
facts["logical CPUs"] = len(tf.config.list_logical_devices("CPU"))
if sys.platform.startswith("linux"):
    def rss_mb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmRSS"))

    before = rss_mb()
    x = tf.random.normal([100_000_000])  # 400 MB
    float(tf.reduce_sum(x))
    del x
    facts["MB kept after freeing a 400 MB tensor"] = rss_mb() - before

    class Mallinfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in
                    ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = Mallinfo2
    size = 8 << 20
    block = np.ones(size, np.uint8)
    del block  # by glibc's default, freeing it raises the threshold to 8 MB
    block = np.ones(size, np.uint8)
    facts["a second 8 MB block"] = "mapped" if libc.mallinfo2().hblkhd >= size else "heap"
print(json.dumps(facts))
"""

#: Variables vgg_helpers sets unless the user has, and that the probe must not inherit from this process.
_OURS = ("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "TF_ENABLE_ONEDNN_OPTS", "TF_CPP_MIN_LOG_LEVEL", "MALLOC_MMAP_THRESHOLD_")


@pytest.fixture(scope="module")
def probe():
    """``probe(**env)``: the facts a fresh process reports after importing vgg_helpers, with ``env`` added to a
    clean environment (each environment probed once per module); also its stdout and stderr."""
    seen = {}

    def run(**changes):
        key = tuple(sorted(changes.items()))
        if key not in seen:
            env = {k: v for k, v in os.environ.items() if k not in _OURS}
            env.update({"VGG_FAST": "1", "VGG_LOGICAL_CPUS": "2", **changes})
            result = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=180)
            assert result.returncode == 0, result.stderr
            seen[key] = (json.loads(result.stdout.splitlines()[-1]), result.stdout, result.stderr)
        return seen[key]

    return run


def test_setup_keeps_tensorflow_logs_off_stderr(probe):
    """In a fresh process, importing TF through setup() writes nothing to stderr, nor do the first float32 and
    float16 ops after it, nor the rest of the probe."""
    facts, _, stderr = probe()
    assert stderr == ""
    assert facts["setup output"].count("\n") == 2 and "budget: fast" in facts["setup output"]
    assert "oneDNN on" in facts["setup output"]


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


def test_the_allocator_is_set_before_tensorflow_loads(probe):
    """oneDNN reads TF_ONEDNN_USE_SYSTEM_ALLOCATOR when TensorFlow loads: importing vgg_helpers sets it first
    (and leaves a user's own value alone)."""
    assert probe()[0]["allocator setting when TensorFlow loads"] == "1"
    assert probe(TF_ONEDNN_USE_SYSTEM_ALLOCATOR="0")[0]["allocator setting when TensorFlow loads"] == "0"


def test_onednn_is_on_after_importing_vgg_helpers(probe):
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("oneDNN's CPU kernels are checked on x86-64 Linux")
    assert probe()[0]["oneDNN setting when TensorFlow loads"] == "1" and probe()[0]["oneDNN on"]
    assert not probe(TF_ENABLE_ONEDNN_OPTS="0")[0]["oneDNN on"]  # the control: the user's 0 wins


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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_freed_large_tensors_go_back_to_the_system(probe):
    """With vgg_helpers' settings a freed 400 MB tensor goes back to the system.

    The control (TF_ONEDNN_USE_SYSTEM_ALLOCATOR=0: oneDNN's own allocator) shows what the setting is for: where
    oneDNN is on, its pool keeps the 400 MB. Where oneDNN is off (a user's TF_ENABLE_ONEDNN_OPTS=0, or a CPU
    TensorFlow has no oneDNN kernels for), that allocator is not used at all, so there is nothing to control
    and the control is skipped."""
    assert probe()[0]["MB kept after freeing a 400 MB tensor"] < 100
    control = probe(TF_ONEDNN_USE_SYSTEM_ALLOCATOR="0")[0]
    if not control["oneDNN on"]:
        pytest.skip("oneDNN is off in this TensorFlow on this CPU, so its allocator (the control) is not in use")
    assert control["MB kept after freeing a 400 MB tensor"] > 300


_GLIBC_DEFAULT = """
import ctypes
import numpy as np


class Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = Mallinfo2
size = 8 << 20
block = np.ones(size, np.uint8)
del block  # by default, freeing it raises glibc's threshold to 8 MB
block = np.ones(size, np.uint8)
print("mapped" if libc.mallinfo2().hblkhd >= size else "heap")
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_large_blocks_stay_mapped_so_that_free_returns_them(probe):
    """Once vgg_helpers is imported, an 8 MB block is mapped again after one was freed, so freeing
    it returns it to the system; glibc's default (the control, without vgg_helpers) puts the second one on
    its heap."""
    assert probe()[0]["a second 8 MB block"] == "mapped"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    result = subprocess.run([sys.executable, "-c", _GLIBC_DEFAULT], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "heap"


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


def test_the_cpu_splits_into_logical_devices_before_tensorflow_starts(probe):
    assert probe()[0]["logical CPUs"] == 2  # the probe sets VGG_LOGICAL_CPUS=2
    env = {**os.environ, "VGG_LOGICAL_CPUS": "two"}
    probe_code = "import vgg_helpers, tensorflow as tf; print(len(tf.config.list_logical_devices('CPU')))"
    result = subprocess.run([sys.executable, "-c", probe_code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode != 0 and "VGG_LOGICAL_CPUS='two' must be a whole number" in result.stderr


def test_the_device_line_counts_the_cores_this_process_may_use(monkeypatch):
    # Under `taskset -c 0` (as on Binder's single core) the setup line must not claim the machine's cores.
    from vgg_helpers import runtime

    monkeypatch.setattr(runtime, "gpu_names", lambda: [])
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert runtime.describe_device() == "CPU (1 core)"
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    assert runtime.describe_device() == "CPU (3 cores)"
