"""The benchmark's training runs and how it reports them: the default VGG recipe (:data:`VGG_DEFAULTS`), every
configuration tried (:data:`SWEEP`), each named once in a numbered legend ("c1 = VGG ×1/8, …") and by its short
id after that, one short line per test evaluation, and tables of at most 100 columns."""

from __future__ import annotations

import dataclasses
import statistics
import textwrap
from fractions import Fraction

import keras

from benchmarks.machine import peak_rss_mb
from benchmarks.recipe import (
    HALVED_TOP_WIDTHS,
    SWEEP_OPTIONS,
    THREE_QUARTER_TOP_WIDTHS,
    build_vgg,
    format_widths,
    training_arguments,
)
from vgg_helpers.models import conv_macs
from vgg_helpers.training import TrainingCurve, train_and_evaluate

#: The widest line the benchmark prints.
COLUMNS = 100

#: The VGG configuration the benchmark runs by default (width None: the budget's): the blog's 16-conv topology
#: with the fixes of notebook 03 and its top levels at half width (:data:`~benchmarks.recipe.HALVED_TOP_WIDTHS`),
#: TensorFlow's fused BatchNorm, label smoothing 0.1, no dropout, 1.5 epochs of one-cycle Adam peaking at 0.02.
#: Until 2026-11-29 it was the blog's widths, Keras' BatchNorm, dropout 0.25, no label smoothing and 2 epochs:
#: ``--widths 64-64-128-128-256x4-512x7-256 --no-fused-bn --dropout 0.25 --label-smoothing 0 --vgg-epochs 2``.
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

#: Keras' "Simple MNIST convnet" at its published settings (Adam 0.001, batch 128, constant rate): the benchmark's (b).
CONVNET = "Keras simple convnet, batch 128, Adam 0.001"


def format_width(width: float) -> str:
    """A width multiplier as the notebooks write it: "1/8", "1/16", "1", "1.5"."""
    fraction = Fraction(width).limit_denominator(64)
    return str(fraction) if fraction == width else f"{width:g}"


def epochs_text(epochs: float) -> str:
    return f"{epochs:g} epoch{'s' if epochs != 1 else ''}"


def describe_config(config: dict) -> str:
    """One configuration in words: what differs from the sweep's starting recipe, and nothing else."""
    width, batch, peak, epochs = config["width"], config["batch_size"], config["learning_rate"], config["epochs"]
    options = {**SWEEP_OPTIONS, **config}
    fused = ", fused BN" if config.get("fused_bn") else ""
    optimizer = ", SGD Nesterov 0.9" if options["optimizer"] == "sgd" else ""
    text = f"VGG ×{format_width(width)}{fused}, batch {batch}{optimizer}, one-cycle peak {peak:g}, {epochs_text(epochs)}"
    extras = {
        "dropout": f"dropout {options['dropout']:g}",
        "label_smoothing": f"label smoothing {options['label_smoothing']:g}",
        "warmup": f"warm-up {options['warmup']:.0%}",
        "beta_2": f"Adam β₂ {options['beta_2']:g}",
        "ema": f"evaluating a moving average of the weights (momentum {options['ema']})",
        "batchnorm": "no BatchNorm",
        "widths": f"conv widths {format_widths(options['widths'])} before ×{format_width(width)}",
    }
    return ", ".join([text] + [extras[k] for k in extras if options[k] != SWEEP_OPTIONS[k]])


def legend(descriptions: dict[str, str]) -> str:
    """Each configuration named once, by its short id: "c1 = VGG ×1/8, …", wrapped to :data:`COLUMNS`."""
    lines = []
    for short, text in descriptions.items():
        lines += textwrap.wrap(f"{short} = {text}", COLUMNS, subsequent_indent=" " * (len(short) + 3))
    return "\n".join(lines)


@dataclasses.dataclass
class Result:
    """One training run: its configuration's short id and seed, the network's size, its test-accuracy curve, the
    process's peak memory after it, and the accuracy it is timed to."""

    config: str  #: the configuration's short id, "c1"
    seed: int
    params: int
    macs: int  #: multiply-accumulates per image of its conv and dense layers
    curve: TrainingCurve
    peak_rss_mb: float
    target: float = 0.99

    def _reached(self) -> int | None:
        return next((i for i, accuracy in enumerate(self.curve.accuracies) if accuracy >= self.target), None)

    @property
    def seconds_to_target(self) -> float | None:
        """Training seconds until the test accuracy first reached the target (None if it never did)."""
        index = self._reached()
        return None if index is None else float(self.curve.elapsed_seconds[index])

    @property
    def examples_to_target(self) -> int | None:
        """Training images seen when the test accuracy first reached the target (None if it never did)."""
        index = self._reached()
        return None if index is None else int(self.curve.examples_seen[index])

    @property
    def epochs(self) -> float:
        """Passes over the training set."""
        return float(self.curve.examples_seen[-1]) / self.curve.train_examples


def progress_line(short: str, seed: int, interval: int, intervals: int, seconds: float, accuracy: float) -> str:
    """One test evaluation: "c1 s0  eval 3/8  41.2 s  97.85%"."""
    return f"{short} s{seed}  eval {interval}/{intervals}  {seconds:.1f} s  {accuracy:.2%}"


def train(short: str, seed: int, model: keras.Model, splits: dict, target: float, evals_per_epoch: int, **arguments) -> Result:
    """Train ``model`` with ``train_and_evaluate``'s ``arguments``, printing a line at each evaluation."""
    intervals = max(1, int(round(arguments["epochs"] * evals_per_epoch)))  # as train_and_evaluate counts them

    def report(_name, interval, seconds, accuracy):
        print(progress_line(short, seed, interval, intervals, seconds, accuracy), flush=True)

    params, macs = model.count_params(), conv_macs(model)
    curve = train_and_evaluate(short, model, splits, evals_per_epoch=evals_per_epoch, report=report, **arguments)
    return Result(short, seed, params, macs, curve, peak_rss_mb(), target)


def run_sweep(configs, seeds: int, bn_momentum: float, splits: dict, target: float, evals_per_epoch: int) -> list[Result]:
    """Train each configuration with seeds 0 … ``seeds`` − 1 (or its own "seeds"), after printing the legend of
    their short ids c1, c2, …; one result per run."""
    named = {f"c{number}": config for number, config in enumerate(configs, start=1)}
    print(legend({short: describe_config(config) for short, config in named.items()}), flush=True)
    results = []
    for short, config in named.items():
        for seed in config.get("seeds", range(seeds)):
            keras.utils.set_random_seed(seed)
            model = build_vgg(config, bn_momentum)
            results.append(train(short, seed, model, splits, target, evals_per_epoch, **training_arguments(config)))
    return results


def format_table(results: list[Result]) -> str:
    """One row per training run, by its short id and seed: size, speed, seconds and images to the target, best
    accuracy, epochs and memory."""
    import pandas as pd

    target = f"{results[0].target:.1%}"
    rows = []
    for r in results:
        seconds, examples = r.seconds_to_target, r.examples_to_target
        rows.append(
            {
                "run": f"{r.config} s{r.seed}",
                "params": f"{r.params:,}",
                "MACs/img": f"{r.macs:,}",
                "img/s": f"{r.curve.images_per_second:,.0f}",
                f"s to {target}": f"{seconds:.0f}" if seconds is not None else f"> {r.curve.train_seconds:.0f}",
                f"img to {target}": f"{examples:,}" if examples is not None else "never",
                "best": f"{max(r.curve.accuracies):.2%}",
                "epochs": f"{r.epochs:.3g}",
                "peak MB": f"{r.peak_rss_mb:,.0f}",
            }
        )
    return pd.DataFrame(rows).to_string(index=False, justify="right")


def time_ratio(a: Result, b: Result) -> float | None:
    """``a``'s seconds to the target divided by ``b``'s; None if either did not reach it."""
    if a.seconds_to_target is None or b.seconds_to_target is None:
        return None
    return a.seconds_to_target / b.seconds_to_target


def median_ratio(ratios: list[float | None]) -> float | None:
    """The median of the per-seed ratios, counting a seed where (a) never reached the target as infinitely slow;
    None if fewer than half of the seeds give a ratio."""
    values = [float("inf") if r is None else r for r in ratios]
    median = statistics.median(values) if values else None
    return None if median is None or median == float("inf") else median
