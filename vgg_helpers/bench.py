"""``python -m vgg_helpers.bench``: the CPU-budget VGG against Keras' "Simple MNIST convnet".

In one process, one after the other, it trains (a) the blog's 16-conv topology with the fixes of
notebook 03 (He init, BatchNorm, no LRN) at the budget's width and (b) the Keras example convnet,
on the same data pipeline, evaluating test accuracy after every epoch (outside the training clock).
It prints one table — parameters, MACs per image, training images/s, seconds of training to reach
the target accuracy, best accuracy, peak memory — and the ratio of (a)'s time-to-target to (b)'s.
Then it times a few training steps of the full-width blog model and extrapolates an epoch.

    python -m vgg_helpers.bench                 # this machine's budget (cpu or gpu)
    python -m vgg_helpers.bench --epochs 6 --width 0.125
    python -m vgg_helpers.bench --quick         # small subset, one epoch: checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sys
import time

import keras
import numpy as np


@dataclasses.dataclass
class BenchResult:
    name: str
    params: int
    macs: int
    epochs: int
    train_seconds: float
    images_per_second: float
    accuracies: list  #: test accuracy after each epoch
    seconds_to_target: float | None  #: training seconds until the test accuracy first reached the target
    peak_rss_mb: float  #: the process's peak resident memory after this run

    @property
    def best_accuracy(self) -> float:
        return max(self.accuracies)


class _EpochClock(keras.callbacks.Callback):
    """Training time per epoch, and test accuracy after each epoch, evaluated off the clock."""

    def __init__(self, test_ds):
        super().__init__()
        self.test_ds = test_ds
        self.seconds: list[float] = []
        self.accuracies: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.accuracies.append(float(self.model.evaluate(self.test_ds, verbose=0, return_dict=True)["accuracy"]))


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def run_one(name, model, splits, epochs, batch_size, learning_rate, schedule, target) -> BenchResult:
    """Train ``model`` for ``epochs`` with Adam on the shared pipeline; measure it."""
    from vgg_helpers.data import make_dataset
    from vgg_helpers.models import conv_macs
    from vgg_helpers.training import compile_classifier, training_dataset, warmup_cosine

    train_ds = training_dataset(*splits["train"], batch_size=batch_size, augment=False)
    test_ds = make_dataset(*splits["test"], batch_size=500)
    steps_per_epoch = int(np.ceil(len(splits["train"][0]) / batch_size))
    lr = warmup_cosine(learning_rate, steps_per_epoch, epochs) if schedule == "cosine" else learning_rate
    compile_classifier(model, keras.optimizers.Adam(lr))
    clock = _EpochClock(test_ds)
    model.fit(train_ds, epochs=epochs, shuffle=False, verbose=0, callbacks=[clock])
    elapsed = np.cumsum(clock.seconds)
    reached = [t for t, acc in zip(elapsed, clock.accuracies, strict=True) if acc >= target]
    return BenchResult(
        name=name,
        params=model.count_params(),
        macs=conv_macs(model),
        epochs=epochs,
        train_seconds=float(elapsed[-1]),
        images_per_second=len(splits["train"][0]) * epochs / float(elapsed[-1]),
        accuracies=clock.accuracies,
        seconds_to_target=float(reached[0]) if reached else None,
        peak_rss_mb=_peak_rss_mb(),
    )


def format_table(results: list[BenchResult], target: float) -> str:
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
                str(r.epochs),
                f"{r.peak_rss_mb:,.0f}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))) for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def time_ratio(results: list[BenchResult]) -> float | None:
    """(a)'s seconds to target divided by (b)'s; None if either did not reach it."""
    a, b = results[0].seconds_to_target, results[1].seconds_to_target
    return None if a is None or b is None else a / b


def main(argv=None) -> int:
    from vgg_helpers.architectures import blog_vgg
    from vgg_helpers.data import mnist_splits
    from vgg_helpers.models import build_model, simple_convnet
    from vgg_helpers.runtime import BUDGETS, setup
    from vgg_helpers.training import time_train_steps

    parser = argparse.ArgumentParser(prog="python -m vgg_helpers.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, help="epochs for both models (default: the budget's)")
    parser.add_argument("--width", type=float, help="VGG width multiplier (default: the budget's)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="VGG's peak Adam learning rate (cosine schedule)")
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to time (default 0.99)")
    parser.add_argument("--quick", action="store_true", help="fast budget: small subset, 1 epoch (checks it runs)")
    parser.add_argument("--skip-full-width", action="store_true", help="do not time the full-width blog model")
    args = parser.parse_args(argv)

    budget = setup()
    if args.quick:
        budget = BUDGETS["fast"]
        print("quick mode: the fast budget's sizes; the numbers check that it runs, they are not results")
    epochs = args.epochs or budget.epochs
    width = args.width or budget.width
    splits = mnist_splits(budget)
    n_train, n_test = len(splits["train"][0]), len(splits["test"][0])
    plural = "s" if epochs > 1 else ""
    print(f"{n_train:,} training images, {n_test:,} test images, batch {args.batch_size}, {epochs} epoch{plural}")

    keras.utils.set_random_seed(0)
    vgg = build_model(blog_vgg(lrn=False, batchnorm=True), width=width, initializer="he_normal", bn_momentum=budget.bn_momentum)
    results = [
        run_one(
            f"(a) VGG 16-conv He+BN ×{width:g}", vgg, splits, epochs, args.batch_size, args.learning_rate, "cosine", args.target
        )
    ]
    keras.utils.set_random_seed(0)
    results.append(
        run_one("(b) Keras simple convnet", simple_convnet(), splits, epochs, args.batch_size, 1e-3, "constant", args.target)
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
