"""Run time and memory of whole notebooks: each executed top to bottom in a fresh kernel, its kernel's peak
memory and wall time measured, and the table of them that README.md and docs/teaching.md show, written
between its markers (``python -m benchmarks --notebooks … --tables README.md docs/teaching.md``)."""

from __future__ import annotations

import dataclasses
import re
import time
from pathlib import Path


@dataclasses.dataclass
class NotebookRun:
    """One notebook executed: its budget, its kernel's peak memory, its wall time, and what stopped it ("" if nothing)."""

    name: str
    budget: str
    peak_rss_mb: float  #: the kernel's peak resident memory (VmHWM) in MB (10⁶ bytes), Linux only; nan elsewhere
    wall_seconds: float
    error: str = ""


def _kernel_peak_mb(pid: int | None) -> float:
    """Peak resident memory (VmHWM) of process ``pid`` in MB (10⁶ bytes); nan where unknown."""
    try:
        status = open(f"/proc/{pid}/status").read()  # noqa: SIM115 - one short read
    except (OSError, TypeError):
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6  # the kernel reports KiB
    return float("nan")


def run_notebook(path, budget: str = "cpu", timeout: int = 1800, save: bool = False) -> NotebookRun:
    """Execute a notebook top to bottom in a fresh kernel with ``VGG_BUDGET=budget`` and measure the kernel's
    peak resident memory and the wall time. With ``save``, the executed notebook is written back (only if
    every cell ran), so its committed outputs and these measurements come from the same run."""
    import os

    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    # The kernel inherits this process's environment: the budget, and not a non-interactive Matplotlib
    # backend (MPLBACKEND=Agg, as the tests set it), which would keep every figure out of the saved notebook.
    saved = {name: os.environ.get(name) for name in ("VGG_BUDGET", "MPLBACKEND")}
    os.environ["VGG_BUDGET"] = budget
    os.environ.pop("MPLBACKEND", None)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}, record_timing=True
    )
    start, error, peak = time.perf_counter(), "", float("nan")
    try:
        with client.setup_kernel():
            pid = getattr(getattr(client.km, "provisioner", None), "pid", None)
            pid = pid or getattr(getattr(getattr(client.km, "provisioner", None), "process", None), "pid", None)
            try:
                for index, cell in enumerate(nb.cells):
                    client.execute_cell(cell, index)
            except CellExecutionError as err:
                error = re.sub(r"\x1b\[[0-9;]*m", "", str(err)).strip().splitlines()[-1][:200]  # no terminal colours
            peak = _kernel_peak_mb(pid)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    wall = time.perf_counter() - start
    if save and not error:
        nbformat.write(nb, path)
    return NotebookRun(path.stem, budget, peak, wall, error)


def format_notebook_table(runs: list[NotebookRun], limit_mb: float | None = None) -> str:
    """One row per notebook: budget, peak memory, wall time, and whether it passed (and kept under ``limit_mb``)."""
    lines = [f"{'notebook':<28} {'budget':<6} {'peak MB':>8} {'wall s':>7}  result", "-" * 64]
    for r in runs:
        result = f"error: {r.error}" if r.error else "ok"
        if not r.error and limit_mb is not None and r.peak_rss_mb > limit_mb:
            result = f"over {limit_mb:,.0f} MB"
        lines.append(f"{r.name:<28} {r.budget:<6} {r.peak_rss_mb:8,.0f} {r.wall_seconds:7.0f}  {result}")
    return "\n".join(lines)


TABLE_START, TABLE_END = "<!-- notebook-times: written by python -m benchmarks --tables -->", "<!-- /notebook-times -->"


def format_duration(seconds: float) -> str:
    """How the notebooks' headers and the tables write a run time: ``40 s`` below 100 s, else ``2.5 min``."""
    return f"{seconds:.0f} s" if seconds < 100 else f"{seconds / 60:.1f} min"


def _table_row(run: NotebookRun) -> str:
    return f"| {run.name} | {format_duration(run.wall_seconds)} | {run.peak_rss_mb:,.0f} MB |"


def markdown_table(runs: list[NotebookRun], machine: str, rows: dict[str, str] | None = None) -> str:
    """The run-time and memory table that README.md and docs/teaching.md both show. ``rows`` (name: row) are
    rows kept from an earlier table, for the notebooks that ``runs`` did not run again."""
    merged = dict(rows or {})
    merged.update({r.name: _table_row(r) for r in runs})
    lines = [
        TABLE_START,
        f"| notebook | {runs[0].budget} budget: Run All | kernel peak memory |",
        "|---|---|---|",
        *(merged[name] for name in sorted(merged)),
        "",
        f"Measured with `python -m benchmarks --notebooks notebooks/*.ipynb --budget {runs[0].budget}` "
        f"(each notebook in a fresh kernel) on {machine} (MB: 10⁶ bytes).",
        TABLE_END,
    ]
    return "\n".join(lines)


def table_rows(text: str) -> dict[str, str]:
    """The rows (notebook name: row) of the table between the markers in ``text``; empty without one."""
    if TABLE_START not in text or TABLE_END not in text:
        return {}
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    return {m.group(1): m.group(0) for m in re.finditer(r"^\| (\d\d_\w+) \|.*\|$", table, re.M)}


def write_tables(paths, runs: list[NotebookRun], machine: str) -> None:
    """Write the table of ``runs`` between the markers of each file, keeping the rows of notebooks not run
    again (a ``ValueError`` names a file without markers, before any file is written)."""
    paths = list(map(Path, paths))
    texts = {path: path.read_text() for path in paths}
    for path, text in texts.items():
        if TABLE_START not in text or TABLE_END not in text:
            raise ValueError(
                f"{path} has no table markers: add the lines {TABLE_START!r} and {TABLE_END!r} where the table goes."
            )
    for path, text in texts.items():
        before, rest = text.split(TABLE_START, 1)
        table = markdown_table(runs, machine, rows=table_rows(text))
        path.write_text(before + table + rest.split(TABLE_END, 1)[1])
