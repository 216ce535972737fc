"""Evaluation figures of notebook 04: the numbers behind them, and that they draw."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from vgg_helpers import plots  # noqa: E402

LABELS = np.array([0, 0, 1, 1, 2, 2, 2, 9])
PREDICTED = np.array([0, 1, 1, 1, 2, 7, 7, 9])


def test_confusion_matrix_counts_true_by_predicted():
    matrix = plots.confusion_matrix(LABELS, PREDICTED)
    assert matrix.shape == (10, 10) and matrix.sum() == len(LABELS)
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[2, 7] == 2 and matrix[9, 9] == 1
    assert np.trace(matrix) == 5
    with pytest.raises(ValueError, match="differ in shape"):
        plots.confusion_matrix(LABELS, PREDICTED[:-1])


def test_evaluation_figures_draw():
    fig = plots.plot_confusion(LABELS, PREDICTED)
    assert "3 errors in 8 test images" in fig.axes[0].get_title()
    fig = plots.plot_per_class_accuracy(LABELS, PREDICTED)
    heights = [bar.get_height() for bar in fig.axes[0].patches]
    assert heights[0] == pytest.approx(50) and heights[1] == pytest.approx(100) and heights[2] == pytest.approx(100 / 3)
    probabilities = np.full((8, 10), 0.01)
    probabilities[np.arange(8), PREDICTED] = 0.9
    probabilities[6, 7] = 0.99  # the surest mistake
    fig = plots.show_misclassified(np.zeros((8, 28, 28)), LABELS, probabilities, n=12)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["true 0, said 1", "true 2, said 7", "true 2, said 7"]
    fig = plots.show_misclassified(np.zeros((8, 28, 28)), LABELS, probabilities, n=1, order="confident")
    assert "most confident 1 of 3 mistakes" in fig._suptitle.get_text()
    with pytest.raises(ValueError, match="every prediction is correct"):
        plots.show_misclassified(np.zeros((8, 28, 28)), LABELS, np.eye(10)[LABELS])
    plt.close("all")


def test_live_history_collects_and_redraws():
    now = [0.0]
    live = plots.LiveHistory("run", every_seconds=10, clock=lambda: now[0])
    live.set_params({"epochs": 2, "steps": 4})
    live.on_train_begin()
    for epoch, (loss, acc) in enumerate([(1.0, 0.7), (0.5, 0.9)]):
        live.on_epoch_begin(epoch)
        for batch in range(4):
            now[0] += 4.0  # a batch every 4 s: the curve is redrawn at most every 10 s
            live.on_train_batch_end(batch, {"loss": loss, "accuracy": acc})
        live.on_epoch_end(epoch, {"loss": loss, "accuracy": acc, "val_loss": loss / 2, "val_accuracy": acc})
    assert live.history == {"loss": [1.0, 0.5], "accuracy": [0.7, 0.9], "val_loss": [0.5, 0.25], "val_accuracy": [0.7, 0.9]}
    assert [round(p[0], 2) for p in live.progress] == [0.75, 1.0, 1.5, 2.0]  # batches at 12 s, 24 s; epoch ends
    assert "epoch 2/2, 100% done, 32 s" in live._fig._suptitle.get_text()
    now[0] = 40.0
    live.on_train_begin()
    now[0] = 48.0
    assert live._status(0.5) == "epoch 1/2, 25% done, 8 s, about 24 s left"
    plt.close("all")
