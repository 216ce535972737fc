"""Runtime: quiet TensorFlow import, seeding, device detection and the run budget.

A notebook's setup cell calls :func:`setup` once, first::

    import vgg_helpers as vh
    budget = vh.setup(requires="0.1.0")

and then reads every size it needs from ``budget`` (``budget.train_examples``,
``budget.epochs``, ``budget.width`` ...), so notebooks never branch on the budget.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import platform
import sys
import tempfile
import warnings

from vgg_helpers._version import __version__

#: Environment variables the package reads, in one place.
ENV_FAST = "VGG_FAST"
ENV_BUDGET = "VGG_BUDGET"
#: Split the CPU into this many logical devices when TensorFlow loads (notebook 07: replicas on one CPU).
#: It must be set before ``import vgg_helpers``: TensorFlow fixes its devices at its first operation.
ENV_LOGICAL_CPUS = "VGG_LOGICAL_CPUS"


@dataclasses.dataclass(frozen=True)
class Budget:
    """The sizes a notebook uses. Notebooks read these instead of branching on the budget.

    ``width`` multiplies every conv and dense width of the blog's VGG (1.0 = the blog's
    64-…-512 convs and 4096-wide dense layers).
    """

    name: str
    description: str
    train_examples: int  #: training images used (the rest of the 60,000 is left out)
    val_examples: int  #: validation images, split off the training set
    test_examples: int  #: test images evaluated
    epochs: int  #: epochs of the main training run
    batch_size: int
    width: float  #: width multiplier for the VGG builder
    steps: int  #: optimiser steps for short diagnostic runs (notebook 03)
    timing_steps: int  #: steps timed when measuring the full-width model
    bn_momentum: float  #: BatchNorm momentum (0.99 lags in short runs; see notebook 03)
    seeds: int  #: repeats of each run in a controlled comparison (notebooks 06, 08), to show the spread
    depth_images: int  #: training images each network of notebook 08's depth sweep sees

    def __str__(self) -> str:
        return f"{self.name} ({self.description})"


BUDGETS = {
    "fast": Budget(
        name="fast",
        description="CI smoke run: small subsets, 1 epoch, narrow widths",
        train_examples=2_000,
        val_examples=500,
        test_examples=1_000,
        epochs=1,
        batch_size=128,
        width=1 / 16,
        steps=30,  # fewer and He + BatchNorm is not yet clearly ahead of N(0, 1) (notebook 03)
        timing_steps=1,
        bn_momentum=0.9,
        seeds=1,
        depth_images=2_000,
    ),
    "cpu": Budget(
        name="cpu",
        description="laptop or Binder CPU: full MNIST, scaled widths",
        train_examples=55_000,
        val_examples=5_000,
        test_examples=10_000,
        epochs=8,
        batch_size=128,
        width=1 / 8,
        steps=60,
        timing_steps=3,
        bn_momentum=0.9,
        seeds=3,
        depth_images=16_000,  # about 3 minutes of notebook 08's sweep on a 2-core CPU (docs/benchmarks.md)
    ),
    "gpu": Budget(
        name="gpu",
        description="GPU: full MNIST, full widths, full epochs",
        train_examples=55_000,
        val_examples=5_000,
        test_examples=10_000,
        epochs=15,
        batch_size=128,
        width=1.0,
        steps=300,
        timing_steps=20,
        bn_momentum=0.99,
        seeds=3,
        depth_images=15 * 55_000,  # 15 passes over the training set, as notebook 04's gpu plan
    ),
}


def check_version(requires: str) -> None:
    """Raise ``ImportError`` if the installed ``vgg_helpers`` is older than ``requires`` (a version such as
    ``"0.2.0"``, compared as ``packaging`` does: ``0.2.0rc1 < 0.2.0``); ``ValueError`` if it is not a version."""
    from packaging.version import InvalidVersion, Version

    try:
        needed = Version(str(requires).strip())
    except InvalidVersion as err:
        raise ValueError(
            f"requires={requires!r} is not a version number: write the version this notebook was made for, "
            f'e.g. requires="{__version__}".'
        ) from err
    if Version(__version__) < needed:
        raise ImportError(
            f"this notebook needs vgg_helpers >= {requires}, but {__version__} is installed. "
            "From the repository root run `make lab` again (it reinstalls the package), "
            "or `pip install -e .`; on Colab, rerun the setup cell."
        )


@contextlib.contextmanager
def _stderr_to_file():
    """Send file descriptor 2 (C-level stderr, where TensorFlow's C++ logs go) to a temp file.

    Yields the file, so a caller can show what was written if something failed.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield sink
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


#: Blocks of at least this size are mapped and unmapped on their own (glibc's M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 4 * 2**20
#: glibc heaps ("arenas") shared by all threads (M_ARENA_MAX); its default is 8 per core.
MALLOC_ARENAS = 2


@functools.cache
def _glibc():
    """The C library, loaded once, where it is glibc (Linux: Binder, Colab); ``None`` elsewhere.

    Looking it up runs ``ldconfig``, too slow to repeat after every cell and epoch (docs/benchmarks.md).
    """
    import ctypes
    import ctypes.util

    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim  # noqa: B018 - glibc only (musl has no malloc_trim)
    except (OSError, AttributeError):
        return None
    return libc


def _return_large_blocks() -> bool:
    """Make glibc's malloc hand blocks of ``MMAP_THRESHOLD`` bytes or more back to the system on free.

    By default glibc raises this threshold each time a large block is freed (up to 32 MB), after
    which blocks of that size stay in its per-thread heaps once freed. Training steps free and
    reallocate activations of every size from several threads, and those heaps kept growing; with a
    fixed 4 MB threshold the full-width network's peak and held memory fell by hundreds of MB, at the
    same speed at the cpu budget's width (docs/benchmarks.md, "Memory").

    It also caps glibc's heaps at :data:`MALLOC_ARENAS` (unless ``MALLOC_ARENA_MAX`` is set). Returns whether
    the threshold took effect: it is skipped where the C library is not glibc, or where
    ``MALLOC_MMAP_THRESHOLD_`` is set.
    """
    libc = _glibc()
    if libc is None:
        return False
    if "MALLOC_ARENA_MAX" not in os.environ:
        # Two heaps shared by all threads, instead of one per thread that TensorFlow's pools and tf.data start:
        # notebook 04's kernel peak fell from 1,476 to 1,421 MB (one run each, docs/benchmarks.md, "Memory").
        libc.mallopt(-8, MALLOC_ARENAS)  # -8: M_ARENA_MAX
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(libc.mallopt(-3, MMAP_THRESHOLD))  # -3: M_MMAP_THRESHOLD


def import_tensorflow():
    """Import TensorFlow with its import-time log lines kept out of the notebook, and oneDNN on.

    TensorFlow 2.21 prints absl/oneDNN/CPU-feature lines from C++ on import and on the first op, whatever
    ``TF_CPP_MIN_LOG_LEVEL`` says. They are written to file descriptor 2, which is redirected to a scratch
    file while TensorFlow loads and runs one op. If the import fails, the captured lines are shown.

    Two settings are made before TensorFlow loads (each only if the user has not set it):

    - ``TF_ENABLE_ONEDNN_OPTS=1``. TensorFlow's Linux builds turn their oneDNN CPU kernels on by themselves
      only on x86 CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX (:data:`ONEDNN_DEFAULT_FEATURES`; on Arm,
      Neoverse V1); on
      others (AVX2-only CPUs such as AMD's Zen 3 EPYC and Ryzen, many laptops) they leave them off. Turned
      on, notebook 04's training step ran about three times as fast on an AVX2-only AMD EPYC, with the same
      peak memory (docs/benchmarks.md). Set it to 0 before importing to compare; :func:`describe_onednn`
      says which case a machine is.
    - ``TF_ONEDNN_USE_SYSTEM_ALLOCATOR=1``: with oneDNN on, TensorFlow's CPU allocator keeps every large
      block it frees in a pool of its own, so a notebook that builds a full-width network and deletes it
      never gets those hundreds of MB back; this makes it use malloc, and :func:`_return_large_blocks`
      makes malloc return large blocks to the system. With oneDNN off that allocator is not used at all.
    """
    if "tensorflow" in sys.modules and hasattr(sys.modules["tensorflow"], "constant"):
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
    _return_large_blocks()
    with _stderr_to_file() as sink, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
            _split_cpu(tf, os.environ.get(ENV_LOGICAL_CPUS, "").strip())
            _ = (tf.constant(1.0) + 1.0).numpy()  # first-op logs happen here, not later
            half = tf.ones((2, 2), tf.float16)  # with oneDNN on an AVX2-only CPU, the first float16 op logs an
            _ = tf.linalg.matmul(half, half).numpy()  # error-level line once ("supports DT_HALF only on AVX-512")
        except ImportError as err:
            sink.seek(0)
            log = sink.read().decode(errors="replace").strip()
            raise ImportError(
                "TensorFlow is not installed in this environment. From the repository root, "
                "run `make lab` (it installs everything), or `pip install -e '.[cpu]'` "
                "(CPU only) or `pip install -e '.[gpu]'` (NVIDIA GPU). On Colab TensorFlow "
                "is preinstalled." + (f"\nTensorFlow's own output:\n{log}" if log else "")
            ) from err
    import absl.logging

    absl.logging.set_verbosity(absl.logging.ERROR)
    tf.get_logger().setLevel("ERROR")
    return tf


#: The CPU features (``/proc/cpuinfo`` flag: TensorFlow's name) for which TensorFlow's Linux builds turn
#: oneDNN on by themselves: ``IsMklEnabled`` in tensorflow/core/util/util.cc.
ONEDNN_DEFAULT_FEATURES = {
    "avx512_vnni": "AVX512_VNNI",
    "avx512_bf16": "AVX512_BF16",
    "avx_vnni": "AVX_VNNI",
    "amx_tile": "AMX_TILE",
    "amx_int8": "AMX_INT8",
    "amx_bf16": "AMX_BF16",
}


def cpu_flags() -> set[str] | None:
    """The CPU's feature flags as Linux lists them in ``/proc/cpuinfo``; None where there is no such file."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            line = next((line for line in cpuinfo if line.startswith("flags")), None)
    except OSError:
        return None
    return set(line.split(":", 1)[1].split()) if line else None


def onednn_on() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels (None where this TensorFlow cannot say)."""
    import_tensorflow()
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:  # pragma: no cover - another TensorFlow layout
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def describe_onednn(on: bool | None = None, flags: set[str] | None = None) -> str:
    """One line: whether oneDNN is on, and what TensorFlow's own default would be on this CPU.

    The arguments default to this process and machine (they exist for the tests)."""
    on = onednn_on() if on is None else on
    flags = cpu_flags() if flags is None else flags
    if on is None:
        return "oneDNN: unknown (this TensorFlow does not say)"
    state = f"oneDNN {'on' if on else 'off'}"
    if flags is None or platform.system() != "Linux":
        return state
    found = [name for flag, name in ONEDNN_DEFAULT_FEATURES.items() if flag in flags]
    if found:
        return f"{state}; TensorFlow's own default on this CPU: on (it has {', '.join(found)})"
    return (
        f"{state}; TensorFlow's own default on this CPU: off (no AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX), "
        "so vgg_helpers sets TF_ENABLE_ONEDNN_OPTS=1 unless you set it"
    )


def _split_cpu(tf, value: str) -> None:
    """Configure ``value`` logical CPU devices (from :data:`ENV_LOGICAL_CPUS`), before TensorFlow's first op."""
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{ENV_LOGICAL_CPUS}={value!r} must be a whole number of devices, at least 1 (or unset).")
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(int(value))])


def gpu_names() -> list[str]:
    """Names of the GPUs TensorFlow sees (empty on a CPU-only machine)."""
    tf = import_tensorflow()
    names = []
    for device in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(device)
        names.append(details.get("device_name", device.name))
    return names


def select_budget(environ=None, has_gpu: bool | None = None) -> Budget:
    """Pick the budget: ``VGG_BUDGET`` if set, else ``VGG_FAST=1`` → fast, GPU → gpu, else cpu."""
    environ = os.environ if environ is None else environ
    forced = environ.get(ENV_BUDGET, "").strip().lower()
    if forced:
        if forced not in BUDGETS:
            raise ValueError(
                f"{ENV_BUDGET}={forced!r} is not a budget; use one of {', '.join(BUDGETS)} or unset it to let vgg_helpers choose."
            )
        if forced == "gpu" and has_gpu is not True and not (has_gpu is None and gpu_names()):
            warnings.warn(
                f"{ENV_BUDGET}=gpu but TensorFlow sees no GPU: the gpu budget's full-width networks will run on the "
                "CPU, at minutes per step. Unset it (or set it to cpu) unless that is what you want.",
                stacklevel=2,
            )
        return BUDGETS[forced]
    fast = environ.get(ENV_FAST, "").strip().lower()
    if fast in {"1", "true", "yes", "on"}:
        return BUDGETS["fast"]
    if fast not in {"", "0", "false", "no", "off"}:
        raise ValueError(f"{ENV_FAST}={fast!r} is not understood; set it to 1 or unset it.")
    if has_gpu is None:
        has_gpu = bool(gpu_names())
    return BUDGETS["gpu" if has_gpu else "cpu"]


def describe_device() -> str:
    """One phrase naming the device TensorFlow will use."""
    names = gpu_names()
    if names:
        return "GPU: " + ", ".join(names)
    cores = usable_cores()
    return f"CPU ({cores} core{'s' if cores != 1 else ''})"


def usable_cores() -> int:
    """The cores this process may run on: fewer than the machine's under ``taskset`` or a container's CPU set."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def setup(requires: str | None = None, seed: int = 42, verbose: bool = True) -> Budget:
    """Prepare a notebook: check the version, import TF quietly, seed, pick and report the budget.

    Returns the :class:`Budget` whose sizes the notebook uses.
    """
    if requires is not None:
        check_version(requires)
    tf = import_tensorflow()
    import keras

    keras.utils.set_random_seed(seed)  # seeds Python, NumPy and TensorFlow
    # Keras 3.15 warns on every `fit` of a tf.data pipeline that its default shuffle=True is ignored: the
    # notebooks shuffle in the pipeline, as Keras asks, so the warning says nothing to a learner.
    warnings.filterwarnings("ignore", message=r"`shuffle=True` was passed, but will be ignored", category=UserWarning)
    from vgg_helpers.plots import apply_style

    apply_style()
    trim_after_each_cell()
    budget = select_budget()
    if verbose:
        device = describe_device()
        print(
            f"vgg_helpers {__version__} | Python {platform.python_version()} | "
            f"TensorFlow {tf.__version__} | Keras {keras.__version__} | "
            f"{device} | budget: {budget.name}"
        )
        if device.startswith("CPU"):
            print(describe_onednn())
    return budget


def release_memory() -> None:
    """Collect garbage (Keras models are reference cycles) and return free C-heap pages to the OS.

    Call it after ``del model`` of a big model. TensorFlow's large tensors go back to the system
    when freed (see :func:`import_tensorflow`); this returns the small C-heap blocks too.
    ``malloc_trim`` exists in glibc (Linux: Binder, Colab); elsewhere only garbage collection runs.
    """
    import gc

    gc.collect()
    _malloc_trim()


def _malloc_trim(*_) -> bool:
    """Return the free memory in glibc's heaps to the system (up to about 10 ms); False where there is no glibc."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def trim_after_each_cell() -> bool:
    """In IPython/Jupyter, return free C-heap memory to the system after every cell.

    glibc keeps what TensorFlow's worker threads free in per-thread heaps and rarely hands it back
    (docs/benchmarks.md, "Memory", has what one training cell of notebook 03 left behind). This
    registers ``malloc_trim`` as a ``post_run_cell`` event, once. Returns whether the hook is in place.
    """
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    if shell is None:
        return False
    if _malloc_trim not in shell.events.callbacks["post_run_cell"]:
        shell.events.register("post_run_cell", _malloc_trim)
    return True
