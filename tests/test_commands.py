"""The README's commands: `make lab` starts a JupyterLab that answers on localhost."""

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


@pytest.mark.skipif(not (ROOT / ".venv" / "bin" / "jupyter").exists(), reason="run through `make test`, which sets up .venv")
def test_make_lab_answers_on_localhost(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    args = f"--no-browser --ip=127.0.0.1 --port={port} --IdentityProvider.token={token}"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "config")}
    log = open(tmp_path / "lab.log", "w")
    lab = subprocess.Popen(
        ["make", "lab", f"LAB_ARGS={args}"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
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
        os.killpg(lab.pid, signal.SIGTERM)
        lab.wait(timeout=30)
        log.close()
