"""Training: augmentation, and resuming after an interruption without losing anything."""

import keras
import numpy as np
import pytest

from vgg_helpers.architectures import Architecture, conv, dense, pool
from vgg_helpers.models import build_model
from vgg_helpers.training import augmenter, fit_mnist, training_dataset


def tiny_splits(n_train=256, n_val=64, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n_train + n_val).astype(np.uint8)
    x = np.zeros((n_train + n_val, 28, 28), np.uint8)
    for i, label in enumerate(y):  # a learnable pattern: a bright column at the label's position
        x[i, 4:24, 2 + 2 * label] = 255
    return {"train": (x[:n_train], y[:n_train]), "val": (x[n_train:], y[n_train:])}


def tiny_model():
    arch = Architecture("tiny", (conv(4), pool(), dense(16), dense(10, relu=False, scale=False)), (28, 28, 1))
    return build_model(arch)


def test_augmenter_keeps_shape_and_range():
    images = np.random.default_rng(0).random((8, 28, 28, 1)).astype("float32")
    out = keras.ops.convert_to_numpy(augmenter()(images, training=True))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1.0 + 1e-6
    assert not np.allclose(out, images)  # something moved
    np.testing.assert_allclose(keras.ops.convert_to_numpy(augmenter()(images, training=False)), images)


def test_training_dataset_batches():
    splits = tiny_splits()
    batches = list(training_dataset(*splits["train"], batch_size=100))
    assert [b[0].shape[0] for b in batches] == [100, 100, 56]
    assert batches[0][0].shape[1:] == (28, 28, 1)


class Interrupt(keras.callbacks.Callback):
    """Raises at the end of one epoch, like a Colab disconnect."""

    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise KeyboardInterrupt(f"simulated disconnect after epoch {epoch + 1}")


def test_resume_after_interruption(tmp_path):
    splits = tiny_splits()
    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, callbacks=[Interrupt(0)], verbose=0)
    assert (tmp_path / "backup").exists() and (tmp_path / "best.keras").exists()
    # The same call again, with a fresh model, picks up where it stopped: epochs 2 and 3 only.
    history = fit_mnist(tiny_model(), splits, tmp_path, epochs=3, batch_size=64, augment=False, verbose=0)
    assert history.epoch == [1, 2]
    assert not (tmp_path / "backup").exists()  # removed once training finished
    best = keras.models.load_model(tmp_path / "best.keras")
    x_val = splits["val"][0][..., None].astype("float32") / 255
    accuracy = np.mean(best.predict(x_val, verbose=0).argmax(axis=1) == splits["val"][1])
    # The best checkpoint is at least as good as every epoch seen after the resume (epoch 1 may be best).
    assert accuracy >= max(history.history["val_accuracy"]) - 1e-6


def test_fit_mnist_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError, match="must be positive"):
        fit_mnist(tiny_model(), tiny_splits(), tmp_path, epochs=0)
