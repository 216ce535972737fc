"""Start a group of worker processes on this machine, each with its own ``TF_CONFIG``, and stop them all.

Plumbing for notebook 07's multi-worker part: the worker script (its strategy, model and training step)
is the notebook's; this module only finds free ports, starts the workers, watches them, and makes sure
none is left running::

    results = run_workers("worker.py", args=["runs/07/two", "8"], workers=2, timeout=120)
    results[0].stdout                      # what worker 0 printed

What :func:`run_workers` guarantees:

- every worker gets ``TF_CONFIG`` naming all workers as ``127.0.0.1:<port>`` and its own index; the
  ports are chosen free at run time (or passed in, and refused with :class:`PortInUse` if taken);
- it returns only when every worker has exited with code 0;
- if a worker exits with another code, dies from a signal, or the group runs past ``timeout``, it kills
  every worker still running (its whole process group) and reaps it, and raises :class:`WorkerFailed`
  naming the worker, its exit code and the end of its stderr; the same cleanup runs on any other exception
  in the caller's process, a ``KeyboardInterrupt`` (the notebook's stop button) included;
- nothing it started outlives it: an ``atexit`` hook kills what is left if the kernel exits, and on Linux and
  macOS each worker ends within about a second of the process that started it, however that process ends
  (SIGKILL, as Jupyter ends a busy kernel on restart, included).

How the last guarantee works: each worker runs under a small supervisor, :data:`_SUPERVISOR`, a Python
process that leads the worker's own process group. It starts the worker script as its child, holds the
read end of a pipe whose only write end stays in the launching process, and kills its whole group (the
worker and whatever the worker started) as soon as that pipe reports end-of-file: the operating system
closes the write end when the launching process dies, whatever killed it. The supervisor also measures
the worker's peak memory when it exits (``getrusage`` of its child) and exits with the worker's status.

Each worker's stdout and stderr go to files in ``log_dir`` (``worker-0.out``, ``worker-0.err``, ...):
TensorFlow writes its start-up log to stderr, and a pipe that nobody reads could fill up and block it.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: What every worker's address starts with: all workers run on this machine.
LOCALHOST = "127.0.0.1"
#: Lines of a failed worker's stderr that a :class:`WorkerFailed` message quotes.
TAIL_LINES = 12
#: The first line of a Python exception in a worker's stderr ("ValueError: ...").
_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b(:|$)")
#: What a worker's stderr says when its port was taken (Python's OSError and gRPC's wording).
_PORT_TAKEN = ("Address already in use", "Failed to add port", "Could not start gRPC server", "address in use")


class WorkerFailed(RuntimeError):
    """A worker exited with an error, died, or the group ran past its timeout. ``results`` has every worker."""

    def __init__(self, message: str, results: list[WorkerResult]):
        super().__init__(message)
        self.results = results


class PortInUse(WorkerFailed):
    """A port given for a worker is already taken by another program; no worker was started."""


@dataclasses.dataclass
class WorkerResult:
    """How one worker ended. ``returncode`` is negative when a signal ended it (-9: killed)."""

    index: int
    pid: int
    port: int
    returncode: int | None = None  #: None while it runs
    seconds: float = float("nan")  #: from its start to its exit
    #: its peak resident memory in MB (10⁶ bytes), measured by its supervisor when it exited (nan if it was killed)
    peak_mb: float = float("nan")
    killed: bool = False  #: stopped by the launcher, after another worker failed or the timeout
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    report_path: Path | None = None  #: where its supervisor writes its peak memory when it exits
    _started: float = dataclasses.field(default=0.0, repr=False)

    @property
    def stdout(self) -> str:
        return _read(self.stdout_path)

    @property
    def stderr(self) -> str:
        return _read(self.stderr_path)

    def stderr_tail(self, lines: int = TAIL_LINES) -> str:
        """The last ``lines`` non-empty lines of its stderr."""
        kept = [line for line in self.stderr.splitlines() if line.strip()]
        return "\n".join(kept[-lines:])


def _read(path: Path | None) -> str:
    if path is None:
        return ""
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


# --- ports and TF_CONFIG ----------------------------------------------------------------------------


def port_is_free(port: int, host: str = LOCALHOST) -> bool:
    """Whether a server could bind ``host:port`` now (a test bind, released at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int, host: str = LOCALHOST) -> list[int]:
    """``count`` different ports that are free now, chosen by the operating system.

    All are held open until every one is chosen, so they differ; they are released before returning,
    so another program could still take one before a worker binds it (:func:`run_workers` says so if it happens).
    """
    if count < 1:
        raise ValueError(f"count must be at least 1, got {count}.")
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind((host, 0))
            ports.append(sock.getsockname()[1])
    return ports


def tf_config(ports: list[int], index: int, host: str = LOCALHOST) -> dict:
    """The ``TF_CONFIG`` of worker ``index`` in a cluster of one worker per port: the same cluster for all,
    its own task index."""
    if not 0 <= index < len(ports):
        raise ValueError(f"index must be in [0, {len(ports)}), got {index}.")
    return {"cluster": {"worker": [f"{host}:{port}" for port in ports]}, "task": {"type": "worker", "index": index}}


# --- the processes ------------------------------------------------------------------------------------

_RUNNING: dict[int, subprocess.Popen] = {}  # pid -> worker not yet reaped, for the atexit hook

#: The supervisor each worker runs under (POSIX): ``python -c _SUPERVISOR FD REPORT SCRIPT ARGS...``.
#: It leads the worker's process group (the launcher starts it in a new session), runs the script as its
#: child, and kills the group once the pipe FD reads end-of-file: the launcher holds the only write end, so
#: that happens when the launcher exits or dies, however. When the script exits, it writes the script's
#: peak memory to the file REPORT (``ru_maxrss`` of a child forked from this small process: Linux carries a
#: high-water mark across ``exec``, so a worker forked straight from a notebook kernel would report the
#: kernel's) and exits with the script's status. It imports nothing that starts threads before it forks.
_SUPERVISOR = r"""
import json, os, resource, signal, sys, threading
fd, report, script = int(sys.argv[1]), sys.argv[2], sys.argv[3]
child = os.fork()
if child == 0:
    os.close(fd)
    os.execv(sys.executable, [sys.executable, script, *sys.argv[4:]])
def watch():
    try:
        while os.read(fd, 1):
            pass
    except OSError:
        pass
    os.killpg(os.getpgrp(), signal.SIGKILL)
threading.Thread(target=watch, daemon=True).start()
while True:
    try:
        _, status, usage = os.wait4(child, 0)
        break
    except InterruptedError:
        pass
scale = 1 if sys.platform == "darwin" else 1024
with open(report, "w") as out:
    json.dump({"peak_mb": usage.ru_maxrss * scale / 1e6}, out)
code = os.waitstatus_to_exitcode(status)
if code < 0:  # end as the script ended, by the same signal
    try:
        signal.signal(-code, signal.SIG_DFL)
    except (OSError, ValueError):  # SIGKILL and SIGSTOP keep their default anyway
        pass
    os.kill(os.getpid(), -code)
os._exit(code)
"""


def _reap(proc: subprocess.Popen, result: WorkerResult | None = None, block: bool = False) -> bool:
    """Collect the worker's exit status if it has exited (waiting for it if ``block``); True once it has."""
    if proc.returncode is None:
        if hasattr(os, "wait4"):
            try:
                pid, status, _ = os.wait4(proc.pid, 0 if block else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: the status is lost
                pid, status = proc.pid, None
            if pid == 0:
                return False
            if status is not None:
                _kill_orphans(proc.pid)
            proc.returncode = -signal.SIGKILL if status is None else os.waitstatus_to_exitcode(status)
        elif (proc.wait() if block else proc.poll()) is None:  # pragma: no cover - Windows
            return False
    _RUNNING.pop(proc.pid, None)
    if result is not None and result.returncode is None:
        result.returncode = proc.returncode
        result.seconds = time.monotonic() - result._started
        result.peak_mb = _reported_peak(result)
    return True


def _reported_peak(result: WorkerResult) -> float:
    """The worker's peak memory in MB as its supervisor reported it; nan where there is no report."""
    try:
        return float(json.loads(result.report_path.read_text())["peak_mb"])
    except (AttributeError, OSError, ValueError, KeyError, TypeError):
        return float("nan")


def _kill_orphans(pgid: int) -> None:
    """Kill what is left in a reaped worker's process group (processes it started and left running), and wait
    until they are gone.

    Called at once after reaping it: the system hands a process id out again only after its counter has gone
    round all the others (tens of thousands at least), so the group's id cannot yet belong to anything else.
    """
    if hasattr(os, "killpg"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        _wait_until_gone(pgid)


#: How long :func:`_wait_until_gone` waits for a killed process group to disappear.
GROUP_EXIT_SECONDS = 10.0


def _group_running(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs. A zombie (dead, not yet reaped by its new parent)
    does not count; on Linux /proc tells them apart, elsewhere any member counts."""
    if not os.path.isdir("/proc/self"):
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    state, _, group = stat.read().rsplit(")", 1)[1].split()[:3]
            except (OSError, ValueError):
                continue  # it ended while we looked
            if int(group) == pgid and state not in ("Z", "X"):
                return True
    return False


def _wait_until_gone(pgid: int) -> None:
    """After SIGKILL to group ``pgid``: wait until none of it runs any more (signals arrive asynchronously; a
    worker's children are not ours to reap), at most :data:`GROUP_EXIT_SECONDS`."""
    deadline = time.monotonic() + GROUP_EXIT_SECONDS
    while _group_running(pgid) and time.monotonic() < deadline:
        time.sleep(0.01)


def _kill(proc: subprocess.Popen, result: WorkerResult | None = None) -> None:
    """Kill a worker that is still running, with everything in its process group, and reap it."""
    if _reap(proc, result):
        return  # it had exited by itself
    if result is not None:
        result.killed = True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if hasattr(os, "killpg"):
            # Not yet reaped, so its pid (the group's id, from start_new_session) cannot have been reused.
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    _reap(proc, result, block=True)  # reaping it also waits until the rest of its group is gone


@atexit.register
def _kill_all() -> None:
    for proc in list(_RUNNING.values()):
        _kill(proc)


def _describe_exit(code: int) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was ended by {name} (exit code {code})"
    return f"exited with code {code}"


def _last_exception(text: str) -> str | None:
    """The first line of the last Python exception in ``text`` ("ValueError: ..."), if any."""
    lines = [line for line in text.splitlines() if _EXCEPTION_LINE.match(line)]
    return lines[-1].strip()[:300] if lines else None


def _failure_message(why: str, quoted: list[WorkerResult], results: list[WorkerResult]) -> str:
    killed = [r.index for r in results if r.killed]
    message = why + (f"; worker {', '.join(map(str, killed))} killed" if killed else "") + "; none is left running."
    for result in quoted:
        tail = result.stderr_tail()
        if any(marker in tail for marker in _PORT_TAKEN):
            message += (
                f"\nWorker {result.index}'s port {result.port} on {LOCALHOST} was taken by another program after it was "
                "chosen free and before the worker started its server. Run the cell again: new free ports are chosen."
            )
        error = _last_exception(result.stderr)
        if error and error not in tail:
            message += f"\nWorker {result.index}'s last Python error: {error}"
        message += f"\nThe end of worker {result.index}'s stderr ({result.stderr_path}):\n" + (tail or "(empty)")
    return message


def run_workers(
    script,
    args=(),
    workers: int = 2,
    timeout: float = 120.0,
    ports: list[int] | None = None,
    env: dict | None = None,
    log_dir=None,
    python: str | None = None,
    poll_seconds: float = 0.05,
) -> list[WorkerResult]:
    """Run ``python script *args`` as ``workers`` processes on this machine, worker ``i`` with the ``TF_CONFIG``
    of index ``i``; wait until all exit; return one :class:`WorkerResult` per worker.

    ``env`` adds variables to this process's environment for every worker (e.g. ``CUDA_VISIBLE_DEVICES``).
    Raises :class:`PortInUse` before starting anything if a port in ``ports`` is taken, and
    :class:`WorkerFailed`, after killing every worker still running, if a worker fails or ``timeout``
    seconds pass.
    """
    script = Path(script)
    if not script.is_file():
        raise FileNotFoundError(f"no worker script at {script}: write it first.")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}.")
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}.")
    ports = free_ports(workers) if ports is None else [int(p) for p in ports]
    if len(ports) != workers or len(set(ports)) != workers:
        raise ValueError(f"give {workers} different ports, one per worker; got {ports}.")
    taken = [p for p in ports if not port_is_free(p)]
    if taken:
        raise PortInUse(
            f"port {', '.join(map(str, taken))} on {LOCALHOST} is already in use by another program: a worker could not "
            "start its server there, so no worker was started. Leave `ports` out to let free ones be chosen, or stop "
            "the program that holds it (a worker of an earlier run?).",
            [],
        )
    log_dir = Path(tempfile.mkdtemp(prefix="vgg-workers-") if log_dir is None else log_dir)
    log_dir.mkdir(parents=True, exist_ok=True)
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1", **{k: str(v) for k, v in (env or {}).items()}}

    results: list[WorkerResult] = []
    procs: list[subprocess.Popen] = []
    supervised = os.name == "posix"
    # The workers' lifeline: they hold the read end; this process holds the only write end, which the
    # operating system closes when this process ends, however it ends (see _SUPERVISOR).
    lifeline_read, lifeline_write = os.pipe() if supervised else (None, None)
    try:
        for index, port in enumerate(ports):
            out_path, err_path = log_dir / f"worker-{index}.out", log_dir / f"worker-{index}.err"
            report_path = log_dir / f"worker-{index}.peak.json"
            report_path.unlink(missing_ok=True)  # an earlier run's
            result = WorkerResult(index, -1, port, stdout_path=out_path, stderr_path=err_path, report_path=report_path)
            command = [python or sys.executable, str(script), *map(str, args)]
            if supervised:
                command = [command[0], "-c", _SUPERVISOR, str(lifeline_read), str(report_path), *command[1:]]
            with open(result.stdout_path, "wb") as out, open(result.stderr_path, "wb") as err:
                result._started = time.monotonic()
                proc = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env={**base_env, "TF_CONFIG": json.dumps(tf_config(ports, index))},
                    start_new_session=True,  # its own process group: killing the group kills what it started too
                    pass_fds=(lifeline_read,) if supervised else (),
                )
            _RUNNING[proc.pid] = proc
            result.pid = proc.pid
            results.append(result)
            procs.append(proc)
        deadline = time.monotonic() + timeout
        while True:
            for proc, result in zip(procs, results, strict=True):
                _reap(proc, result)
            failed = [r for r in results if r.returncode not in (None, 0)]
            if failed:
                first = min(failed, key=lambda r: r.seconds)
                why = f"worker {first.index} of {workers} {_describe_exit(first.returncode)} after {first.seconds:.1f} s"
                _kill_group(procs, results)
                raise WorkerFailed(_failure_message(why, [first], results), results)
            if all(r.returncode == 0 for r in results):
                return results
            if time.monotonic() > deadline:
                running = [r for r in results if r.returncode is None]
                why = (
                    f"the workers did not finish within the timeout of {timeout:g} s (worker "
                    f"{', '.join(str(r.index) for r in running)} still running: waiting for a worker that never came, "
                    "or more steps than fit in the timeout?)"
                )
                _kill_group(procs, results)
                raise WorkerFailed(_failure_message(why, running, results), results)
            time.sleep(poll_seconds)
    finally:
        _kill_group(procs, results)  # after success nothing is left; after any exception, none is left running
        if supervised:
            os.close(lifeline_read)
            os.close(lifeline_write)


def _kill_group(procs: list[subprocess.Popen], results: list[WorkerResult]) -> None:
    for proc, result in zip(procs, results, strict=True):
        _kill(proc, result)
