"""Figures for the notebooks: one message per figure, labelled axes, readable on a projector."""

from __future__ import annotations

import keras
import numpy as np

#: Matplotlib settings applied by ``vgg_helpers.setup()``: large fonts for a projector.
PROJECTOR_STYLE = {
    "figure.figsize": (10, 4.5),
    "figure.dpi": 90,
    "font.size": 13,
    "axes.titlesize": 15,
    "axes.labelsize": 13,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def apply_style() -> None:
    """Apply :data:`PROJECTOR_STYLE` to matplotlib."""
    import matplotlib as mpl

    mpl.rcParams.update(PROJECTOR_STYLE)


def show_digits(images, labels, n: int = 24, cols: int = 12, title: str | None = None, names=None):
    """A grid of the first ``n`` images, each titled with its label, or with the label's name from ``names``
    (e.g. ``vgg_helpers.data.FASHION_CLASSES``)."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.95, rows * 1.2 + 0.5), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.asarray(images[i]).squeeze(), cmap="gray_r", vmin=0)
        text = str(int(labels[i])) if names is None else names[int(labels[i])]
        ax.set_title(text, fontsize=13 if names is None else 9, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_class_counts(counts: dict[str, np.ndarray], title: str = "Images per digit class"):
    """Grouped bars of images per class, one group per split (e.g. train and test)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    n_splits = len(counts)
    width = 0.8 / n_splits
    for k, (name, values) in enumerate(counts.items()):
        values = np.asarray(values)
        x = np.arange(len(values)) + (k - (n_splits - 1) / 2) * width
        ax.bar(x, values, width=width, label=f"{name} ({values.sum():,} images)")
    ax.set_xticks(range(len(values)))
    ax.set_xlabel("digit class")
    ax.set_ylabel("number of images")
    ax.set_title(title)
    ax.set_ylim(0, max(np.max(v) for v in counts.values()) * 1.25)  # headroom for the legend
    ax.legend(loc="upper center", ncol=n_splits, frameon=False)
    fig.tight_layout()
    return fig


def _short_name(name: str) -> str:
    """'level 3: conv + LRN' → 'level 3'; 'conv3 3×3' → 'conv3'; 'fc1 + dropout' → 'fc1'."""
    return name.split(":")[0] if ":" in name else name.split()[0]


def plot_layer_bars(table, field: str = "params", title: str = ""):
    """Bars of one column of a :func:`~vgg_helpers.architectures.layer_table` per weight layer.

    ``field`` is ``"params"``, ``"macs"`` or ``"activations"``; bars are coloured conv vs dense.
    """
    import matplotlib.pyplot as plt

    labels = {"params": "parameters", "macs": "multiply-accumulates per image", "activations": "output values per image"}
    if field not in labels:
        raise ValueError(f"field must be one of {', '.join(labels)}, got {field!r}.")
    rows = [r for r in table if r.kind in ("conv", "dense")]
    values = np.array([getattr(r, field) for r in rows], dtype=float)
    colors = ["tab:blue" if r.kind == "conv" else "tab:orange" for r in rows]
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.bar(range(len(rows)), values / 1e6, color=colors)
    ax.set_xticks(range(len(rows)), [_short_name(r.name) for r in rows], rotation=60, ha="right")
    ax.set_ylabel(f"{labels[field]} (millions)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in ("tab:blue", "tab:orange")]
    conv_share = values[[r.kind == "conv" for r in rows]].sum() / values.sum()
    ax.legend(handles, [f"conv layers: {conv_share:.0%}", f"dense layers: {1 - conv_share:.0%}"], frameon=False)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_feature_maps(maps, max_maps: int = 16, title: str = "", cols: int = 8):
    """The first ``max_maps`` channels of one image's feature maps ``(h, w, c)``, in a grid."""
    import matplotlib.pyplot as plt

    maps = np.asarray(maps)
    if maps.ndim != 3:
        raise ValueError(f"feature maps must have shape (height, width, channels), got {maps.shape}.")
    n = min(max_maps, maps.shape[-1])
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.3 + 0.6), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i < n:
            ax.imshow(maps[..., i], cmap="viridis")
    fig.suptitle(title or f"{n} of {maps.shape[-1]} feature maps, {maps.shape[0]}×{maps.shape[1]}")
    fig.tight_layout()
    return fig


def plot_level_grid(level_maps, per_level: int = 8, title: str = ""):
    """One row per conv level: its first ``per_level`` feature maps for one image."""
    import matplotlib.pyplot as plt

    levels = len(level_maps)
    fig, axes = plt.subplots(levels, per_level, figsize=(per_level * 1.05, levels * 1.1 + 0.6), squeeze=False)
    for level, maps in enumerate(level_maps):
        maps = np.asarray(maps)
        for i in range(per_level):
            ax = axes[level, i]
            ax.set_xticks([])
            ax.set_yticks([])
            if i < maps.shape[-1]:
                ax.imshow(maps[..., i], cmap="viridis")
            else:
                ax.axis("off")
        axes[level, 0].set_ylabel(
            f"{level + 1}: {maps.shape[0]}×{maps.shape[1]}", rotation=0, ha="right", va="center", fontsize=11
        )
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_scales(tables: dict, title: str = "", ax=None):
    """One line per model: the activations' std per layer (from :func:`~vgg_helpers.diagnostics.activation_stats`),
    log scale.

    Values that are not finite are drawn as a cross at the top of the axis.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(12, 5))
    names = None
    for label, table in tables.items():
        values = table.column("std")
        names = [r.name.replace("conv level ", "") for r in table]
        x = np.arange(len(values))
        ok = np.isfinite(values) & (values > 0)
        (line,) = ax.plot(x[ok], values[ok], "o-", label=label)
        if (~ok).any():
            ax.plot(x[~ok], np.full((~ok).sum(), 1e38), "x", color=line.get_color(), markersize=10)
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=0)
    ax.set_xlabel("conv level 1–16, then dense layers")
    ax.set_ylabel("activation std (log scale)")
    ax.set_title(title)
    ax.legend(frameon=False, fontsize=11)
    return ax


def plot_scale_prediction(predictions, title: str = ""):
    """Predicted against measured std of each layer's pre-activation output, log scale."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(12, 4.8))
    names = [p.name for p in predictions]
    x = np.arange(len(names))
    ax.plot(x, [p.measured_std for p in predictions], "o-", lw=3, label="measured")
    ax.plot(x, [p.predicted_std for p in predictions], "s--", label="predicted: √(n_in · Var[w] · E[x²])")
    ax.set_yscale("log")
    ax.set_xticks(x, names, rotation=60, ha="right")
    ax.set_ylabel("std of the layer's output\nbefore ReLU (log scale)")
    ax.set_title(title)
    ax.legend(frameon=False)
    fig.tight_layout()
    return fig


def plot_curves(runs: dict, title: str = "", smooth: int = 1):
    """Loss (log scale) and accuracy per step for several short runs (dicts with 'loss', 'accuracy')."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(13, 4.8))
    kernel = np.ones(smooth) / smooth
    for label, run in runs.items():
        steps = np.arange(1, len(run["loss"]) + 1)
        loss = np.asarray(run["loss"], dtype=float)
        ax_loss.plot(steps, np.where(np.isfinite(loss), loss, np.nan), label=label)
        acc = np.convolve(run["accuracy"], kernel, mode="valid") if smooth > 1 else run["accuracy"]
        ax_acc.plot(steps[len(steps) - len(acc) :], acc, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("training step (batch of 128)")
    ax_loss.set_ylabel("loss (log scale)")
    ax_acc.set_xlabel("training step (batch of 128)")
    ax_acc.set_ylabel("training accuracy" + (f" ({smooth}-step mean)" if smooth > 1 else ""))
    ax_acc.set_ylim(0, 1)
    ax_acc.legend(frameon=False, fontsize=10)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- Training and evaluation (notebook 04) ------------------------------------------------------------


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


class LiveHistory(keras.callbacks.Callback):
    """A Keras callback that draws the learning curves in place while ``fit`` runs: the training loss and
    accuracy every ``every_seconds`` (so a long epoch shows progress), the validation points after each
    epoch, and in the title the epoch, the share done, the time so far and the time left. One output
    that updates itself: no log spam in the notebook."""

    def __init__(self, title: str = "", every_seconds: float = 10.0, clock=None):
        super().__init__()
        import time

        self.title, self.every_seconds = title, every_seconds
        self.clock = clock or time.perf_counter
        self.history: dict[str, list[float]] = {}  #: per-epoch logs, as keras.callbacks.History keeps them
        self.progress: list[tuple[float, float, float]] = []  #: (epochs done, running loss, running accuracy)
        self._handle = self._fig = None
        self._epoch, self._start, self._last = 0, None, None

    def on_train_begin(self, logs=None):
        self._start = self._last = self.clock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _done(self, batch: int | None) -> float:
        steps = (self.params or {}).get("steps") or 0
        return self._epoch + (1.0 if batch is None or not steps else (batch + 1) / steps)

    def on_train_batch_end(self, batch, logs=None):
        now = self.clock()
        if self._last is not None and now - self._last < self.every_seconds:
            return
        self._last = now
        logs = logs or {}
        self.progress.append((self._done(batch), float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))))
        self._draw(self._done(batch))

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        logs = logs or {}
        self.progress.append((epoch + 1.0, float(logs.get("loss", np.nan)), float(logs.get("accuracy", np.nan))))
        self._draw(epoch + 1.0)

    def _status(self, done: float) -> str:
        epochs = (self.params or {}).get("epochs") or max(1, int(np.ceil(done)))
        first = (self.params or {}).get("initial_epoch", 0) or 0
        if self._start is None:
            return f"after epoch {int(done)}"
        elapsed = self.clock() - self._start
        fraction = (done - first) / max(epochs - first, 1e-9)
        left = elapsed * (1 - fraction) / fraction if fraction > 0 else float("nan")
        epoch = min(int(np.floor(done)) + (0 if done == int(done) else 1), epochs)
        text = f"epoch {epoch}/{epochs}, {fraction:.0%} done, {_duration(elapsed)}"
        return text + (f", about {_duration(left)} left" if np.isfinite(left) and fraction < 1 else "")

    def _draw(self, done: float) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        if self._fig is None:
            self._fig = plt.figure(figsize=(13, 4.8))
            plt.close(self._fig)  # shown through the display handle only, not again at the end of the cell
        fig = self._fig
        fig.clear()
        ax_loss, ax_acc = fig.subplots(1, 2)
        x, loss, acc = (np.array(v) for v in zip(*self.progress, strict=True)) if self.progress else ([], [], [])
        ax_loss.plot(x, loss, "-", label="training (running mean of the epoch)")
        ax_acc.plot(x, 100 * np.asarray(acc), "-", label="training (running mean of the epoch)")
        epochs = np.arange(1, len(self.history.get("val_loss", [])) + 1)
        if len(epochs):
            ax_loss.plot(epochs, self.history["val_loss"], "s--", label="validation (end of epoch)")
            ax_acc.plot(epochs, 100 * np.asarray(self.history["val_accuracy"]), "s--", label="validation (end of epoch)")
        ax_loss.set_yscale("log")
        ax_loss.set_ylabel("loss (log scale)")
        ax_acc.set_ylabel("accuracy (%)")
        for ax in (ax_loss, ax_acc):
            ax.set_xlabel("epochs")
            ax.legend(frameon=False, fontsize=11)
        fig.suptitle(f"{self.title} — {self._status(done)}".strip(" —"))
        fig.tight_layout()
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)


def plot_confusion(labels, predictions, classes: int = 10, title: str = ""):
    """Confusion matrix of counts; the diagonal (correct) is greyed so the errors stand out."""
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(labels, predictions, classes)
    errors = matrix.copy()
    np.fill_diagonal(errors, 0)
    fig, ax = plt.subplots(figsize=(7.5, 6.5))
    image = ax.imshow(errors, cmap="Reds", vmin=0)
    for i in range(classes):
        for j in range(classes):
            if matrix[i, j]:
                ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=10, color="grey" if i == j else "black")
    ax.set_xticks(range(classes))
    ax.set_yticks(range(classes))
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit")
    fig.colorbar(image, ax=ax, label="errors (off the diagonal)")
    ax.set_title(title or f"{errors.sum()} errors in {matrix.sum():,} test images")
    fig.tight_layout()
    return fig


def confusion_matrix(labels, predictions, classes: int = 10) -> np.ndarray:
    """``matrix[true, predicted]`` = number of images."""
    labels, predictions = np.asarray(labels, dtype=int), np.asarray(predictions, dtype=int)
    if labels.shape != predictions.shape:
        raise ValueError(f"labels and predictions differ in shape: {labels.shape} vs {predictions.shape}.")
    return np.bincount(labels * classes + predictions, minlength=classes * classes).reshape(classes, classes)


def plot_per_class_accuracy(labels, predictions, classes: int = 10, title: str = ""):
    """Accuracy per true digit, with the overall accuracy as a line."""
    import matplotlib.pyplot as plt

    matrix = confusion_matrix(labels, predictions, classes)
    per_class = 100 * np.diag(matrix) / np.maximum(matrix.sum(axis=1), 1)
    overall = 100 * np.trace(matrix) / matrix.sum()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.bar(range(classes), per_class, color="tab:blue")
    ax.axhline(overall, color="black", ls="--", label=f"all digits: {overall:.2f}%")
    for i, value in enumerate(per_class):
        ax.text(i, value, f"{value:.1f}", ha="center", va="bottom", fontsize=11)
    ax.set_ylim(max(0.0, per_class.min() - 2), 100.5)
    ax.set_xticks(range(classes))
    ax.set_xlabel("true digit")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(frameon=False, loc="lower left")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def show_misclassified(images, labels, probabilities, n: int = 12, cols: int = 6, order: str = "first", title: str = ""):
    """Misclassified digits, each over a bar chart of its predicted probabilities (green: the true
    digit, red: the prediction). ``order="first"`` shows the first ``n`` mistakes in test-set order
    (an unbiased sample); ``"confident"`` the ``n`` the network was surest of.
    """
    import matplotlib.pyplot as plt

    if order not in ("first", "confident"):
        raise ValueError(f"order must be 'first' or 'confident', got {order!r}.")
    probabilities = np.asarray(probabilities)
    labels = np.asarray(labels, dtype=int)
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    if len(wrong) == 0:
        raise ValueError("no misclassified images to show: every prediction is correct.")
    if order == "confident":
        wrong = wrong[np.argsort(-probabilities[wrong, predicted[wrong]], kind="stable")]
    wrong = wrong[:n]
    rows = int(np.ceil(len(wrong) / cols))
    fig, axes = plt.subplots(
        2 * rows, cols, figsize=(cols * 2.2, rows * 3.6), squeeze=False, gridspec_kw={"height_ratios": [2.2, 1] * rows}
    )
    for ax in axes.ravel():
        ax.axis("off")
    for k, i in enumerate(wrong):
        r, c = divmod(k, cols)
        ax_img, ax_bar = axes[2 * r, c], axes[2 * r + 1, c]
        ax_img.imshow(np.asarray(images[i]).squeeze(), cmap="gray_r", vmin=0)
        ax_img.set_title(f"true {labels[i]}, said {predicted[i]}", fontsize=12, color="crimson")
        ax_bar.axis("on")
        colors = ["tab:green" if d == labels[i] else "crimson" if d == predicted[i] else "lightgrey" for d in range(10)]
        ax_bar.bar(range(10), probabilities[i], color=colors)
        ax_bar.set_ylim(0, 1)
        ax_bar.set_xticks(range(10))
        ax_bar.tick_params(labelsize=9, pad=1)
        ax_bar.set_yticks([0, 1])
    which = "first" if order == "first" else "most confident"
    n_wrong = int((predicted != labels).sum())
    fig.suptitle(title or f"The {which} {len(wrong)} of {n_wrong} mistakes, with the predicted probability of each digit")
    fig.tight_layout(h_pad=1.2)
    return fig


def plot_level_comparison(before, after, levels, per_level: int = 6, title: str = ""):
    """Selected conv levels of one image, side by side: ``before[i]`` and ``after[i]`` are the
    ``(h, w, c)`` maps of level ``levels[i]`` (1-based) of two networks, e.g. untrained and trained."""
    import matplotlib.pyplot as plt

    if not len(before) == len(after) == len(levels):
        raise ValueError(f"need one map per level for both networks, got {len(before)}, {len(after)} and {len(levels)} levels.")
    rows, cols = len(levels), 2 * per_level + 1
    widths = [1] * per_level + [0.35] + [1] * per_level
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * 0.95, rows * 1.05 + 1.0), squeeze=False, gridspec_kw={"width_ratios": widths}
    )
    for r, (level, left, right) in enumerate(zip(levels, before, after, strict=True)):
        for block, maps in ((0, np.asarray(left)), (per_level + 1, np.asarray(right))):
            for i in range(per_level):
                ax = axes[r, block + i]
                ax.set_xticks([])
                ax.set_yticks([])
                if i < maps.shape[-1]:
                    ax.imshow(maps[..., i], cmap="viridis")
        axes[r, per_level].axis("off")
        shape = np.asarray(left).shape
        axes[r, 0].set_ylabel(f"level {level}\n{shape[0]}×{shape[1]}", rotation=0, ha="right", va="center", fontsize=11)
    axes[0, per_level // 2].set_title("before training", fontsize=14, loc="left")
    axes[0, per_level + 1 + per_level // 2].set_title("after training", fontsize=14, loc="left")
    fig.suptitle(title)
    fig.tight_layout()
    return fig
