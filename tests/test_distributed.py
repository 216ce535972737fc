"""The worker launcher of notebook 07 (vgg_helpers.distributed): what it reports when a worker fails, and
that no process it started is left behind, on every path.

The workers are tiny Python scripts (no TensorFlow), except in the last test, which runs two real
MultiWorkerMirroredStrategy workers. Everything runs on 127.0.0.1, bounded in time; a test that starts
processes kills them on every path (the launcher does, and ``no_leftovers`` checks it and cleans up if not).
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import types
from pathlib import Path

import numpy as np
import pytest
from test_commands import free_port, free_ports

from vgg_helpers import distributed

# A fake worker: writes its pid (and that of any child it starts) to OUT, then behaves as MODE says.
FAKE_WORKER = """
import json, os, socket, subprocess, sys, time

mode, out = sys.argv[1], sys.argv[2]
config = json.loads(os.environ["TF_CONFIG"])
index = config["task"]["index"]
with open(os.path.join(out, f"pid-{index}"), "w") as f:
    f.write(str(os.getpid()))
if mode == "ok":
    print(f"worker {index} of {len(config['cluster']['worker'])}: done, TF_CONFIG={os.environ['TF_CONFIG']}")
    sys.exit(0)
if mode == "die" and index == 1:
    time.sleep(0.3)
    raise ValueError("worker 1 lost its data")
if mode == "child":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.path.join(out, f"child-{index}"), "w") as f:
        f.write(str(child.pid))
    if index == 1:  # exit once worker 0 has recorded its child too, so that the test sees both on any machine
        mark, deadline = os.path.join(out, "child-0"), time.monotonic() + 60
        while time.monotonic() < deadline and not (os.path.exists(mark) and os.path.getsize(mark)):
            time.sleep(0.02)
        sys.exit(2)
if mode == "family":  # start a child, then run on with it
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.path.join(out, f"child-{index}"), "w") as f:
        f.write(str(child.pid))
if mode == "bind":  # start a server on its own port, as TensorFlow does
    host, port = config["cluster"]["worker"][index].split(":")
    server = socket.socket()
    server.bind((host, int(port)))
    server.listen()
time.sleep(600)
"""


@pytest.fixture
def fake(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(FAKE_WORKER)
    return script


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs and is still a fake worker or its child (signal 0 only asks); a zombie,
    dead but not yet reaped, counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        # reaped between os.kill and the read (a zombie waits for init, which takes its time), or no /proc at all
        return not Path("/proc/self").exists()
    # Still one of ours: a fake worker or its child. Pids are reused (pid_max can be 32,768, and TensorFlow's threads
    # use them up fast), so a recorded pid may belong to another process by now, which no_leftovers must not kill.
    return state != "Z" and (b"worker.py" in command or b"time.sleep(600)" in command)


def pids(folder: Path, prefix: str) -> list[int]:
    return [int(p.read_text()) for p in sorted(folder.glob(f"{prefix}-*")) if p.read_text().strip()]


@pytest.fixture
def no_leftovers(tmp_path):
    """After the test: every process a fake worker recorded is gone (else: kill it, and fail)."""
    yield
    deadline = time.monotonic() + 5
    recorded = pids(tmp_path, "pid") + pids(tmp_path, "child")
    while any(alive(p) for p in recorded) and time.monotonic() < deadline:
        time.sleep(0.05)  # an orphaned grandchild is reaped by init, not by us
    left = [p for p in recorded if alive(p)]
    for pid in left:
        with contextlib.suppress(ProcessLookupError):  # it may end on its own meanwhile
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running: {left}"


def test_free_ports_and_tf_config():
    ports = distributed.free_ports(3)
    assert len(set(ports)) == 3 and all(distributed.port_is_free(p) for p in ports)
    config = distributed.tf_config(ports, 2)
    assert config == {
        "cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
        "task": {"type": "worker", "index": 2},
    }
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        assert not distributed.port_is_free(held.getsockname()[1])
    with pytest.raises(ValueError, match="index"):
        distributed.tf_config(ports, 3)


def test_two_workers_that_finish(fake, tmp_path, no_leftovers):
    results = distributed.run_workers(fake, ["ok", tmp_path], workers=2, timeout=60, log_dir=tmp_path / "logs")
    assert [r.returncode for r in results] == [0, 0] and not any(r.killed for r in results)
    configs = [json.loads(r.stdout.split("TF_CONFIG=")[1]) for r in results]
    assert [c["task"]["index"] for c in configs] == [0, 1]
    assert configs[0]["cluster"] == configs[1]["cluster"]  # the same cluster, each its own index
    assert all(r.seconds > 0 for r in results)
    assert (tmp_path / "logs" / "worker-1.err").exists()


# A worker that holds MEGABYTES of memory at its peak, then exits at once: its peak is measured when it exits,
# not sampled while it runs, so a fast machine cannot finish it before it is measured.
MEMORY_WORKER = """
import sys
block = bytearray(int(sys.argv[1]) * 10**6)
block[::4096] = b"x" * len(block[::4096])  # touch every page, so that it is resident
"""


@pytest.mark.skipif(os.name != "posix", reason="the supervisor that measures the peak runs on Linux and macOS")
def test_a_workers_peak_memory_is_its_own_however_short_it_lives(tmp_path):
    script = tmp_path / "memory.py"
    script.write_text(MEMORY_WORKER)
    small, large = (distributed.run_workers(script, [mb], workers=1, timeout=60, log_dir=tmp_path)[0] for mb in (1, 200))
    # Python alone takes about 10 MB; the launcher's own memory (a test process with TensorFlow) is not counted.
    assert 1 < small.peak_mb < 100 and 200 < large.peak_mb < small.peak_mb + 250
    assert small.peak_mb + 150 < large.peak_mb


def test_a_worker_that_exits_early_is_named_and_the_others_are_killed(fake, tmp_path, no_leftovers):
    start = time.monotonic()
    with pytest.raises(distributed.WorkerFailed) as failure:
        distributed.run_workers(fake, ["die", tmp_path], workers=2, timeout=60, log_dir=tmp_path)
    assert time.monotonic() - start < 30  # at once, not at the timeout
    message = str(failure.value)
    assert "worker 1 of 2 exited with code 1" in message
    assert "worker 0 killed" in message and "none is left running" in message
    assert "ValueError: worker 1 lost its data" in message  # the end of its stderr
    first, second = failure.value.results
    assert first.killed and first.returncode == -signal.SIGKILL
    assert not second.killed and second.returncode == 1
    assert not any(alive(r.pid) for r in failure.value.results)


def test_what_a_worker_started_is_killed_with_it(fake, tmp_path, no_leftovers):
    with pytest.raises(distributed.WorkerFailed, match="worker 1 of 2 exited with code 2"):
        distributed.run_workers(fake, ["child", tmp_path], workers=2, timeout=60, log_dir=tmp_path)
    deadline = time.monotonic() + 5
    children = pids(tmp_path, "child")
    while any(alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(children) == 2 and not any(alive(p) for p in children)  # of the killed worker and of the one that exited


def test_the_timeout_kills_every_worker(fake, tmp_path, no_leftovers):
    start = time.monotonic()
    with pytest.raises(distributed.WorkerFailed, match="did not finish within the timeout of 1.5 s") as failure:
        distributed.run_workers(fake, ["hang", tmp_path], workers=2, timeout=1.5, log_dir=tmp_path)
    assert time.monotonic() - start < 15
    assert all(r.killed for r in failure.value.results)
    assert "worker 0, 1 still running" in str(failure.value)
    assert not any(alive(r.pid) for r in failure.value.results)


def test_a_port_already_bound_is_refused_before_anything_starts(fake, tmp_path, no_leftovers):
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        taken = other_program.getsockname()[1]
        free = free_port()
        with pytest.raises(distributed.PortInUse, match=f"port {taken} on 127.0.0.1 is already in use"):
            distributed.run_workers(fake, ["ok", tmp_path], workers=2, ports=[free, taken], timeout=30)
    assert not pids(tmp_path, "pid"), "no worker should have been started"


def test_a_port_taken_after_it_was_chosen_is_explained(fake, tmp_path, monkeypatch, no_leftovers):
    monkeypatch.setattr(distributed, "port_is_free", lambda port, host="127.0.0.1": True)  # taken just after the check
    with socket.socket() as other_program:
        other_program.bind(("127.0.0.1", 0))
        other_program.listen()
        taken = other_program.getsockname()[1]
        free = free_port()
        with pytest.raises(distributed.WorkerFailed) as failure:
            distributed.run_workers(fake, ["bind", tmp_path], workers=2, ports=[free, taken], timeout=60, log_dir=tmp_path)
    message = str(failure.value)
    assert "worker 1 of 2 exited with code 1" in message
    assert f"port {taken} on 127.0.0.1 was taken by another program" in message and "Run the cell again" in message
    assert not any(alive(r.pid) for r in failure.value.results)


def test_an_interrupt_kills_the_workers(fake, tmp_path, monkeypatch, no_leftovers):
    pressed = []

    def interrupt(seconds):  # the notebook's stop button, pressed once both workers run
        if pressed:
            return time.sleep(seconds)  # pressed once: the cleanup's own waits are real waits
        deadline = time.monotonic() + 60
        while len(pids(tmp_path, "pid")) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        pressed.append(True)
        raise KeyboardInterrupt

    monkeypatch.setattr(distributed, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=interrupt))
    with pytest.raises(KeyboardInterrupt):
        distributed.run_workers(fake, ["hang", tmp_path], workers=2, timeout=60, log_dir=tmp_path)
    assert len(pids(tmp_path, "pid")) == 2
    assert not any(alive(p) for p in pids(tmp_path, "pid"))
    assert not distributed._RUNNING


# A process standing in for a notebook kernel: it loads the launcher (without the rest of vgg_helpers, which
# would import TensorFlow) and runs two workers that each start a child and run on, until it is ended.
FAKE_KERNEL = """
import importlib.util, os, signal, sys, threading, time
# An interrupt raises KeyboardInterrupt, as in a Jupyter kernel, even where this process inherited SIGINT ignored
# (a CI job started in the background of a non-interactive shell hands that on to everything it runs).
signal.signal(signal.SIGINT, signal.default_int_handler)
spec = importlib.util.spec_from_file_location("launcher", sys.argv[1])
launcher = sys.modules["launcher"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launcher)
worker, out, how = sys.argv[2], sys.argv[3], sys.argv[4]
if how == "exit":  # the process leaves without any cleanup (no finally, no atexit) when the test says "go"
    def leave():
        while not os.path.exists(os.path.join(out, "go")):
            time.sleep(0.05)
        os._exit(0)
    threading.Thread(target=leave, daemon=True).start()
launcher.run_workers(worker, ["family", out], workers=2, timeout=600, log_dir=os.path.join(out, "logs"))
"""


@pytest.mark.skipif(os.name != "posix", reason="the workers' supervisor runs on Linux and macOS")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM", "SIGINT", "exit"])
def test_workers_end_with_the_process_that_started_them(fake, tmp_path, how, no_leftovers):
    """However the kernel ends (SIGKILL: Jupyter's restart of a busy kernel; SIGTERM; an interrupt; an exit that
    runs no cleanup), its workers and what they started end within seconds."""
    kernel = subprocess.Popen(
        [sys.executable, "-c", FAKE_KERNEL, distributed.__file__, str(fake), str(tmp_path), how],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120  # two Python workers starting, on a slow machine
        while len(pids(tmp_path, "child")) < 2 and kernel.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        family = pids(tmp_path, "pid") + pids(tmp_path, "child")
        assert len(family) == 4 and all(alive(p) for p in family), "the workers and their children should be running"
        if how == "exit":
            (tmp_path / "go").write_text("")
        else:
            kernel.send_signal(getattr(signal, how))
        kernel.wait(timeout=60)
        deadline = time.monotonic() + 10
        while any(alive(p) for p in family) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in family if alive(p)], f"left running after the kernel ended ({how})"
    finally:
        if kernel.poll() is None:
            kernel.kill()
            kernel.wait()


def test_bad_arguments(fake):
    with pytest.raises(FileNotFoundError, match="no worker script"):
        distributed.run_workers(fake.parent / "missing.py")
    with pytest.raises(ValueError, match="different ports"):
        distributed.run_workers(fake, workers=2, ports=[5000, 5000])
    with pytest.raises(ValueError, match="timeout"):
        distributed.run_workers(fake, timeout=0)


# Two real workers: MultiWorkerMirroredStrategy, a custom step, synchronized gradients (as in notebook 07).
TF_WORKER = """
import json, os, sys, time
import numpy as np
import tensorflow as tf
import keras

strategy = tf.distribute.MultiWorkerMirroredStrategy()
out = sys.argv[1]
config = json.loads(os.environ["TF_CONFIG"])
index, workers = config["task"]["index"], len(config["cluster"]["worker"])
rng = np.random.default_rng(0)
x, y = rng.normal(size=(64, 8)).astype("float32"), rng.integers(0, 3, 64).astype("int32")
options = tf.data.Options()
options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16).with_options(options)
batches = iter(strategy.experimental_distribute_dataset(dataset))
with strategy.scope():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    optimizer = keras.optimizers.SGD(0.1)

def replica_step(features, labels):
    with tf.GradientTape() as tape:
        per_example = keras.losses.sparse_categorical_crossentropy(labels, model(features), from_logits=True)
        loss = tf.nn.compute_average_loss(per_example, global_batch_size=16)
    optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
    return loss

@tf.function
def step(batch):
    return strategy.reduce("SUM", strategy.run(replica_step, args=batch), axis=None)

losses = [float(step(next(batches))) for _ in range(4)]
weights = np.concatenate([np.ravel(v.numpy()) for v in model.weights])
np.savez(os.path.join(out, f"worker-{index}.npz"), losses=losses, weights=weights)
while not all(os.path.exists(os.path.join(out, f"worker-{i}.npz")) for i in range(workers)):
    time.sleep(0.05)
print(f"worker {index}: losses {losses}", flush=True)
os._exit(0)
"""


def test_two_tensorflow_workers_stay_identical_and_follow_one_process(tmp_path):
    script = tmp_path / "tf_worker.py"
    script.write_text(textwrap.dedent(TF_WORKER))
    env = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    saved = {}
    for workers in (2, 1):
        out = tmp_path / str(workers)
        out.mkdir()
        results = distributed.run_workers(
            script, [out], workers=workers, ports=free_ports(workers), timeout=120, env=env, log_dir=out
        )
        assert [r.returncode for r in results] == [0] * workers
        for r in results:
            with np.load(out / f"worker-{r.index}.npz") as data:
                saved[workers, r.index] = dict(data)
    assert np.array_equal(saved[2, 0]["weights"], saved[2, 1]["weights"])  # bit for bit
    np.testing.assert_allclose(saved[2, 0]["losses"], saved[1, 0]["losses"], rtol=1e-5)


# Keras' own fit under MultiWorkerMirroredStrategy (notebook 07, section 3 says it fails, and why it writes the step).
FIT_WORKER = """
import json, os, sys, time
import numpy as np
import tensorflow as tf
import keras

strategy = tf.distribute.MultiWorkerMirroredStrategy()
with strategy.scope():
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
x, y = np.random.default_rng(0).normal(size=(64, 8)).astype("float32"), np.zeros(64, "int32")
try:
    model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), epochs=1, verbose=0)
    print("fit ran", flush=True)
except ValueError as err:
    print("ValueError:", str(err).splitlines()[0][:60], flush=True)
out, index = sys.argv[1], json.loads(os.environ["TF_CONFIG"])["task"]["index"]
open(os.path.join(out, f"done-{index}"), "w").close()
while not all(os.path.exists(os.path.join(out, f"done-{i}")) for i in range(2)):  # no worker leaves the other waiting
    time.sleep(0.05)
os._exit(0)
"""


def test_keras_fit_does_not_run_under_multi_worker_mirrored_strategy(tmp_path):
    """What notebook 07 says of TensorFlow 2.21 and Keras 3.15 (keras-team/keras#20585). When this fails, fit has
    started to work under the strategy: update section 3 of notebook 07."""
    script = tmp_path / "fit_worker.py"
    script.write_text(FIT_WORKER)
    env = {"CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = distributed.run_workers(script, [tmp_path], workers=2, ports=free_ports(2), timeout=120, env=env, log_dir=tmp_path)
    assert all("ValueError: Attempt to convert a value (PerReplica" in r.stdout for r in results), [r.stdout for r in results]


# Notebook 07, section 2: BackupAndRestore under MirroredStrategy, as notebook 04 uses it without a strategy.
RESUME_UNDER_STRATEGY = """
import os, sys
os.environ["VGG_LOGICAL_CPUS"] = "2"
import vgg_helpers
import keras
import numpy as np
import tensorflow as tf

strategy = tf.distribute.MirroredStrategy([device.name for device in tf.config.list_logical_devices("CPU")])
x, y = np.random.default_rng(0).normal(size=(64, 8)).astype("float32"), np.zeros(64, "int32")


def fit(*callbacks):
    with strategy.scope():
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
        model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    backup = keras.callbacks.BackupAndRestore(sys.argv[1])
    model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[backup, *callbacks])


class Crash(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("the kernel dies after epoch 2")


class Epochs(keras.callbacks.Callback):
    seen = []

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch + 1)


try:
    fit(Crash())
except RuntimeError:
    pass
fit(Epochs())
print("replicas", strategy.num_replicas_in_sync, "epochs after the rerun", Epochs.seen)
"""


def test_backup_and_restore_resumes_under_mirrored_strategy(tmp_path):
    """A rerun of notebook 07's fit cell after a crash resumes after the last finished epoch, as without a strategy."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", RESUME_UNDER_STRATEGY, str(tmp_path / "backup")], capture_output=True, text=True, env=env,
        timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "replicas 2 epochs after the rerun [3, 4]" in result.stdout
