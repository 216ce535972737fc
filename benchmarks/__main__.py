"""``python -m benchmarks``: the fixed VGG against Keras' "Simple MNIST convnet", on this machine.

In one process, for each of ``--seeds`` seeds, it trains (a) the blog's 16-conv topology with the fixes of
notebook 03 (He init, BatchNorm, no LRN), by default with its top levels at half width and the recipe of
:data:`~benchmarks.sweep.VGG_DEFAULTS`, and (b) the Keras example convnet at its published settings (Adam 0.001,
batch 128), on the same data, measuring test accuracy 8 times per epoch off the training clock and printing a
short line at each measurement. A legend names each network once, as c1 and c2. For each seed it prints a table
(parameters, MACs per image, training images/s, seconds and images to reach the target, best accuracy, memory)
and the ratio of c1's time-to-target to c2's; then the ratios of all seeds and their median. It ends by timing a
few training steps of the full-width blog model.

    python -m benchmarks                 # 3 seeds, this machine's budget (cpu or gpu)
    python -m benchmarks --seeds 1 --width 0.0625 --learning-rate 0.01
    python -m benchmarks --widths 64-64-128-128-256x4-512x7-256 --vgg-epochs 2   # the blog's widths
    python -m benchmarks --sweep         # the VGG configurations tried, one row per run
    python -m benchmarks --quick         # small subset, one epoch: checks that it runs
    python -m benchmarks --speed '{"width": 0.125, "bn": "fused"}'   # one configuration's training speed
    python -m benchmarks --notebooks notebooks/*.ipynb --budget cpu --save --tables README.md docs/teaching.md
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap

import keras

from benchmarks import machine, notebooks, recipe, speed, sweep
from vgg_helpers import data, models
from vgg_helpers.architectures import BLOG_WIDTHS
from vgg_helpers.runtime import BUDGETS, setup


def parser() -> argparse.ArgumentParser:
    defaults = sweep.VGG_DEFAULTS
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3, help="training runs of each network, with seeds 0, 1, … (default 3)")
    p.add_argument("--vgg-epochs", type=float, default=defaults["epochs"], help="length of the VGG's one-cycle schedule")
    p.add_argument("--epochs", type=int, default=10, help="epochs of the Keras convnet, constant rate as in its example")
    p.add_argument("--width", type=float, help="VGG width multiplier (default: the budget's)")
    p.add_argument("--batch-size", type=int, default=defaults["batch_size"], help="the VGG's batch size")
    p.add_argument("--learning-rate", type=float, default=defaults["learning_rate"], help="VGG's peak Adam learning rate")
    p.add_argument(
        "--fused-bn",
        action=argparse.BooleanOptionalAction,
        default=defaults["fused_bn"],
        help="the VGG's conv BatchNorms on TensorFlow's fused kernel (same maths; default on; notebook 04 uses Keras' layer)",
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=defaults["label_smoothing"],
        help="the VGG's label smoothing (default 0.1; notebook 04 uses none)",
    )
    p.add_argument(
        "--dropout", type=float, default=defaults["dropout"], help="the VGG's dropout after its dense layers (default 0)"
    )
    p.add_argument(
        "--widths",
        type=recipe.parse_widths,
        default=defaults["widths"],
        help=f"filters of the VGG's 16 conv levels before --width (default {recipe.format_widths(defaults['widths'])}; the "
        f"blog's: {recipe.format_widths(BLOG_WIDTHS).replace('×', 'x')})",
    )
    p.add_argument("--evals-per-epoch", type=int, default=8, help="test evaluations per epoch (default 8)")
    p.add_argument("--target", type=float, default=0.99, help="test accuracy to time (default 0.99)")
    p.add_argument("--quick", action="store_true", help="fast budget's sizes, 1 epoch, 1 seed (checks that it runs)")
    p.add_argument(
        "--sweep", action="store_true", help="instead: train each VGG configuration of SWEEP (its own seeds where it names them)"
    )
    p.add_argument("--skip-full-width", action="store_true", help="do not time the full-width blog model")
    p.add_argument("--notebooks", nargs="+", metavar="NOTEBOOK", help="instead: run these notebooks, report memory and time")
    p.add_argument("--budget", default="cpu", help="budget for --notebooks (default cpu)")
    p.add_argument("--save", action="store_true", help="with --notebooks: write each executed notebook back")
    p.add_argument(
        "--tables",
        nargs="+",
        metavar="FILE",
        help="with --notebooks: write the run-time table into these files (rows of notebooks not run again are kept)",
    )
    p.add_argument(
        "--speed",
        metavar="JSON",
        help='instead: time one configuration\'s training steps, e.g. \'{"width": 0.125, "bn": "fused"}\' (keys: '
        + ", ".join(speed.SPEED_DEFAULTS)
        + "), and print one JSON line",
    )
    p.add_argument("--limit-mb", type=float, default=1600, help="memory limit for --notebooks in MB (default 1600 = 1.6 GB)")
    return p


def run_notebooks(args) -> int:
    runs = []
    for path in sorted(args.notebooks):
        runs.append(notebooks.run_notebook(path, budget=args.budget, save=args.save))
        print(notebooks.format_notebook_table(runs[-1:], args.limit_mb).splitlines()[-1], flush=True)
    print()
    print(notebooks.format_notebook_table(runs, args.limit_mb))
    failed = [r for r in runs if r.error or r.peak_rss_mb > args.limit_mb]
    if args.tables and not failed:
        notebooks.write_tables(args.tables, runs, machine.machine_line())
        print(f"\nwrote the table into {', '.join(args.tables)}")
    return 1 if failed else 0


def compare(args, budget, splits) -> None:
    """(a) the VGG against (b) Keras' convnet, seed by seed: a table and a ratio of times to the target each."""
    config = {
        "width": args.width or budget.width, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "epochs": args.vgg_epochs, "fused_bn": args.fused_bn, "label_smoothing": args.label_smoothing,
        "dropout": args.dropout, "widths": args.widths,
    }  # fmt: skip
    convnet = {"epochs": args.epochs, "batch_size": 128, "learning_rate": 1e-3, "schedule": "constant"}
    named = {"c1": f"(a) {sweep.describe_config(config)}", "c2": f"(b) {sweep.CONVNET}, {sweep.epochs_text(args.epochs)}"}
    print(sweep.legend(named))
    common = dict(splits=splits, target=args.target, evals_per_epoch=args.evals_per_epoch)
    ratios, reached = [], []
    for seed in range(args.seeds):
        print(f"\nseed {seed}", flush=True)
        keras.utils.set_random_seed(seed)
        a = sweep.train("c1", seed, recipe.build_vgg(config, budget.bn_momentum), **common, **recipe.training_arguments(config))
        keras.utils.set_random_seed(seed)
        b = sweep.train("c2", seed, models.simple_convnet(), **common, **convnet)
        print()
        print(sweep.format_table([a, b]))
        ratios.append(sweep.time_ratio(a, b))
        reached.append(a.seconds_to_target is not None)
        ratio = "n/a (not reached by both)" if ratios[-1] is None else f"{ratios[-1]:.2f}"
        print(f"seed {seed}: time to {args.target:.1%}, c1/c2: {ratio}")
    median = sweep.median_ratio(ratios)
    listed = ", ".join("n/a" if r is None else f"{r:.2f}" for r in ratios)
    print(f"\nratios c1/c2 over {args.seeds} seeds: {listed}; median " + ("n/a" if median is None else f"{median:.2f}"))
    print(f"c1 reached {args.target:.1%} in {sum(reached)} of {args.seeds} runs")


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if args.notebooks:
        return run_notebooks(args)
    if args.speed:
        setup(verbose=False)
        print(json.dumps(speed.speed_probe(json.loads(args.speed))), flush=True)
        return 0

    budget = setup()
    print(textwrap.fill(f"machine: {machine.machine_line()}", sweep.COLUMNS, subsequent_indent="  "))
    if args.quick:
        budget = BUDGETS["fast"]
        args.vgg_epochs, args.epochs, args.seeds = 1, 1, 1
        args.evals_per_epoch = min(args.evals_per_epoch, 2)
        print("quick mode: the fast budget's sizes; the numbers check that it runs, they are not results")
    splits = data.mnist_splits(budget)
    print(
        f"{len(splits['train'][0]):,} training images, {len(splits['test'][0]):,} test images; "
        f"test accuracy measured {args.evals_per_epoch}× per epoch, off the clock",
        flush=True,
    )
    if args.sweep:
        results = sweep.run_sweep(sweep.SWEEP, args.seeds, budget.bn_momentum, splits, args.target, args.evals_per_epoch)
        print()
        print(sweep.format_table(results))
        return 0
    compare(args, budget, splits)
    if not args.skip_full_width:
        print()
        print("\n".join(speed.full_width_lines(budget.timing_steps)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
