"""The README's commands: `make lab` starts a JupyterLab that answers on localhost only, with a token."""

import contextlib
import ipaddress
import json
import os
import random
import re
import secrets
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from vgg_helpers.distributed import port_is_free

ROOT = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    """``count`` different ports on 127.0.0.1, free now, below the range the system hands out for port 0.

    A server under test binds its port seconds after it is chosen. Meanwhile the other pytest worker may start a
    kernel, which binds five ports to port 0: had the port come from that range (as a bind to port 0 gives it), the
    kernel could take it first. Outside that range only a program that names the port can."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 49152  # IANA's dynamic range, which macOS and Windows use
    rng, ports = random.SystemRandom(), []
    for _ in range(1000):
        port = rng.randrange(10_000, max(low, 10_001))
        if port not in ports and port_is_free(port):
            ports.append(port)
            if len(ports) == count:
                return ports
    raise AssertionError(f"found only {len(ports)} free ports of {count} between 10000 and {low}")


def free_port() -> int:
    return free_ports(1)[0]


def wait_for_lab(url: str, token: str, process: subprocess.Popen, log: Path, seconds: float = 120) -> dict:
    """Poll JupyterLab's ``/api/status`` until it answers and return the status; fail with the end of
    its log if the process exits or ``seconds`` pass first."""
    request = urllib.request.Request(f"{url}/api/status", headers={"Authorization": f"token {token}"})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.load(response)
        except OSError:
            time.sleep(1)
    raise AssertionError(f"JupyterLab did not answer on {url}:\n" + log.read_text()[-3000:])


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (Linux: /proc/net/tcp and tcp6)."""
    import ipaddress

    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                address, hex_port = local.split(":")
                if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                    raw = bytes.fromhex(address)
                    # /proc prints each 32-bit word in host (little-endian) order
                    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
                    found.add(str(ipaddress.ip_address(raw)))
    return found


def start_make_lab(tmp_path, lab_args: str):
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS={lab_args}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return lab, log


def stop(lab, log):
    with contextlib.suppress(ProcessLookupError):
        os.killpg(lab.pid, signal.SIGTERM)
    try:
        lab.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(lab.pid, signal.SIGKILL)
        lab.wait(timeout=30)
    log.close()


needs_venv = pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "jupyter").exists(), reason="run through `make test`, which sets up .venv"
)


@needs_venv
def test_make_lab_answers_on_localhost(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    lab, log = start_make_lab(tmp_path, f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}")
    try:
        status = wait_for_lab(f"http://127.0.0.1:{port}", token, lab, tmp_path / "lab.log")
        assert "started" in status
        # The token is required: without it the API refuses.
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
        # It serves the notebooks folder.
        request = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents", headers={"Authorization": f"token {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            names = {item["name"] for item in json.load(response)["content"]}
        assert "00_start_here.ipynb" in names
    finally:
        stop(lab, log)


@needs_venv
@pytest.mark.skipif(not os.path.exists("/proc/net/tcp"), reason="reads the listening sockets from /proc/net")
def test_make_lab_as_the_readme_runs_it_listens_on_localhost_only_and_needs_a_token(tmp_path):
    """`make lab` with no options but --no-browser (nothing here could show one): the address, port and
    token are whatever the Makefile and Jupyter's defaults give a student."""
    lab, log = start_make_lab(tmp_path, "--no-browser")
    try:
        deadline = time.monotonic() + 120
        match = None
        while match is None and time.monotonic() < deadline and lab.poll() is None:
            match = re.search(r"http://(?:localhost|127\.0\.0\.1):(\d+)/lab\?token=(\w+)", (tmp_path / "lab.log").read_text())
            time.sleep(1)
        assert match, "make lab printed no URL with a token:\n" + (tmp_path / "lab.log").read_text()[-3000:]
        port, token = int(match.group(1)), match.group(2)
        wait_for_lab(f"http://127.0.0.1:{port}", token, lab, tmp_path / "lab.log")
        addresses = listening_addresses(port)
        assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=5)
        assert refused.value.code == 403
    finally:
        stop(lab, log)
