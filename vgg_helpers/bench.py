"""``python -m vgg_helpers.bench``: the CPU-budget VGG against Keras' "Simple MNIST convnet".

In one process, one after the other, it trains (a) the blog's 16-conv topology with the fixes of
notebook 03 (He init, BatchNorm, no LRN) at the budget's width and (b) the Keras example convnet,
on the same data pipeline, evaluating test accuracy 8 times per epoch (outside the training clock).
It prints one table — parameters, MACs per image, training images/s, seconds of training to reach
the target accuracy, best accuracy, peak memory — and the ratio of (a)'s time-to-target to (b)'s.
Then it times a few training steps of the full-width blog model and extrapolates an epoch.

    python -m vgg_helpers.bench                 # this machine's budget (cpu or gpu)
    python -m vgg_helpers.bench --vgg-epochs 2 --width 0.0625 --learning-rate 0.01
    python -m vgg_helpers.bench --quick         # small subset, one epoch: checks it runs
    python -m vgg_helpers.bench --notebooks notebooks/*.ipynb   # each notebook's peak memory and time
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import time

import keras

from vgg_helpers.training import TrainingCurve, train_and_evaluate


def format_table(results: list[TrainingCurve], target: float) -> str:
    """The benchmark's table, one row per model."""
    head = ("model", "params", "MACs/image", "images/s", f"s to {target:.1%}", "best acc", "epochs", "peak MB")
    rows = [head]
    for r in results:
        to_target = f"{r.seconds_to_target:.0f}" if r.seconds_to_target is not None else f"> {r.train_seconds:.0f}"
        rows.append(
            (
                r.name,
                f"{r.params:,}",
                f"{r.macs:,}",
                f"{r.images_per_second:,.0f}",
                to_target,
                f"{r.best_accuracy:.2%}",
                f"{r.epochs:.3g}",
                f"{r.peak_rss_mb:,.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def time_ratio(results: list[TrainingCurve]) -> float | None:
    """(a)'s seconds to target divided by (b)'s; None if either did not reach it."""
    a, b = results[0].seconds_to_target, results[1].seconds_to_target
    return None if a is None or b is None else a / b


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


def run_notebook(path, budget: str = "cpu", timeout: int = 1800) -> NotebookRun:
    """Execute a notebook top to bottom in a fresh kernel with ``VGG_BUDGET=budget`` (outputs are
    not written back) and measure the kernel's peak resident memory and the wall time."""
    import os
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    previous = os.environ.get("VGG_BUDGET")
    os.environ["VGG_BUDGET"] = budget  # the kernel inherits this process's environment
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
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
        if previous is None:
            os.environ.pop("VGG_BUDGET", None)
        else:
            os.environ["VGG_BUDGET"] = previous
    return NotebookRun(path.stem, budget, peak, time.perf_counter() - start, error)


def format_notebook_table(runs: list[NotebookRun], limit_mb: float | None = None) -> str:
    """One row per notebook: budget, peak memory, wall time, and whether it passed (and kept under ``limit_mb``)."""
    lines = [f"{'notebook':<28} {'budget':<6} {'peak MB':>8} {'wall s':>7}  result", "-" * 64]
    for r in runs:
        result = f"error: {r.error}" if r.error else "ok"
        if not r.error and limit_mb is not None and r.peak_rss_mb > limit_mb:
            result = f"over {limit_mb:,.0f} MB"
        lines.append(f"{r.name:<28} {r.budget:<6} {r.peak_rss_mb:8,.0f} {r.wall_seconds:7.0f}  {result}")
    return "\n".join(lines)


def main(argv=None) -> int:
    from vgg_helpers.architectures import blog_vgg
    from vgg_helpers.data import mnist_splits
    from vgg_helpers.models import build_model, simple_convnet
    from vgg_helpers.runtime import BUDGETS, setup
    from vgg_helpers.training import time_train_steps

    parser = argparse.ArgumentParser(prog="python -m vgg_helpers.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--vgg-epochs", type=int, default=1, help="length of the VGG's one-cycle schedule in epochs (default 1)")
    parser.add_argument(
        "--epochs", type=int, default=10, help="epochs of the Keras convnet, constant rate as in its example (default 10)"
    )
    parser.add_argument("--width", type=float, help="VGG width multiplier (default: the budget's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-2, help="VGG's peak Adam learning rate (default 0.02)")
    parser.add_argument("--evals-per-epoch", type=int, default=8, help="test evaluations per epoch (default 8)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to time (default 0.99)")
    parser.add_argument("--quick", action="store_true", help="fast budget's sizes, 1 epoch each (checks that it runs)")
    parser.add_argument("--skip-full-width", action="store_true", help="do not time the full-width blog model")
    parser.add_argument(
        "--notebooks", nargs="+", metavar="NOTEBOOK", help="instead: run these notebooks, report each kernel's peak memory"
    )
    parser.add_argument("--budget", default="cpu", help="budget for --notebooks (default cpu)")
    parser.add_argument("--limit-mb", type=float, default=1500, help="memory limit for --notebooks in MB (default 1500 = 1.5 GB)")
    args = parser.parse_args(argv)

    if args.notebooks:
        runs = []
        for path in sorted(args.notebooks):
            runs.append(run_notebook(path, budget=args.budget))
            print(format_notebook_table(runs[-1:], args.limit_mb).splitlines()[-1], flush=True)
        print()
        print(format_notebook_table(runs, args.limit_mb))
        failed = [r for r in runs if r.error or r.peak_rss_mb > args.limit_mb]
        return 1 if failed else 0

    budget = setup()
    if args.quick:
        budget = BUDGETS["fast"]
        args.vgg_epochs = args.epochs = 1
        args.evals_per_epoch = min(args.evals_per_epoch, 2)
        print("quick mode: the fast budget's sizes; the numbers check that it runs, they are not results")
    width = args.width or budget.width
    splits = mnist_splits(budget)
    n_train, n_test = len(splits["train"][0]), len(splits["test"][0])
    print(
        f"{n_train:,} training images, {n_test:,} test images, batch {args.batch_size}, "
        f"test accuracy measured {args.evals_per_epoch}× per epoch off the clock"
    )

    keras.utils.set_random_seed(0)
    vgg = build_model(blog_vgg(lrn=False, batchnorm=True), width=width, initializer="he_normal", bn_momentum=budget.bn_momentum)
    common = dict(splits=splits, batch_size=args.batch_size, target=args.target, evals_per_epoch=args.evals_per_epoch)

    def progress(name, interval, seconds, accuracy):
        print(
            f"  {name.split(',')[0]}: evaluation {interval}, {seconds:6.1f} s of training, test accuracy {accuracy:.2%}",
            flush=True,
        )

    common["report"] = progress
    results = [
        train_and_evaluate(
            f"(a) VGG 16-conv He+BN ×{width:g}, Adam one-cycle {args.learning_rate:g}",
            vgg,
            epochs=args.vgg_epochs,
            learning_rate=args.learning_rate,
            schedule="one-cycle",
            **common,
        )
    ]
    keras.utils.set_random_seed(0)
    results.append(
        train_and_evaluate(
            "(b) Keras simple convnet, Adam 0.001",
            simple_convnet(),
            epochs=args.epochs,
            learning_rate=1e-3,
            schedule="constant",
            **common,
        )
    )
    print()
    print(format_table(results, args.target))
    ratio = time_ratio(results)
    print(
        f"\nratio of time to {args.target:.1%}, (a)/(b): "
        + (f"{ratio:.2f}" if ratio is not None else "n/a (not reached by both)")
    )

    if not args.skip_full_width:
        full = build_model(blog_vgg(), initializer="blog")
        timing = time_train_steps(full, batch_size=128, steps=budget.timing_steps, optimizer="adam")
        print(f"\nfull-width blog model (52,446,922 parameters, Adam): {timing}")
        print(f"extrapolated: {timing.epoch_seconds(60_000) / 60:.0f} minutes per epoch of 60,000 images on this machine")
    return 0


if __name__ == "__main__":
    sys.exit(main())
