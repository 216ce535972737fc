"""``python -m vgg_helpers.bench``: the fixed VGG against Keras' "Simple MNIST convnet", on this machine.

In one process, for each of ``--seeds`` seeds, it trains (a) the blog's 16-conv topology with the fixes
of notebook 03 (He init, BatchNorm, no LRN), by default with its top levels at half width and the recipe of
:data:`VGG_DEFAULTS`, and (b) the Keras example convnet at its published settings
(Adam 0.001, batch 128), on the same data, measuring test accuracy 8 times per epoch off the training
clock and printing a line at each measurement. For each seed it prints a table (parameters, MACs per
image, training images/s, seconds and images to reach the target, best accuracy, memory) and the ratio
of (a)'s time-to-target to (b)'s; then the ratios of all seeds and their median. It ends by timing a
few training steps of the full-width blog model.

    python -m vgg_helpers.bench                 # 3 seeds, this machine's budget (cpu or gpu)
    python -m vgg_helpers.bench --seeds 1 --width 0.0625 --learning-rate 0.01
    python -m vgg_helpers.bench --widths 64-64-128-128-256x4-512x7-256 --vgg-epochs 2   # the blog's widths
    python -m vgg_helpers.bench --sweep         # the VGG configurations tried, one row per run
    python -m vgg_helpers.bench --quick         # small subset, one epoch: checks that it runs
    python -m vgg_helpers.bench --notebooks notebooks/*.ipynb --budget cpu --save --tables README.md docs/teaching.md
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import re
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np

from vgg_helpers.architectures import BLOG_WIDTHS
from vgg_helpers.runtime import onednn_on
from vgg_helpers.training import TrainingCurve, train_and_evaluate


def format_widths(widths) -> str:
    """Filters per conv level in the blog's notation, repeats as "×n": "64-64-128-128-256×4-512×7-256"."""
    runs = []
    for w in widths:
        if runs and runs[-1][0] == w:
            runs[-1][1] += 1
        else:
            runs.append([w, 1])
    return "-".join(f"{w}×{n}" if n > 2 else "-".join([str(w)] * n) for w, n in runs)


def check_widths(widths) -> tuple[int, ...]:
    """``widths`` as a tuple, or ``ValueError`` unless it holds 16 whole numbers of at least one filter, one per
    conv level of the blog's topology."""
    widths = tuple(widths)
    if len(widths) != len(BLOG_WIDTHS) or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise ValueError(
            f"the blog's topology has {len(BLOG_WIDTHS)} conv levels, each with at least one filter; got "
            f"{len(widths)} levels: {list(widths)}"
        )
    return widths


def parse_widths(text: str) -> tuple[int, ...]:
    """The inverse of :func:`format_widths` ("x" or "×"), checked by :func:`check_widths`."""
    widths = []
    for part in text.replace("x", "×").split("-"):
        count, times, repeat = part.partition("×")
        if not count.strip().isdigit() or (times and not repeat.strip().isdigit()):
            raise ValueError(f'widths look like "64-64-128-128-256×4-512×7-256" (× or x for repeats), got {text!r}')
        widths += [int(count)] * (int(repeat) if repeat else 1)
    return check_widths(widths)


#: Keys a configuration of :data:`SWEEP` may add to "width", "batch_size", "learning_rate", "epochs" and
#: "fused_bn", with their defaults (the recipe the sweep started from). "optimizer" is "adam" or "sgd" (Nesterov
#: momentum 0.9); "ema" evaluates a moving average of the weights with that momentum (Keras' ``use_ema``);
#: "batchnorm" False leaves BatchNorm out (He initialisation alone); "widths" gives the 16 conv levels' filters
#: before the width multiplier (the topology stays, the widths change); "seeds" runs those seeds instead of
#: ``--seeds``'.
SWEEP_OPTIONS = {
    "dropout": 0.25, "label_smoothing": 0.0, "warmup": 0.25, "optimizer": "adam", "beta_2": 0.999, "ema": None,
    "batchnorm": True, "widths": BLOG_WIDTHS,
}  # fmt: skip

#: The blog's widths with its seven 512-filter levels at 256 and its last level at 128: the same 16-conv topology,
#: each block after the second pool as wide as the 256-filter levels.
HALVED_TOP_WIDTHS = parse_widths("64-64-128-128-256×11-128")
#: The same with the seven 512-filter levels at 384 and the last at 192.
THREE_QUARTER_TOP_WIDTHS = parse_widths("64-64-128-128-256×4-384×7-192")

#: The VGG configuration the benchmark runs by default (width None: the budget's): the blog's 16-conv topology
#: with the fixes of notebook 03 and its top levels at half width (:data:`HALVED_TOP_WIDTHS`), TensorFlow's fused
#: BatchNorm, label smoothing 0.1, no dropout, 1.5 epochs of one-cycle Adam peaking at 0.02. Until 2026-11-29 it
#: was the blog's widths, Keras' BatchNorm, dropout 0.25, no label smoothing and 2 epochs: ``--widths
#: 64-64-128-128-256x4-512x7-256 --no-fused-bn --dropout 0.25 --label-smoothing 0 --vgg-epochs 2``.
VGG_DEFAULTS = {
    "width": None, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.5, "fused_bn": True, "label_smoothing": 0.1,
    "dropout": 0.0, "widths": HALVED_TOP_WIDTHS,
}  # fmt: skip

#: Configurations of the fixed VGG that ``--sweep`` trains, one row per run: what was tried to make it reach 99%
#: sooner on a CPU (docs/benchmarks.md keeps the measured table). Until 2026-11-29 the benchmark built every
#: VGG with Keras' BatchNorm whatever "fused_bn" said; the rows measured then say False, as they ran.
_ONE_EPOCH_FUSED = {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.0, "fused_bn": True}
_HALVED_TOP = {**_ONE_EPOCH_FUSED, "widths": HALVED_TOP_WIDTHS, "label_smoothing": 0.1, "epochs": 1.5}
SWEEP = (
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.0, "fused_bn": False},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.0, "fused_bn": False, "dropout": 0.0},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.01, "epochs": 1.0, "fused_bn": False, "dropout": 0.0},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.01, "epochs": 2.0, "fused_bn": False, "dropout": 0.0},
    {"width": 0.125, "batch_size": 64, "learning_rate": 0.02, "epochs": 1.0, "fused_bn": False},
    {"width": 0.125, "batch_size": 256, "learning_rate": 0.04, "epochs": 1.0, "fused_bn": False},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 2.0, "fused_bn": False},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.5, "fused_bn": False},
    {"width": 0.0625, "batch_size": 128, "learning_rate": 0.02, "epochs": 2.0, "fused_bn": False},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.02, "epochs": 1.25, "fused_bn": False},
    {"width": 0.125, "batch_size": 128, "learning_rate": 0.03, "epochs": 1.25, "fused_bn": False},
    # 2026-11-29, afternoon: what else one epoch can take (docs/benchmarks.md, "One epoch, more tries")
    {**_ONE_EPOCH_FUSED, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "label_smoothing": 0.1, "seeds": (0, 1, 2)},
    {**_ONE_EPOCH_FUSED, "label_smoothing": 0.2, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "dropout": 0.0, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "ema": 0.99, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "warmup": 0.1, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "beta_2": 0.99, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "optimizer": "sgd", "learning_rate": 0.2, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "batch_size": 64, "label_smoothing": 0.1, "seeds": (0, 1, 2)},
    # 2026-11-29, evening: a little more than one epoch, with label smoothing (docs/benchmarks.md)
    {**_ONE_EPOCH_FUSED, "batch_size": 64, "label_smoothing": 0.1, "epochs": 1.25, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "label_smoothing": 0.1, "epochs": 1.5, "seeds": (0, 1)},
    # without BatchNorm (its step is faster in the speed table), at two lower peaks
    {**_ONE_EPOCH_FUSED, "fused_bn": False, "batchnorm": False, "learning_rate": 0.002, "seeds": (0,)},
    {**_ONE_EPOCH_FUSED, "fused_bn": False, "batchnorm": False, "learning_rate": 0.005, "seeds": (0,)},
    # 2026-11-29, night: cheaper top levels. Levels 9-16 do 75% of the ×1/8 network's conv multiply-adds, on 7×7 and
    # 4×4 maps; at the 256-filter levels' width the step takes about 60% as long (docs/benchmarks.md, "Narrower top levels")
    {**_ONE_EPOCH_FUSED, "width": 0.0625, "label_smoothing": 0.1, "epochs": 2.0, "seeds": (0,)},
    {**_HALVED_TOP, "seeds": (0, 1, 2)},
    {**_HALVED_TOP, "epochs": 1.75, "seeds": (1,)},
    {**_HALVED_TOP, "learning_rate": 0.01, "seeds": (1,)},
    {**_HALVED_TOP, "batch_size": 64, "seeds": (1,)},
    {**_HALVED_TOP, "widths": THREE_QUARTER_TOP_WIDTHS, "seeds": (1,)},
    {**_HALVED_TOP, "dropout": 0.0, "seeds": (0, 1, 2)},
)  # fmt: skip


def describe_config(config: dict) -> str:
    width, batch, peak, epochs = config["width"], config["batch_size"], config["learning_rate"], config["epochs"]
    options = {**SWEEP_OPTIONS, **config}
    fused = ", fused BN" if config.get("fused_bn") else ""
    optimizer = ", SGD Nesterov 0.9" if options["optimizer"] == "sgd" else ""
    epochs_text = f"{epochs:g} epoch{'s' if epochs != 1 else ''}"
    text = f"VGG ×{width:g}{fused}, batch {batch}{optimizer}, one-cycle peak {peak:g}, {epochs_text}"
    extras = {
        "dropout": f"dropout {options['dropout']:g}",
        "label_smoothing": f"label smoothing {options['label_smoothing']:g}",
        "warmup": f"warm-up {options['warmup']:.0%}",
        "beta_2": f"Adam β₂ {options['beta_2']:g}",
        "ema": f"evaluating a moving average of the weights (momentum {options['ema']})",
        "batchnorm": "no BatchNorm",
        "widths": f"conv widths {format_widths(options['widths'])} before ×{width:g}",
    }
    return ", ".join([text] + [extras[k] for k in extras if options[k] != SWEEP_OPTIONS[k]])


def sweep_arguments(config: dict) -> dict:
    """``train_and_evaluate``'s keyword arguments for one configuration of :data:`SWEEP` (besides the model's)."""
    known = set(VGG_DEFAULTS) | set(SWEEP_OPTIONS) | {"seeds"}
    if set(config) - known:
        raise ValueError(f"unknown sweep keys {sorted(set(config) - known)}; known: {sorted(known)}")
    options = {**SWEEP_OPTIONS, **config}
    if options["optimizer"] not in ("adam", "sgd"):
        raise ValueError(f'a sweep\'s optimizer is "adam" or "sgd", got {options["optimizer"]!r}')
    check_widths(options["widths"])
    ema = {"use_ema": True, "ema_momentum": options["ema"]} if options["ema"] else {}
    if options["optimizer"] == "sgd":
        optimizer = functools.partial(keras.optimizers.SGD, momentum=0.9, nesterov=True, **ema)
    else:
        optimizer = functools.partial(keras.optimizers.Adam, beta_2=options["beta_2"], **ema)
    return dict(
        epochs=config["epochs"], batch_size=config["batch_size"], learning_rate=config["learning_rate"],
        schedule="one-cycle", optimizer=optimizer, warmup=options["warmup"], label_smoothing=options["label_smoothing"],
    )  # fmt: skip


def run_sweep(configs, seeds: int, budget, **common) -> list[TrainingCurve]:
    """Train each configuration with seeds 0 … ``seeds`` − 1 (or its own "seeds"); one curve per run."""
    results = []
    for config in configs:
        arguments = sweep_arguments(config)
        for seed in config.get("seeds", range(seeds)):
            keras.utils.set_random_seed(seed)
            model = _vgg(config, budget)
            results.append(train_and_evaluate(f"{describe_config(config)}, seed {seed}", model, **arguments, **common))
    return results


def format_table(results: list[TrainingCurve], target: float) -> str:
    """One row per training run: size, speed, seconds and images to the target, best accuracy, memory."""
    import pandas as pd

    rows = []
    for r in results:
        to_target = f"{r.seconds_to_target:.0f}" if r.seconds_to_target is not None else f"> {r.train_seconds:.0f}"
        examples = r.examples_to_target
        rows.append(
            {
                "run": r.name,
                "params": f"{r.params:,}",
                "MACs/image": f"{r.macs:,}",
                "images/s": f"{r.images_per_second:,.0f}",
                f"s to {target:.1%}": to_target,
                f"images to {target:.1%}": f"{examples:,}" if examples is not None else "never",
                "best acc": f"{r.best_accuracy:.2%}",
                "epochs": f"{r.epochs:.3g}",
                "peak MB": f"{r.peak_rss_mb:,.0f}",
            }
        )
    return pd.DataFrame(rows).to_string(index=False, justify="right")


def time_ratio(results: list[TrainingCurve]) -> float | None:
    """(a)'s seconds to target divided by (b)'s; None if either did not reach it."""
    a, b = results[0].seconds_to_target, results[1].seconds_to_target
    return None if a is None or b is None else a / b


def median_ratio(ratios: list[float | None]) -> float | None:
    """The median of the per-seed ratios, counting a seed where (a) never reached the target as infinitely slow;
    None if fewer than half of the seeds give a ratio."""
    values = [float("inf") if r is None else r for r in ratios]
    median = statistics.median(values) if values else None
    return None if median is None or median == float("inf") else median


def machine_line() -> str:
    """The CPU, its cores and whether TensorFlow's oneDNN kernels are on: what the throughput depends on."""
    from vgg_helpers.runtime import machine_line as line

    return "machine: " + line()


# --- Notebooks: peak memory and wall time ---------------------------------------------------------


@dataclasses.dataclass
class NotebookRun:
    name: str
    budget: str
    peak_rss_mb: float  #: the kernel's peak resident memory (VmHWM) in MB (10⁶ bytes), Linux only; nan elsewhere
    wall_seconds: float
    error: str = ""


def _kernel_peak_mb(pid: int | None) -> float:
    """Peak resident memory (VmHWM) of process ``pid`` in MB (10⁶ bytes); nan where unknown."""
    try:
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115 - one short read
    except (OSError, TypeError):
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6  # the kernel reports KiB
    return float("nan")


def run_notebook(path, budget: str = "cpu", timeout: int = 1800, save: bool = False) -> NotebookRun:
    """Execute a notebook top to bottom in a fresh kernel with ``VGG_BUDGET=budget`` and measure the kernel's
    peak resident memory and the wall time. With ``save``, the executed notebook is written back (only if
    every cell ran), so its committed outputs and these measurements come from the same run."""
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits this process's environment: the budget, and not a non-interactive Matplotlib
    # backend (MPLBACKEND=Agg, as the tests set it), which would keep every figure out of the saved notebook.
    saved = {name: os.environ.get(name) for name in ("VGG_BUDGET", "MPLBACKEND")}
    os.environ["VGG_BUDGET"] = budget
    os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}, record_timing=True
    )
    start, error, peak = time.perf_counter(), "", float("nan")
    try:
        with client.setup_kernel():
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            pid = pid or getattr(getattr(getattr(client.km, "provisioner", None), "process", None), "pid", None)
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                error = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1][:200]  # no terminal colours
            peak = _kernel_peak_mb(pid)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    wall = time.perf_counter() - start
    if save and not error:
        nbformat.write(nb, path)
    return NotebookRun(path.stem, budget, peak, wall, error)


def format_notebook_table(runs: list[NotebookRun], limit_mb: float | None = None) -> str:
    """One row per notebook: budget, peak memory, wall time, and whether it passed (and kept under ``limit_mb``)."""
    lines = [f"{'notebook':<28} {'budget':<6} {'peak MB':>8} {'wall s':>7}  result", "-" * 64]
    for r in runs:
        result = f"error: {r.error}" if r.error else "ok"
        if not r.error and limit_mb is not None and r.peak_rss_mb > limit_mb:
            result = f"over {limit_mb:,.0f} MB"
        lines.append(f"{r.name:<28} {r.budget:<6} {r.peak_rss_mb:8,.0f} {r.wall_seconds:7.0f}  {result}")
    return "\n".join(lines)


TABLE_START, TABLE_END = "<!-- notebook-times: written by python -m vgg_helpers.bench --tables -->", "<!-- /notebook-times -->"


def format_duration(seconds: float) -> str:
    """How the notebooks' headers and the tables write a run time: ``40 s`` below 100 s, else ``2.5 min``."""
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def _table_row(run: NotebookRun) -> str:
    return f"| {run.name} | {format_duration(run.wall_seconds)} | {run.peak_rss_mb:,.0f} MB |"


def markdown_table(runs: list[NotebookRun], machine: str, rows: dict[str, str] | None = None) -> str:
    """The run-time and memory table that README.md and docs/teaching.md both show. ``rows`` (name: row) are
    rows kept from an earlier table, for the notebooks that ``runs`` did not run again."""
    merged = dict(rows or {})
    merged.update({r.name: _table_row(r) for r in runs})
    lines = [
        TABLE_START,
        f"| notebook | {runs[0].budget} budget: Run All | kernel peak memory |",
        "|---|---|---|",
        *(merged[name] for name in sorted(merged)),
        "",
        f"Measured with `python -m vgg_helpers.bench --notebooks notebooks/*.ipynb --budget {runs[0].budget}` "
        f"(each notebook in a fresh kernel) on {machine} (MB: 10⁶ bytes).",
        TABLE_END,
    ]
    return "\n".join(lines)


def table_rows(text: str) -> dict[str, str]:
    """The rows (notebook name: row) of the table between the markers in ``text``; empty without one."""
    if TABLE_START not in text or TABLE_END not in text:
        return {}
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d_\w+) \|.*\|$", table, re.M)}


def write_tables(paths, runs: list[NotebookRun], machine: str) -> None:
    """Write the table of ``runs`` between the markers of each file, keeping the rows of notebooks not run
    again (a ``ValueError`` names a file without markers, before any file is written)."""
    paths = list(map(Path, paths))
    texts = {path: path.read_text() for path in paths}
    for path, text in texts.items():
        if TABLE_START not in text or TABLE_END not in text:
            raise ValueError(
                f"{path} has no table markers: add the lines {TABLE_START!r} and {TABLE_END!r} where the table goes."
            )
    for path, text in texts.items():
        before, rest = text.split(TABLE_START, 1)
        table = markdown_table(runs, machine, rows=table_rows(text))
        path.write_text(before + table + rest.split(TABLE_END, 1)[1])


# --- Training speed of one configuration (docs/benchmarks.md's speed table) ------------------------------

#: Keys of a ``--speed`` configuration and their defaults.
SPEED_DEFAULTS = {
    "net": "vgg", "width": 0.125, "widths": format_widths(BLOG_WIDTHS), "batch": 128, "bn": "keras", "augment": False,
    "jit": False, "steps": 30,
}  # fmt: skip


def speed_probe(config: dict) -> dict:
    """Images per second of ``model.fit`` for one configuration, measured by
    :func:`~vgg_helpers.training.measure_training_speed` on random images (speed does not depend on the
    pixels): the fixed VGG (``net`` "vgg"; ``widths`` as ``--widths`` writes them; ``bn`` "keras", "fused" or
    "none") or Keras' convnet ("convnet"),
    5 warm-up steps, then ``steps`` timed. Returns the configuration with ``images_per_second``, the
    parameter count, whether oneDNN is on and the process's peak resident memory in MB. Run one per fresh
    process to compare oneDNN on and off (``TF_ENABLE_ONEDNN_OPTS`` is read when TensorFlow loads)."""
    import resource

    from vgg_helpers.architectures import blog_vgg
    from vgg_helpers.models import build_model, simple_convnet
    from vgg_helpers.training import measure_training_speed

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
        model = build_model(arch, width=c["width"], initializer="he_normal", bn_momentum=0.9, fused_bn=c["bn"] == "fused")
    rng = np.random.default_rng(0)
    images = c["batch"] * (c["steps"] + 1)
    x, y = rng.integers(0, 256, (images, 28, 28), dtype=np.uint8), rng.integers(0, 10, images).astype(np.uint8)
    speed = measure_training_speed(
        model, x, y, batch_size=c["batch"], steps=c["steps"], augment=c["augment"], warmup_steps=5, jit_compile=c["jit"]
    )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6  # Linux reports KiB
    return {
        **c,
        "images_per_second": round(speed),
        "params": model.count_params(),
        "onednn": onednn_on(),
        "peak_mb": round(peak_mb),
    }


# --- The command --------------------------------------------------------------------------------------


def _vgg(config, budget):
    from vgg_helpers.architectures import blog_vgg
    from vgg_helpers.models import build_model

    options = {**SWEEP_OPTIONS, **config}
    if config["fused_bn"] and not options["batchnorm"]:
        raise ValueError("a configuration without BatchNorm cannot fuse it: set fused_bn False")
    arch = blog_vgg(
        widths=check_widths(options["widths"]), lrn=False, batchnorm=options["batchnorm"],
        dropout_rate=options["dropout"],
    )  # fmt: skip
    return build_model(
        arch, width=config["width"], initializer="he_normal", bn_momentum=budget.bn_momentum, fused_bn=config["fused_bn"]
    )


def _progress(name, interval, seconds, accuracy):
    print(f"  {name}: evaluation {interval}, {seconds:6.1f} s of training, test accuracy {accuracy:.2%}", flush=True)


def _notebooks(args) -> int:
    runs = []
    for path in sorted(args.notebooks):
        runs.append(run_notebook(path, budget=args.budget, save=args.save))
        print(format_notebook_table(runs[-1:], args.limit_mb).splitlines()[-1], flush=True)
    print()
    print(format_notebook_table(runs, args.limit_mb))
    failed = [r for r in runs if r.error or r.peak_rss_mb > args.limit_mb]
    if args.tables and not failed:
        write_tables(args.tables, runs, machine_line().removeprefix("machine: "))
        print(f"\nwrote the table into {', '.join(args.tables)}")
    return 1 if failed else 0


def main(argv=None) -> int:
    from vgg_helpers.data import mnist_splits
    from vgg_helpers.models import simple_convnet
    from vgg_helpers.runtime import BUDGETS, setup

    parser = argparse.ArgumentParser(prog="python -m vgg_helpers.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="training runs of each network, with seeds 0, 1, … (default 3)")
    parser.add_argument("--vgg-epochs", type=float, default=VGG_DEFAULTS["epochs"], help="length of the VGG's one-cycle schedule")
    parser.add_argument("--epochs", type=int, default=10, help="epochs of the Keras convnet, constant rate as in its example")
    parser.add_argument("--width", type=float, help="VGG width multiplier (default: the budget's)")
    parser.add_argument("--batch-size", type=int, default=VGG_DEFAULTS["batch_size"], help="the VGG's batch size")
    parser.add_argument(
        "--learning-rate", type=float, default=VGG_DEFAULTS["learning_rate"], help="VGG's peak Adam learning rate"
    )
    parser.add_argument(
        "--fused-bn",
        action=argparse.BooleanOptionalAction,
        default=VGG_DEFAULTS["fused_bn"],
        help="the VGG's conv BatchNorms on TensorFlow's fused kernel (same maths; default on; notebook 04 uses Keras' layer)",
    )
    parser.add_argument(
        "--label-smoothing",
        type=float,
        default=VGG_DEFAULTS["label_smoothing"],
        help="the VGG's label smoothing (default 0.1; notebook 04 uses none)",
    )
    parser.add_argument(
        "--dropout", type=float, default=VGG_DEFAULTS["dropout"], help="the VGG's dropout after its dense layers (default 0)"
    )
    parser.add_argument(
        "--widths",
        type=parse_widths,
        default=VGG_DEFAULTS["widths"],
        help=f"filters of the VGG's 16 conv levels before --width (default {format_widths(HALVED_TOP_WIDTHS)}; the "
        f"blog's: {format_widths(BLOG_WIDTHS).replace('×', 'x')})",
    )
    parser.add_argument("--evals-per-epoch", type=int, default=8, help="test evaluations per epoch (default 8)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to time (default 0.99)")
    parser.add_argument("--quick", action="store_true", help="fast budget's sizes, 1 epoch, 1 seed (checks that it runs)")
    parser.add_argument(
        "--sweep", action="store_true", help="instead: train each VGG configuration of SWEEP (its own seeds where it names them)"
    )
    parser.add_argument("--skip-full-width", action="store_true", help="do not time the full-width blog model")
    parser.add_argument("--notebooks", nargs="+", metavar="NOTEBOOK", help="instead: run these notebooks, report memory and time")
    parser.add_argument("--budget", default="cpu", help="budget for --notebooks (default cpu)")
    parser.add_argument("--save", action="store_true", help="with --notebooks: write each executed notebook back")
    parser.add_argument(
        "--tables",
        nargs="+",
        metavar="FILE",
        help="with --notebooks: write the run-time table into these files (rows of notebooks not run again are kept)",
    )
    parser.add_argument(
        "--speed",
        metavar="JSON",
        help='instead: time one configuration\'s training steps, e.g. \'{"width": 0.125, "bn": "fused"}\' (keys: '
        + ", ".join(SPEED_DEFAULTS)
        + "), and print one JSON line",
    )
    parser.add_argument("--limit-mb", type=float, default=1500, help="memory limit for --notebooks in MB (default 1500 = 1.5 GB)")
    args = parser.parse_args(argv)

    if args.notebooks:
        return _notebooks(args)
    if args.speed:
        import json

        setup(verbose=False)
        print(json.dumps(speed_probe(json.loads(args.speed))), flush=True)
        return 0

    budget = setup()
    print(machine_line())
    if args.quick:
        budget = BUDGETS["fast"]
        args.vgg_epochs, args.epochs, args.seeds = 1, 1, 1
        args.evals_per_epoch = min(args.evals_per_epoch, 2)
        print("quick mode: the fast budget's sizes; the numbers check that it runs, they are not results")
    splits = mnist_splits(budget)
    print(
        f"{len(splits['train'][0]):,} training images, {len(splits['test'][0]):,} test images; "
        f"test accuracy measured {args.evals_per_epoch}× per epoch, off the clock",
        flush=True,
    )
    common = dict(splits=splits, target=args.target, evals_per_epoch=args.evals_per_epoch, report=_progress)

    if args.sweep:
        results = run_sweep(SWEEP, args.seeds, budget, **common)
        print()
        print(format_table(results, args.target))
        return 0

    config = {
        "width": args.width or budget.width,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "epochs": args.vgg_epochs,
        "fused_bn": args.fused_bn,
        "label_smoothing": args.label_smoothing,
        "dropout": args.dropout,
        "widths": args.widths,
    }
    ratios, reached = [], []
    for seed in range(args.seeds):
        print(f"\nseed {seed}", flush=True)
        keras.utils.set_random_seed(seed)
        a = train_and_evaluate(f"(a) {describe_config(config)}", _vgg(config, budget), **sweep_arguments(config), **common)
        keras.utils.set_random_seed(seed)
        b = train_and_evaluate(
            "(b) Keras simple convnet, batch 128, Adam 0.001", simple_convnet(), epochs=args.epochs, batch_size=128,
            learning_rate=1e-3, schedule="constant", **common,
        )  # fmt: skip
        print()
        print(format_table([a, b], args.target))
        ratio = time_ratio([a, b])
        ratios.append(ratio)
        reached.append(a.seconds_to_target is not None)
        print(
            f"seed {seed}: ratio of time to {args.target:.1%}, (a)/(b): "
            + (f"{ratio:.2f}" if ratio is not None else "n/a (not reached by both)")
        )
    median = median_ratio(ratios)
    listed = ", ".join("n/a" if r is None else f"{r:.2f}" for r in ratios)
    print(
        f"\nratios over {args.seeds} seeds: {listed}; median " + ("n/a" if median is None else f"{median:.2f}")
        + f"; (a) reached {args.target:.1%} in {sum(reached)} of {args.seeds} runs"
    )  # fmt: skip

    if not args.skip_full_width:
        from vgg_helpers.architectures import blog_vgg
        from vgg_helpers.models import build_model
        from vgg_helpers.training import time_train_steps

        full = build_model(blog_vgg(), initializer="blog")
        timing = time_train_steps(full, batch_size=128, steps=budget.timing_steps, optimizer="adam")
        print(f"\nfull-width blog model ({full.count_params():,} parameters, Adam): {timing}")
        print(f"extrapolated: {timing.epoch_seconds(60_000) / 60:.0f} minutes per epoch of 60,000 images on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
