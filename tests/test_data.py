"""The MNIST loader on tiny IDX files the tests write, and on the real data when it is there."""

import gzip
import os
import socket
import threading
import time

import numpy as np
import pytest
from conftest import idx_bytes, write_tiny_mnist

from vgg_helpers import data
from vgg_helpers.data import (
    load_mnist,
    load_mnist_idx,
    make_dataset,
    parse_idx,
    take_subset,
    train_val_split,
)

# --- parse_idx / read_idx -------------------------------------------------------------------


def test_parse_idx_round_trip():
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(parse_idx(idx_bytes(array)), array)


def test_parse_idx_rejects_wrong_magic():
    raw = bytearray(idx_bytes(np.zeros(5, np.uint8)))
    raw[2] = 0x0D  # float32 type code: not MNIST
    with pytest.raises(ValueError, match="wrong magic number 0x00000d01"):
        parse_idx(bytes(raw), name="labels")


def test_parse_idx_rejects_truncated_and_overlong():
    raw = idx_bytes(np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"truncated: its header promises shape \(3, 28, 28\)"):
        parse_idx(raw[:-10])
    with pytest.raises(ValueError, match="longer than its header says"):
        parse_idx(raw + b"\x00")
    with pytest.raises(ValueError, match="truncated"):
        parse_idx(raw[:2])


@pytest.mark.parametrize("compress", [True, False])
def test_load_tiny_gz_and_raw(tmp_path, compress):
    arrays, checksums = write_tiny_mnist(tmp_path, compress=compress)
    (x_train, y_train), (x_test, y_test) = load_mnist_idx(tmp_path, checksums=checksums)
    np.testing.assert_array_equal(x_train, arrays[("train", "images")])
    np.testing.assert_array_equal(y_train, arrays[("train", "labels")])
    np.testing.assert_array_equal(x_test, arrays[("test", "images")])
    np.testing.assert_array_equal(y_test, arrays[("test", "labels")])
    assert x_train.dtype == np.uint8 and x_train.shape == (6, 28, 28)


def test_checksum_mismatch_is_refused(tiny_mnist):
    folder, _, checksums = tiny_mnist
    # One flipped pixel in the test images: still a valid IDX file, no longer the right bytes.
    path = folder / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 0xFF
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz failed its checksum"):
        load_mnist_idx(folder, checksums=checksums)


def test_tiny_files_fail_the_real_mnist_checksums(tiny_mnist):
    folder, _, _ = tiny_mnist
    with pytest.raises(ValueError, match="failed its checksum"):
        load_mnist(folder)


def test_truncated_gzip_is_refused(tiny_mnist):
    folder, _, checksums = tiny_mnist
    path = folder / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz is a damaged or truncated gzip"):
        load_mnist_idx(folder, checksums=checksums)


def test_truncated_raw_file_is_refused(tmp_path):
    _, checksums = write_tiny_mnist(tmp_path, compress=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="train-images-idx3-ubyte is truncated"):
        load_mnist_idx(tmp_path, checksums=checksums)


def test_wrong_magic_file_is_refused(tiny_mnist):
    folder, _, checksums = tiny_mnist
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"<html>not found</html>"))
    with pytest.raises(ValueError, match="wrong magic number"):
        load_mnist_idx(folder, checksums=checksums)


def test_missing_file_names_it_and_says_how(tiny_mnist):
    folder, _, checksums = tiny_mnist
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist_idx(folder, checksums=checksums)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert "VGG_DATA_DIR" in message and "Keras downloads" in message


def test_missing_folder_from_env(monkeypatch):
    monkeypatch.setenv("VGG_DATA_DIR", "/nonexistent")
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert "/nonexistent" in message and "not a folder" in message
    assert "unset VGG_DATA_DIR" in message and "export VGG_DATA_DIR" in message


def test_env_var_is_read(monkeypatch, tmp_path):
    arrays, checksums = write_tiny_mnist(tmp_path)
    monkeypatch.setenv("VGG_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(data, "MNIST_SHA256", checksums)
    monkeypatch.setattr(data.load_mnist_idx, "__defaults__", (checksums,))
    (x_train, _), _ = load_mnist()
    np.testing.assert_array_equal(x_train, arrays[("train", "images")])


# --- no data, no network ----------------------------------------------------------------------


@pytest.fixture
def empty_keras_cache(monkeypatch, tmp_path):
    """No VGG_DATA_DIR and an empty Keras cache, so load_mnist must download."""
    monkeypatch.delenv("VGG_DATA_DIR", raising=False)
    import keras.src.backend.config as keras_config

    # Keras reads KERAS_HOME once, at import; get_file asks keras_home() on every call.
    (tmp_path / "keras").mkdir()  # Keras falls back to /tmp/.keras if it is missing
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path / "keras"))
    yield tmp_path / "keras"
    # The download was attempted into our empty cache, not into a real one.
    assert (tmp_path / "keras" / "datasets").is_dir()


def test_no_network_error_is_fast_and_says_both_ways(monkeypatch, empty_keras_cache):
    def no_dns(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    start = time.monotonic()
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    assert time.monotonic() - start < 30
    message = str(info.value)
    assert "could not download" in message
    assert "Keras downloads MNIST once" in message and "set VGG_DATA_DIR" in message


def test_silent_server_times_out_instead_of_hanging(monkeypatch, empty_keras_cache):
    """A network that accepts the connection but never answers must not hang the notebook."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True).start()
    real_getaddrinfo = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, p, *a, **k: real_getaddrinfo("127.0.0.1", port, *a, **k))
    monkeypatch.setattr(data, "DOWNLOAD_TIMEOUT_S", 1)
    start = time.monotonic()
    try:
        with pytest.raises(FileNotFoundError, match="could not download"):
            load_mnist()
    finally:
        server.close()
    assert time.monotonic() - start < 30
    assert socket.getdefaulttimeout() is None  # restored for the rest of the process


# --- splits and pipelines ---------------------------------------------------------------------


def test_train_val_split_is_disjoint_and_seeded():
    x = np.arange(100, dtype=np.uint8).reshape(100, 1, 1)
    y = np.arange(100) % 10
    (xt, yt), (xv, yv) = train_val_split(x, y, val_size=20, seed=3)
    assert len(xt) == 80 and len(xv) == 20
    assert not set(xt.ravel()) & set(xv.ravel())
    (xt2, _), _ = train_val_split(x, y, val_size=20, seed=3)
    np.testing.assert_array_equal(xt, xt2)
    with pytest.raises(ValueError, match="val_size"):
        train_val_split(x, y, val_size=100)


def test_take_subset():
    x = np.arange(50)
    y = np.arange(50)
    xs, ys = take_subset(x, y, 10)
    assert len(xs) == 10
    np.testing.assert_array_equal(xs, ys)  # pairs stay paired
    assert take_subset(x, y, 500)[0] is x
    with pytest.raises(ValueError):
        take_subset(x, y, 0)


def test_make_dataset_scales_batches_and_adds_channel():
    x = np.full((10, 28, 28), 255, dtype=np.uint8)
    y = np.arange(10, dtype=np.uint8)
    batches = list(make_dataset(x, y, batch_size=4))
    assert [b[0].shape[0] for b in batches] == [4, 4, 2]
    images, labels = batches[0]
    assert images.shape == (4, 28, 28, 1) and images.dtype.name == "float32"
    assert float(images.numpy().max()) == 1.0
    assert labels.numpy().tolist() == [0, 1, 2, 3]
    shuffled = np.concatenate([b[1].numpy() for b in make_dataset(x, y, 4, shuffle=True, seed=1)])
    assert sorted(shuffled.tolist()) == list(range(10))
    with pytest.raises(ValueError, match="9 labels"):
        make_dataset(x, y[:9])


# --- the real data, when VGG_DATA_DIR points at it ---------------------------------------------

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.skipif(not os.environ.get("VGG_DATA_DIR"), reason="VGG_DATA_DIR is not set")
def test_real_mnist():
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert x_train.shape == (60000, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert {a.dtype for a in (x_train, y_train, x_test, y_test)} == {np.dtype(np.uint8)}
    assert np.bincount(y_train).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test).tolist() == TEST_COUNTS
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]


@pytest.mark.skipif(not os.environ.get("VGG_DATA_DIR"), reason="VGG_DATA_DIR is not set")
def test_corrupted_copy_of_real_mnist_is_refused(tmp_path):
    """A copy of the real data with one byte changed in one file fails its checksum."""
    import shutil

    source = os.environ["VGG_DATA_DIR"]
    for name in os.listdir(source):
        if "ubyte" in name:
            shutil.copy(os.path.join(source, name), tmp_path / name)
    target = next(p for p in tmp_path.iterdir() if p.name.startswith("train-labels"))
    raw = bytearray(gzip.decompress(target.read_bytes()) if target.suffix == ".gz" else target.read_bytes())
    raw[1000] = (raw[1000] + 1) % 10  # one label changed: a perfectly valid IDX file
    target.write_bytes(gzip.compress(bytes(raw)) if target.suffix == ".gz" else bytes(raw))
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.* failed its checksum"):
        load_mnist(tmp_path)


# --- The TF1 reader shim (notebook 05) ---------------------------------------------------------


def _tiny(n=10):
    x = np.zeros((n, 28, 28), np.uint8)
    x[:, 0, 0] = np.arange(n)  # each image carries its index in its first pixel
    x[:, 1, 1] = 255
    return x, (np.arange(n) % 10).astype(np.uint8)


def test_tf1_dataset_shapes_and_one_hot():
    from vgg_helpers.data import Tf1DataSet

    ds = Tf1DataSet(*_tiny())
    images, labels = ds.next_batch(4)
    assert images.shape == (4, 784) and images.dtype == np.float32
    assert images.max() == 1.0 and images.min() == 0.0
    assert labels.shape == (4, 10) and labels.dtype == np.float32
    assert np.array_equal(labels.sum(axis=1), np.ones(4))
    index = np.round(images[:, 0] * 255).astype(int)
    assert np.array_equal(labels.argmax(axis=1), index % 10)  # labels travel with their images
    _, plain = Tf1DataSet(*_tiny(), one_hot=False).next_batch(3)
    assert plain.shape == (3,)


def test_tf1_dataset_sees_every_example_once_per_epoch_and_reshuffles():
    from vgg_helpers.data import Tf1DataSet

    ds = Tf1DataSet(*_tiny(10), seed=3)
    seen = [np.round(ds.next_batch(4)[0][:, 0] * 255).astype(int) for _ in range(5)]  # 20 = 2 epochs
    order = np.concatenate(seen)
    first, second = order[:10], order[10:]
    assert sorted(first) == list(range(10)) and sorted(second) == list(range(10))
    assert not np.array_equal(first, second)  # shuffled again for the second epoch
    assert not np.array_equal(first, np.arange(10))  # and shuffled before the first
    assert ds.epochs_completed == 2
    assert len(seen[2]) == 4  # the batch crossing the epoch's end is still full


def test_tf1_dataset_rejects_bad_input():
    from vgg_helpers.data import Tf1DataSet

    with pytest.raises(ValueError, match="uint8"):
        Tf1DataSet(np.zeros((4, 28, 28), np.float32), np.zeros(4))
    with pytest.raises(ValueError, match="batch_size"):
        Tf1DataSet(*_tiny()).next_batch(11)


def test_read_data_sets_names_the_splits():
    from vgg_helpers.data import read_data_sets

    x, y = _tiny(10)
    mnist = read_data_sets({"train": (x, y), "val": (x[:4], y[:4]), "test": (x[:6], y[:6])})
    assert (mnist.train.num_examples, mnist.validation.num_examples, mnist.test.num_examples) == (10, 4, 6)
    assert mnist.test.labels.shape == (6, 10)


def test_pipelines_run_without_the_autotune_thread():
    # With tf.data's autotuning on, fit and evaluate could wait up to seconds for its thread after the last
    # step (docs/benchmarks.md); the project's pipelines turn it off.
    x, y = np.zeros((8, 28, 28), np.uint8), np.zeros(8, np.uint8)
    for ds in (
        data.make_dataset(x, y, batch_size=4),
        data.training_dataset(x, y, batch_size=4, augment=False),
        data.training_dataset(x, y, batch_size=4, augment=True),
    ):
        assert ds.options().autotune.enabled is False


# --- Fashion-MNIST (notebook 08): the same guarantees ----------------------------------------------

FASHION = os.environ.get("VGG_FASHION_DIR")


def test_fashion_files_missing_or_damaged_are_named_with_both_ways(tmp_path):
    _, checksums = write_tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        data.load_fashion_mnist_idx(tmp_path, checksums=checksums)
    message = str(info.value)
    assert "Fashion-MNIST file t10k-labels-idx1-ubyte.gz" in message and "VGG_FASHION_DIR" in message
    assert "Keras downloads Fashion-MNIST once" in message and "export VGG_FASHION_DIR" in message
    write_tiny_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])  # a cut-off download
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz is a damaged or truncated gzip"):
        data.load_fashion_mnist_idx(tmp_path, checksums=checksums)


def test_fashion_folder_from_env_that_is_not_a_folder(monkeypatch):
    monkeypatch.setenv("VGG_FASHION_DIR", "/nonexistent")
    with pytest.raises(FileNotFoundError, match="VGG_FASHION_DIR points at /nonexistent, which is not a folder"):
        data.load_fashion_mnist()


def test_mnist_in_the_fashion_folder_is_refused(tiny_mnist):
    """Foreign files (here tiny stand-ins; MNIST's real files alike) fail Fashion-MNIST's checksums."""
    folder, _, _ = tiny_mnist
    with pytest.raises(ValueError, match="failed its checksum.*is not Fashion-MNIST.*FASHION_SHA256"):
        data.load_fashion_mnist(folder)


@pytest.mark.skipif(not FASHION, reason="needs the real Fashion-MNIST: VGG_FASHION_DIR is not set")
def test_real_fashion_mnist_loads_with_its_classes():
    (x_train, y_train), (x_test, y_test) = data.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28) and x_train.dtype == np.uint8
    assert np.bincount(y_train).tolist() == [6000] * 10 and np.bincount(y_test).tolist() == [1000] * 10
    assert y_train[:10].tolist() == [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]  # the dataset's README gives these
    assert len(data.FASHION_CLASSES) == 10 and data.FASHION_CLASSES[9] == "Ankle boot"
    if os.environ.get("VGG_DATA_DIR"):
        with pytest.raises(ValueError, match="is not Fashion-MNIST"):
            data.load_fashion_mnist(os.environ["VGG_DATA_DIR"])  # MNIST's real files in its place
