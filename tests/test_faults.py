"""Faults a learner meets, each reproduced: crashes, reruns, two kernels, damaged files, bad input.

Process faults (a kill mid-epoch, a second process, a rerun) run in real subprocesses on a tiny model;
every subprocess is bounded in time and killed on every path.
"""

import contextlib
import gzip
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import tiny_model, tiny_splits
from notebook04 import fit_mnist

from vgg_helpers import data, models, runs, runtime
from vgg_helpers.architectures import blog_vgg

TESTS = Path(__file__).resolve().parent

# A training process: fit_mnist on the tiny data in ROOT. PAUSE_AFTER=k makes it write ROOT/paused and
# hang at the start of epoch k+1, so that the test can kill it mid-epoch or start a second process.
WORKER = """
import os, sys, time
sys.path.insert(0, {tests!r})
import keras
from conftest import tiny_model, tiny_splits
from notebook04 import fit_mnist

root, epochs, pause_after = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


class Pause(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == pause_after:
            open(os.path.join(root, "paused"), "w").close()
            time.sleep(600)


keras.utils.set_random_seed(0)
history, run = fit_mnist(tiny_model(), tiny_splits(), root, epochs=epochs, batch_size=64, augment=False,
                         callbacks=[Pause()], verbose=0)
print("trained epochs", [e + 1 for e in history.epoch], "in", run.path, flush=True)
"""


def start_worker(root: Path, epochs: int = 3, pause_after: int = -1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WORKER.format(tests=str(TESTS)), str(root), str(epochs), str(pause_after)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def finish(process: subprocess.Popen, timeout: float = 180) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    return process.returncode, out, err


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            _, out, err = finish(process)
            raise AssertionError(f"{path.name} never appeared; the worker said:\n{out}\n{err[-3000:]}")
        time.sleep(0.2)


@contextlib.contextmanager
def worker(root: Path, **kwargs):
    process = start_worker(root, **kwargs)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def interrupted_run(root: Path, after_epochs: int = 2) -> Path:
    """Train the tiny model in-process and stop it after ``after_epochs`` epochs; return the run folder."""

    class Stop(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == after_epochs:
                raise KeyboardInterrupt("simulated disconnect")

    keras.utils.set_random_seed(0)
    with pytest.raises(KeyboardInterrupt):
        fit_mnist(tiny_model(), tiny_splits(), root, epochs=4, batch_size=64, augment=False, callbacks=[Stop()], verbose=0)
    return root / "1"


def resume(root: Path):
    keras.utils.set_random_seed(0)
    return fit_mnist(tiny_model(), tiny_splits(), root, epochs=4, batch_size=64, augment=False, verbose=0)


# --- process faults ---------------------------------------------------------------------------------


def test_rerun_of_a_finished_run_keeps_its_best_model(tmp_path):
    rc, out, err = finish(start_worker(tmp_path, epochs=2))
    assert rc == 0, err[-3000:]
    first = tmp_path / "1"
    kept = {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()}
    assert "best.json" in kept and json.loads(kept["best.json"])["file"] in kept
    rc, out, err = finish(start_worker(tmp_path, epochs=2))
    assert rc == 0, err[-3000:]
    assert f"new run {tmp_path / '2'} ({first} is finished: best val_accuracy" in out
    assert {p.name: p.read_bytes() for p in first.iterdir() if p.is_file()} == kept  # run 1 untouched


def test_a_second_process_stops_at_once_naming_the_first(tmp_path):
    with worker(tmp_path, epochs=3, pause_after=1) as first:
        wait_for(tmp_path / "1" / "backup" / "checksums.json", first)
        wait_for(tmp_path / "paused", first)
        started = time.monotonic()
        rc, out, err = finish(start_worker(tmp_path, epochs=3))
        assert rc != 0 and time.monotonic() - started < 120
        assert "RunInUse" in err and f"pid {first.pid}" in err and "Shut Down Kernel" in err
        assert "trained epochs" not in out
    # The second process wrote nothing: the run holds only what the first one wrote after epoch 1.
    assert json.loads((tmp_path / "1" / "best.json").read_text())["epoch"] == 1


def test_sigkill_mid_epoch_then_resume(tmp_path):
    with worker(tmp_path, epochs=4, pause_after=2) as first:
        wait_for(tmp_path / "paused", first)
        first.send_signal(signal.SIGKILL)  # mid-epoch 3: the lock file stays behind, its process gone
        first.wait(timeout=30)
    assert (tmp_path / "1" / "lock").exists()
    (tmp_path / "paused").unlink()
    rc, out, err = finish(start_worker(tmp_path, epochs=4))
    assert rc == 0, err[-3000:]
    assert f"taking over the run {tmp_path / '1'}: its lock was left by process {first.pid}, which no longer runs" in out
    assert "continues after epoch 2 (backup checksums verified)" in out
    assert f"trained epochs [3, 4] in {tmp_path / '1'}" in out
    run = runs.Run(tmp_path / "1", {}, resumed=False)
    logs = run.epoch_logs()
    assert sorted(logs) == [1, 2, 3, 4] and run.finished()["status"] == "complete"
    best = max(logs, key=lambda e: logs[e]["val_accuracy"])
    assert run.best()["epoch"] == best  # the best of all four epochs, across the kill
    assert not (tmp_path / "1" / "lock").exists()


def test_kill_between_checkpoint_and_record_leaves_a_score_that_matches_its_model(tmp_path):
    """A crash right after ModelCheckpoint wrote a new best, before it was recorded: best.json still
    names the previous best with its checksum; the new file is kept, not recorded; a half-written
    file is removed."""
    run = interrupted_run(tmp_path, after_epochs=1)
    record = json.loads((run / "best.json").read_text())
    unrecorded = run / "best-epoch02.keras"
    unrecorded.write_bytes((run / record["file"]).read_bytes())  # a complete model, its score never recorded
    (run / "best-epoch03.keras").write_bytes((run / record["file"]).read_bytes()[:2000])  # cut short while saving
    rc, out, err = finish(start_worker(tmp_path, epochs=4))
    assert rc == 0, err[-3000:]
    assert "best-epoch02.keras has no recorded score and is left as it is" in out
    assert not (run / "best-epoch03.keras").exists() and unrecorded.exists()
    final = json.loads((run / "best.json").read_text())
    assert runs.sha256_file(run / final["file"]) == final["sha256"]


# --- damaged files ----------------------------------------------------------------------------------


def flip_bytes(path: Path, count: int = 64) -> None:
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    for i in range(middle, middle + count):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_bit_flipped_backup_falls_back_to_the_copy_before_it(tmp_path, capsys):
    run = interrupted_run(tmp_path, after_epochs=2)
    flip_bytes(run / "backup" / "latest.weights.h5")
    capsys.readouterr()
    history, _ = resume(tmp_path)
    out = capsys.readouterr().out
    assert "its last backup failed its checksum" in out and "continues from the copy before it, after epoch 1" in out
    assert history.epoch == [1, 2, 3]  # epoch 2 again, from the copy made after epoch 1


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_both_backups_damaged_stops_with_the_folder_to_delete(tmp_path, damage):
    run = interrupted_run(tmp_path, after_epochs=2)
    for name in ("latest.weights.h5", "latest.weights.h5.bkp"):
        path = run / "backup" / name
        flip_bytes(path) if damage == "flip" else path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"backup in .*/1/backup is damaged: neither copy matches.*Delete .*/1/backup"):
        resume(tmp_path)
    assert not (run / "lock").exists()  # the refusal released the run


def test_truncated_training_metadata_falls_back(tmp_path, capsys):
    run = interrupted_run(tmp_path, after_epochs=2)
    meta = run / "backup" / "training_metadata.json"
    meta.write_text(meta.read_text()[:5])
    history, _ = resume(tmp_path)
    assert "its last backup failed its checksum" in capsys.readouterr().out
    assert history.epoch == [1, 2, 3]


def test_damaged_config_names_the_run_and_what_to_delete(tmp_path):
    run = interrupted_run(tmp_path, after_epochs=1)
    (run / "config.json").write_text('{"epochs": 4, "bat')
    with pytest.raises(ValueError, match=r"1/config.json \(this run's configuration\) is damaged.*Delete \(or move away\) .*/1"):
        resume(tmp_path)


def test_damaged_best_record_is_named(tmp_path):
    run = interrupted_run(tmp_path, after_epochs=1)
    (run / "best.json").write_text("{")
    with pytest.raises(ValueError, match=r"best.json \(the record of the best model\) is damaged.*delete"):
        resume(tmp_path)


def test_damaged_best_model_is_refused_on_load(tmp_path):
    resume(tmp_path)
    run = runs.Run(tmp_path / "1", {}, resumed=False)
    flip_bytes(run.path / run.best()["file"])
    with pytest.raises(ValueError, match="does not match the checksum recorded"):
        run.load_best()


# --- the MNIST cache, offline ------------------------------------------------------------------------

OFFLINE_LOAD = """
import socket, sys
def refuse(*args, **kwargs):
    raise OSError("network unreachable (test)")
socket.create_connection = refuse
socket.socket.connect = refuse
from vgg_helpers import data
try:
    (x, y), _ = data.load_mnist()
    print("loaded", x.shape)
except FileNotFoundError as err:
    print("FileNotFoundError:", err)
"""


def load_offline(keras_home: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "VGG_DATA_DIR"}
    env.update(KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run([sys.executable, "-c", OFFLINE_LOAD], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("damage", ["half a download", "other data"])
def test_a_damaged_cache_is_refused_and_the_error_says_both_ways(tmp_path, damage):
    """Keras checks the cached mnist.npz against its SHA-256 and downloads it again: offline, that fails loudly."""
    cache = tmp_path / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    rng = np.random.default_rng(0)
    if damage == "other data":
        np.savez(cache, x_train=rng.integers(0, 255, (10, 28, 28), dtype=np.uint8), y_train=np.zeros(10, np.uint8),
                 x_test=rng.integers(0, 255, (5, 28, 28), dtype=np.uint8), y_test=np.zeros(5, np.uint8))  # fmt: skip
    else:
        cache.write_bytes(b"PK\x03\x04 half a download")
    out = load_offline(tmp_path)
    assert "loaded" not in out and "FileNotFoundError" in out and "could not download MNIST" in out
    assert "Two ways to get MNIST" in out


# --- bad input, refused before training -------------------------------------------------------------


def test_float_images_in_unit_range_are_not_scaled_twice():
    splits = tiny_splits()
    x, y = splits["train"]
    as_uint8 = next(iter(data.make_dataset(x, y, batch_size=32)))[0].numpy()
    as_float = next(iter(data.make_dataset(x.astype("float32") / 255, y, batch_size=32)))[0].numpy()
    np.testing.assert_allclose(as_float, as_uint8, atol=1e-6)
    assert as_float.max() == pytest.approx(1.0)


def test_float_images_outside_unit_range_are_refused():
    x, y = tiny_splits()["train"]
    with pytest.raises(ValueError, match="must lie in \\[0, 1\\].*look like 0-255 values"):
        data.make_dataset(x.astype("float32"), y)
    with pytest.raises(ValueError, match="uint8 \\(0-255\\) or floats"):
        data.make_dataset(x.astype("int64"), y)
    with pytest.raises(ValueError, match="labels must be integers 0-9"):
        data.make_dataset(x, y.astype("int64") + 10)


@pytest.mark.parametrize("empty", ["train", "val"])
def test_an_empty_set_is_refused_before_training(tmp_path, empty):
    splits = tiny_splits()
    splits[empty] = (splits[empty][0][:0], splits[empty][1][:0])
    with pytest.raises(ValueError, match=f"the {empty} images are empty"):
        fit_mnist(tiny_model(), splits, tmp_path, epochs=1, batch_size=64, augment=False, verbose=0)
    assert not any(tmp_path.iterdir())


def test_a_width_that_cannot_fit_is_refused_before_allocating():
    started = time.perf_counter()
    with pytest.raises(ValueError, match=r"at width ×100 .* 2,095.7 GB of float32 weights alone.*at most about ×"):
        models.build_model(blog_vgg(), width=100)
    assert time.perf_counter() - started < 5  # the table is arithmetic; nothing was allocated
    with pytest.raises(ValueError, match="GB of memory available"):
        models.check_fits_in_memory(models.layer_table(blog_vgg()), 1.0, available=10**8)
    models.check_fits_in_memory(models.layer_table(blog_vgg()), 1.0, available=10**9)  # 210 MB fits in 1 GB


READ_ONLY = """
import os, sys
sys.path.insert(0, {tests!r})
from conftest import tiny_model, tiny_splits
from notebook04 import fit_mnist
try:
    fit_mnist(tiny_model(), tiny_splits(), sys.argv[1], epochs=1, batch_size=64, augment=False, verbose=0)
except PermissionError as err:
    print("PermissionError:", err)
"""


def read_only_command(folder: Path) -> list[str] | None:
    """A command running READ_ONLY on ``folder`` made read-only: by permissions for a normal user; as root
    (who ignores permissions), on a read-only bind mount of it in a private mount namespace."""
    command = [sys.executable, "-c", READ_ONLY.format(tests=str(TESTS)), str(folder)]
    if os.geteuid() != 0:
        return command
    import shlex
    import shutil

    if not shutil.which("unshare"):
        return None
    quoted = shlex.quote(str(folder))
    mount = f"mount --bind {quoted} {quoted} && mount -o remount,ro,bind {quoted}"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", mount], capture_output=True, timeout=30)
    if probe.returncode != 0:
        return None
    return ["unshare", "-m", "sh", "-c", f"{mount} && exec {shlex.join(command)}"]


def test_a_read_only_run_folder_is_refused_before_training(tmp_path):
    interrupted_run(tmp_path, after_epochs=1)  # a run with a backup
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    command = read_only_command(tmp_path)
    if command is None:
        pytest.skip("running as root without unshare/mount: no way to make a folder read-only for this process")
    folders = [p for p in [tmp_path, *tmp_path.rglob("*")] if p.is_dir()]
    for path in folders:
        path.chmod(0o555)
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=180, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
        )
    finally:
        for path in folders:
            path.chmod(0o755)
    assert "PermissionError: cannot write in" in result.stdout, result.stdout + result.stderr[-3000:]
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")} == before  # nothing trained, nothing written


# --- setup and the budget ----------------------------------------------------------------------------


@pytest.mark.parametrize("requires", ["garbage", "", "1.x"])
def test_setup_refuses_a_requirement_that_is_not_a_version(requires):
    with pytest.raises(ValueError, match="is not a version number"):
        runtime.check_version(requires)


def test_a_release_candidate_of_the_installed_version_is_satisfied():
    from packaging.version import Version

    installed = Version(runtime.__version__)
    runtime.check_version(f"{installed.major}.{installed.minor}.{installed.micro}rc1")
    with pytest.raises(ImportError, match="needs vgg_helpers >="):
        runtime.check_version(f"{installed.major}.{installed.minor + 1}.0rc1")


def test_the_gpu_budget_without_a_gpu_warns():
    with pytest.warns(UserWarning, match="TensorFlow sees no GPU"):
        assert runtime.select_budget({"VGG_BUDGET": "gpu"}, has_gpu=False).name == "gpu"


def test_the_checksum_message_points_at_something_that_exists(tiny_mnist):
    folder, _, _ = tiny_mnist
    path = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[-1] ^= 1
    path.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(ValueError, match="failed its checksum") as err:
        data.load_mnist(folder)
    assert "vgg_helpers.data.MNIST_SHA256" in str(err.value) and len(data.MNIST_SHA256) == 4


# --- the Fashion-MNIST cache, offline (notebook 08) --------------------------------------------------

OFFLINE_FASHION = OFFLINE_LOAD.replace("data.load_mnist()", "data.load_fashion_mnist()")


def load_fashion_offline(keras_home: Path) -> tuple[str, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("VGG_DATA_DIR", "VGG_FASHION_DIR")}
    env.update(KERAS_HOME=str(keras_home), TF_CPP_MIN_LOG_LEVEL="3")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", OFFLINE_FASHION], capture_output=True, text=True, env=env, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, time.monotonic() - start


def test_a_damaged_fashion_cache_is_moved_aside_and_the_error_says_both_ways(tmp_path):
    cache = tmp_path / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    (cache / "train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b half a download")
    out, _ = load_fashion_offline(tmp_path)
    moved = list(cache.glob("train-labels-idx1-ubyte.gz.damaged-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == b"\x1f\x8b half a download"
    assert f"moved to {moved[0]}" in out and "FileNotFoundError" in out and "kept, not deleted" in out
    assert "Two ways to get Fashion-MNIST" in out


def test_no_fashion_cache_and_no_network_fails_at_once_with_both_ways(tmp_path):
    out, seconds = load_fashion_offline(tmp_path)
    assert "FileNotFoundError: Fashion-MNIST is not cached" in out and "Two ways to get Fashion-MNIST" in out
    assert seconds < 120  # at once: a refused connection, not the 20 s download timeout per file


@pytest.mark.skipif(not os.environ.get("VGG_FASHION_DIR"), reason="needs the real Fashion-MNIST: VGG_FASHION_DIR is not set")
def test_a_valid_fashion_cache_loads_offline(tmp_path):
    cache = tmp_path / "datasets" / "fashion-mnist"
    cache.mkdir(parents=True)
    for path in Path(os.environ["VGG_FASHION_DIR"]).glob("*.gz"):
        (cache / path.name).write_bytes(path.read_bytes())
    out, _ = load_fashion_offline(tmp_path)
    assert "loaded (60000, 28, 28)" in out and not list(cache.glob("*.damaged-*"))
