"""Run folders: where a training run keeps its backup, its best model and its record, so that nothing is lost.

A *root* such as ``runs/04`` holds numbered runs ``1``, ``2``, …; each is one call of ``model.fit``
with one configuration, resumable after a crash::

    run = vh.runs.start("runs/04", config)       # the unfinished run of this config, or a new one
    callbacks = [
        keras.callbacks.BackupAndRestore(run.backup_dir, double_checkpoint=True),
        keras.callbacks.ModelCheckpoint(run.checkpoint_path, monitor="val_accuracy",
                                        save_best_only=True, initial_value_threshold=run.best_score),
        run.recorder(),
    ]
    with run:                                    # holds the run's lock; marks it finished on success
        history = model.fit(..., callbacks=callbacks)
    best = run.load_best()                       # the best model, its checksum verified

What :func:`start` guarantees:

- a finished run is never written to again: a rerun starts the next number and says so;
- an unfinished run of the same configuration is resumed, after its backup's checksums are checked
  (a damaged last backup falls back to the copy before it, saying so; if both are damaged it stops
  and names the folder to delete);
- a lock file with the holder's process id stops a second process at once (:class:`RunInUse`); a
  lock left by a process that no longer runs is taken over, with a note;
- ``ModelCheckpoint`` writes every improvement to a new file (``best-epoch05.keras``), never over
  the previous best; :meth:`Run.recorder` then records it in ``best.json`` (file, score, epoch,
  SHA-256) with an atomic rename, and only if it beats the recorded score. A crash at any moment
  leaves a ``best.json`` that matches its model.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import hashlib
import json
import math
import os
import re
import shutil
import socket
import sys
import tempfile
from pathlib import Path

import keras

#: ModelCheckpoint writes each improvement here (Keras fills in the epoch).
CHECKPOINT_NAME = "best-epoch{epoch:02d}.keras"
_CHECKPOINT_RE = re.compile(r"^best-epoch(\d+)\.keras$")
#: BackupAndRestore's files (Keras 3), checked against recorded checksums before a resume.
_BACKUP_FILES = ("latest.weights.h5", "training_metadata.json")
_CHECKSUMS = "checksums.json"


class RunInUse(RuntimeError):
    """Another live process holds the run folder's lock."""


def runs_root(budget, name: str) -> Path:
    """Where a notebook keeps its runs: ``runs/<name>`` in the cpu and gpu budgets; in the fast (test)
    budget a temporary folder, so that tests never write into a learner's runs."""
    if budget.name == "fast":
        return Path(tempfile.gettempdir()) / f"vgg-fast-runs-{os.getpid()}" / name
    return Path("runs") / name


# --- small file helpers -----------------------------------------------------------------------------


def sha256_file(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json_atomically(path: Path, value) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename: a reader sees the
    old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Path, what: str, fix: str):
    """Read a JSON file, or raise ``ValueError`` naming the file and ``fix`` if it is damaged."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} ({what}) is damaged: {err}. {fix}") from err


# --- the lock ---------------------------------------------------------------------------------------


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` in clock ticks since boot (Linux), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22 of stat, counted after the command name


def _holder_is_alive(holder: dict) -> bool:
    if holder.get("host") != socket.gethostname():
        return True  # another machine (a shared folder): it cannot be checked from here
    pid = int(holder.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    start = holder.get("start")
    return start is None or _process_start(pid) in (None, start)


def _this_process() -> dict:
    return {
        "pid": os.getpid(),
        "start": _process_start(os.getpid()),
        "host": socket.gethostname(),
        "since": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:200],
    }


_HELD: set = set()  # locks this process holds, released at exit


@atexit.register
def _release_all() -> None:
    for lock in list(_HELD):
        lock.release()


class _Lock:
    """A lock file holding the owner's process id; a lock whose process has gone is taken over."""

    def __init__(self, path: Path, what: str):
        self.path, self.what = Path(path), what
        self.held = False
        self.note = ""

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return None  # half written by a process that died, or being written right now

    def acquire(self) -> _Lock:
        for attempt in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is None and attempt == 0:
                    import time

                    time.sleep(0.2)  # maybe being written this instant: look again
                    continue
                holder = holder or {}
                if holder.get("pid") == os.getpid() and holder.get("start") == _process_start(os.getpid()):
                    self.held = True  # ours, from an earlier call in this process that did not release it
                    _HELD.add(self)
                    return self
                if holder and _holder_is_alive(holder):
                    raise RunInUse(
                        f"{self.what} is in use by another process: pid {holder.get('pid')} "
                        f"(since {holder.get('since', '?')}, running {holder.get('command', '?')!r}). "
                        "Two processes writing one run would overwrite each other's backup and best model. "
                        "Stop the other one (in Jupyter: its notebook's Kernel → Shut Down Kernel) or wait for it "
                        f"to finish, then run this again. If no such process exists any more, delete {self.path}."
                    ) from None
                self.note = (
                    f"taking over {self.what}: its lock was left by process {holder.get('pid', '?')}, which no longer runs"
                    if holder
                    else f"taking over {self.what}: its lock file was empty or damaged"
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(_this_process(), f)
            self.held = True
            _HELD.add(self)
            return self
        raise RunInUse(f"could not take the lock {self.path}: other processes keep taking it; try again.")

    def release(self) -> None:
        if self.held:
            holder = self._holder() or {}
            if holder.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
            self.held = False
            _HELD.discard(self)

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


# --- a run ------------------------------------------------------------------------------------------


def _better(monitor: str):
    """How ``monitor`` improves, as Keras' ``mode="auto"`` decides: accuracies up, losses down."""
    if "acc" in monitor or monitor.startswith("fmeasure"):
        return lambda new, old: old is None or new > old
    return lambda new, old: old is None or new < old


class Run:
    """One numbered run folder: see the module's docstring. Made by :func:`start`."""

    def __init__(self, path: Path, config: dict, resumed: bool, lock: _Lock | None = None):
        self.path = Path(path)
        self.config = config
        self.resumed = resumed
        self._lock = lock
        self._model = None

    # --- paths for Keras' callbacks

    @property
    def backup_dir(self) -> str:
        return str(self.path / "backup")

    @property
    def checkpoint_path(self) -> str:
        return str(self.path / CHECKPOINT_NAME)

    @property
    def best_record(self) -> Path:
        return self.path / "best.json"

    @property
    def epochs_record(self) -> Path:
        return self.path / "epochs.json"

    # --- what the run holds

    def best(self) -> dict | None:
        """The record of the best model so far (``file``, ``score``, ``monitor``, ``epoch``, ``sha256``), or None."""
        if not self.best_record.exists():
            return None
        return read_json(
            self.best_record,
            "the record of the best model",
            f"Its model files are still in {self.path}; delete {self.best_record} to let the run record a new best.",
        )

    @property
    def best_score(self) -> float | None:
        """The recorded best score: pass it to ``ModelCheckpoint(initial_value_threshold=...)`` so that a
        resumed run saves only models that beat it."""
        record = self.best()
        return None if record is None else float(record["score"])

    def epoch_logs(self) -> dict[int, dict]:
        """Every finished epoch's logs (loss, accuracy, validation metrics), across interruptions."""
        if not self.epochs_record.exists():
            return {}
        logs = read_json(
            self.epochs_record, "the run's epoch logs", f"Delete {self.epochs_record}: it is rebuilt as training goes on."
        )
        return {int(k): v for k, v in logs.items()}

    def history(self) -> dict[str, list[float]]:
        """The epoch logs as a Keras-style ``History.history`` dict, every epoch of the run included."""
        history: dict[str, list[float]] = {}
        for _, logs in sorted(self.epoch_logs().items()):
            for key, value in logs.items():
                history.setdefault(key, []).append(value)
        return history

    def finished(self) -> dict | None:
        path = self.path / "finished.json"
        if not path.exists():
            return None
        return read_json(path, "the record of a finished run", f"Delete {path} to treat the run as unfinished.")

    def recorder(self, monitor: str = "val_accuracy") -> keras.callbacks.Callback:
        """The callback that records each epoch's logs, each new best model and the backup's checksums.

        ``monitor`` must be the checkpoint's. It works anywhere in the callbacks list."""
        return _Recorder(self, monitor)

    def load_best(self, **kwargs) -> keras.Model:
        """Load the best model after checking it against the SHA-256 recorded with its score."""
        record = self.best()
        if record is None:
            raise FileNotFoundError(f"{self.path} has no best model yet (no best.json): train first.")
        path = self.path / record["file"]
        if not path.exists() or sha256_file(path) != record["sha256"]:
            raise ValueError(
                f"{path} does not match the checksum recorded in {self.best_record}: the file is missing or damaged. "
                "Train again (a new run starts), or delete this run folder."
            )
        return keras.models.load_model(path, **kwargs)

    # --- ending

    def finish(self, stopped_early: bool = False) -> None:
        """Mark the run finished (it is never written again; a rerun starts a new one) and release its lock."""
        self._commit_best()
        write_json_atomically(
            self.path / "finished.json",
            {"status": "stopped early" if stopped_early else "complete", "epochs": len(self.epoch_logs()), "best": self.best()},
        )
        self.close()

    def close(self) -> None:
        """Release the run's lock, leaving it unfinished: the next :func:`start` of its config resumes it."""
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.finish(stopped_early=bool(getattr(self._model, "stop_training", False)))
        else:
            self.close()
        return False

    def __repr__(self):
        return f"Run({str(self.path)!r}, resumed={self.resumed})"

    # --- the backup's checksums

    def _backup_paths(self, suffix: str = "") -> list[Path]:
        return [Path(self.backup_dir) / f"{name}{suffix}" for name in _BACKUP_FILES]

    def _backup_epoch(self) -> int | None:
        try:
            return int(json.loads((Path(self.backup_dir) / "training_metadata.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _record_backup(self) -> None:
        """Record the SHA-256 of BackupAndRestore's newest files, keeping the previous record for its ``.bkp`` copies."""
        epoch = self._backup_epoch()
        checksums = Path(self.backup_dir) / _CHECKSUMS
        try:
            record = json.loads(checksums.read_text())
        except (OSError, ValueError):
            record = {}
        if epoch is None or (record.get("current") or {}).get("epoch") == epoch:
            return
        files = self._backup_paths()
        if not all(p.exists() for p in files):
            return
        current = {"epoch": epoch, **{p.name: sha256_file(p) for p in files}}
        write_json_atomically(checksums, {"current": current, "previous": record.get("current")})

    def _verify_backup(self) -> str:
        """Check the backup before BackupAndRestore loads it; return what was found (for the start message)."""
        backup = Path(self.backup_dir)
        if not backup.exists():
            return "it stopped before its first epoch ended, so it starts again from the beginning"
        fix = (
            f"Delete {backup} to restart this run from its first epoch (its best model so far stays in {self.path}), "
            "or change the configuration to start a new run."
        )
        checksums = backup / _CHECKSUMS
        if not checksums.exists():
            raise ValueError(f"the backup in {backup} has no recorded checksums, so it cannot be trusted. {fix}")
        record = read_json(checksums, "the backup's checksums", fix)

        def matches(paths, entry):
            return bool(entry) and all(p.exists() and sha256_file(p) == entry.get(p.name.removesuffix(".bkp")) for p in paths)

        latest, previous = self._backup_paths(), self._backup_paths(".bkp")
        if matches(latest, record.get("current")):
            return f"it continues after epoch {record['current']['epoch']} (backup checksums verified)"
        for entry in (record.get("current"), record.get("previous")):
            if matches(previous, entry):
                for src, dst in zip(previous, latest, strict=True):
                    shutil.copyfile(src, dst)
                write_json_atomically(checksums, {"current": entry, "previous": None})
                return (
                    "its last backup failed its checksum (damaged, or cut short by a crash), so it continues from the "
                    f"copy before it, after epoch {entry['epoch']}"
                )
        raise ValueError(f"the backup in {backup} is damaged: neither copy matches its recorded checksums. {fix}")

    # --- best models

    def _commit_best(self, monitor: str | None = None) -> list[str]:
        """Record the best of the checkpoint files written so far, and delete those that lost to it.

        A file whose epoch has a recorded score is compared with the best; a half-written file (a crash
        during the save) is deleted; a complete file whose score was never recorded is left alone and
        named in the returned notes."""
        record = self.best()
        monitor = monitor or (record or {}).get("monitor", "val_accuracy")
        better = _better(monitor)
        logs = self.epoch_logs()
        notes = []
        for path in sorted(self.path.glob("best-epoch*.keras")):
            match = _CHECKPOINT_RE.match(path.name)
            if not match or (record is not None and path.name == record["file"]):
                continue
            epoch = int(match.group(1))
            if not _complete_zip(path):
                path.unlink()  # cut short by a crash while saving: not a model
                continue
            score = (logs.get(epoch) or {}).get(monitor)
            if score is None:
                notes.append(f"{path.name} has no recorded score and is left as it is")
                continue
            score = float(score)
            if math.isfinite(score) and better(score, None if record is None else record["score"]):
                loser = None if record is None else self.path / record["file"]
                record = {"file": path.name, "score": score, "monitor": monitor, "epoch": epoch, "sha256": sha256_file(path)}
                write_json_atomically(self.best_record, record)
                if loser is not None:
                    loser.unlink(missing_ok=True)
            else:
                path.unlink()  # not better than the recorded best
        return notes


def _complete_zip(path: Path) -> bool:
    """Whether a ``.keras`` file (a zip archive) is whole: every member present and its CRC right."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except (OSError, zipfile.BadZipFile, EOFError):
        return False


class _Recorder(keras.callbacks.Callback):
    """Records each epoch's logs, new best models and the backup's checksums. It works wherever it sits
    in the callbacks list: what it misses at the end of one epoch it finds at the start of the next.
    After each epoch it also returns free C-heap memory to the system (``runtime._malloc_trim``;
    docs/benchmarks.md, "Memory")."""

    def __init__(self, run: Run, monitor: str):
        super().__init__()
        self.run, self.monitor = run, monitor

    def set_model(self, model):
        super().set_model(model)
        self.run._model = model

    def on_epoch_begin(self, epoch, logs=None):
        self.run._commit_best(self.monitor)
        self.run._record_backup()

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        all_logs = self.run.epoch_logs()
        all_logs[epoch + 1] = logs  # checkpoint files count epochs from 1
        write_json_atomically(self.run.epochs_record, {str(k): v for k, v in sorted(all_logs.items())})
        self.run._commit_best(self.monitor)
        self.run._record_backup()
        from vgg_helpers import runtime

        runtime._malloc_trim()

    def on_train_end(self, logs=None):
        self.run._commit_best(self.monitor)


# --- starting a run ---------------------------------------------------------------------------------


def _check_writable(folder: Path) -> None:
    probe = folder / f".write-test-{os.getpid()}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise PermissionError(
            f"cannot write in {folder} ({err.strerror}): training would fail when it saves its first backup. "
            f"Make the folder writable (chmod u+w {folder}) or choose another folder for the runs."
        ) from err


def _numbered(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))


def start(root, config: dict, verbose: bool = True) -> Run:
    """Open the run of ``config`` under ``root``: resume its unfinished run, or begin the next numbered one.

    ``config`` (JSON-serialisable) says what makes two runs the same: a run with another configuration
    is never resumed. Prints one line saying which run it is and why. Raises :class:`RunInUse` if another
    live process holds the run, ``PermissionError`` if ``root`` is not writable, ``ValueError`` if the
    run's backup or records are damaged (the message names the file and what to delete).
    """
    root = Path(root)
    config = json.loads(json.dumps(config))  # what config.json will hold: tuples become lists
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise PermissionError(f"cannot create the run folder {root} ({err.strerror}): choose a folder you can write to.") from err
    _check_writable(root)
    notes = []
    with _Lock(root / ".choosing.lock", f"the run folder {root}") as choosing:
        finished, others = [], []
        for path in reversed(_numbered(root)):
            run_fix = f"Delete (or move away) {path} if you do not need it."
            if (path / "finished.json").exists():
                finished.append(path)
                continue
            config_file = path / "config.json"
            if not config_file.exists():
                continue  # a folder whose creation was interrupted: nothing to resume
            if read_json(config_file, "this run's configuration", run_fix) != config:
                others.append(path)
                continue
            lock = _Lock(path / "lock", f"the run {path}").acquire()
            try:
                _check_writable(path)
                run = Run(path, config, resumed=True, lock=lock)
                notes.append(f"resuming the unfinished run {path}: {run._verify_backup()}")
                notes += run._commit_best()  # a best model saved just before a crash, not yet recorded
            except BaseException:
                lock.release()
                raise
            break
        else:
            number = 1 + max((int(p.name) for p in _numbered(root)), default=0)
            path = root / str(number)
            path.mkdir()
            lock = _Lock(path / "lock", f"the run {path}").acquire()
            write_json_atomically(path / "config.json", config)
            run = Run(path, config, resumed=False, lock=lock)
            why = ""
            if finished:
                best = Run(finished[0], {}, resumed=False).best()
                why = f" ({finished[0]} is finished" + (
                    f": best {best['monitor']} {best['score']:.4g} at epoch {best['epoch']}, kept)" if best else ", kept)"
                )
            notes.append(f"new run {path}{why}")
            if others:
                notes.append(f"unfinished runs of other configurations, kept as they are: {', '.join(p.name for p in others)}")
        notes += [n for n in (choosing.note, lock.note) if n]
    if run.resumed and run.best() is not None:
        best = run.best()
        notes.append(f"best {best['monitor']} so far {best['score']:.4g} (epoch {best['epoch']})")
    if verbose:
        print("; ".join(notes) + ".")
    return run
