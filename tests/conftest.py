"""Shared fixtures: tiny IDX files written by the tests themselves."""

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np
import pytest

from vgg_helpers.data import MNIST_FILES


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file (magic 0x0000 08 ndim, big-endian dims, data)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_tiny_mnist(folder: Path, n_train=6, n_test=4, compress=True, seed=0):
    """Write the four MNIST files, tiny, into ``folder``; return (arrays, checksums)."""
    rng = np.random.default_rng(seed)
    arrays = {
        ("train", "images"): rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        ("train", "labels"): rng.integers(0, 10, n_train, dtype=np.uint8),
        ("test", "images"): rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        ("test", "labels"): rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    checksums = {}
    folder.mkdir(parents=True, exist_ok=True)
    for key, stem in MNIST_FILES.items():
        raw = idx_bytes(arrays[key])
        checksums[stem] = hashlib.sha256(raw).hexdigest()
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(raw))
        else:
            (folder / stem).write_bytes(raw)
    return arrays, checksums


@pytest.fixture
def tiny_mnist(tmp_path):
    arrays, checksums = write_tiny_mnist(tmp_path / "mnist")
    return tmp_path / "mnist", arrays, checksums


def tiny_splits(n_train=256, n_val=64, n_test=64, seed=0):
    """Digits-shaped uint8 images with a learnable pattern: a bright column at the label's position."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    y = rng.integers(0, 10, n).astype(np.uint8)
    x = np.zeros((n, 28, 28), np.uint8)
    for i, label in enumerate(y):
        x[i, 4:24, 2 + 2 * label] = 255
    return {
        "train": (x[:n_train], y[:n_train]),
        "val": (x[n_train : n_train + n_val], y[n_train : n_train + n_val]),
        "test": (x[n_train + n_val :], y[n_train + n_val :]),
    }


def tiny_model():
    """A conv, a pool and two dense layers: trains in a fraction of a second per epoch."""
    from vgg_helpers.architectures import Architecture, conv, dense, pool
    from vgg_helpers.models import build_model

    arch = Architecture("tiny", (conv(4), pool(), dense(16), dense(10, relu=False, scale=False)), (28, 28, 1))
    return build_model(arch)
