"""Figures for the notebooks: one message per figure, labelled axes, readable on a projector."""

from __future__ import annotations

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


def show_digits(images, labels, n: int = 24, cols: int = 12, title: str | None = None, predictions=None):
    """A grid of the first ``n`` digits, each titled with its label (and prediction if given)."""
    import matplotlib.pyplot as plt

    n = min(n, len(images))
    rows = int(np.ceil(n / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.95, rows * 1.2 + 0.5), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(np.asarray(images[i]).squeeze(), cmap="gray_r", vmin=0)
        text = str(int(labels[i]))
        color = "black"
        if predictions is not None:
            text += f"→{int(predictions[i])}"
            color = "black" if int(predictions[i]) == int(labels[i]) else "crimson"
        ax.set_title(text, fontsize=13, color=color, pad=2)
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
