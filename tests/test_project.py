"""Project-level checks: environment files agree, committed notebooks are clean, URLs in line."""

import json
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
MAX_NOTEBOOK_KIB = 1024


def pyproject_requirements():
    project = PYPROJECT["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in ("cpu", "lab"):
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    binder = {"platform_machine": "x86_64", "sys_platform": "linux", "platform_system": "Linux", "python_version": "3.11"}
    return {canonicalize_name(r.name): r for r in reqs if r.marker is None or r.marker.evaluate(binder)}


def environment_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"environment.yml should pin exact versions for Binder: {line}"
        pins[canonicalize_name(req.name)] = spec.version
    return env, pins


def test_environment_pins_satisfy_pyproject():
    env, pins = environment_pins()
    assert "python=3.11" in env["dependencies"]
    requirements = pyproject_requirements()
    for name, req in requirements.items():
        assert name in pins, f"{name} is required by pyproject.toml but not pinned in environment.yml"
        assert req.specifier.contains(pins[name]), f"environment.yml pins {name}=={pins[name]}, outside {req}"
    assert "tensorflow" not in pins, "Binder is CPU-only: pin tensorflow-cpu, not the 572 MB tensorflow wheel"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    """Executed top to bottom, no machine paths or TensorFlow log lines in outputs, not too big."""
    cells = json.loads(path.read_text())["cells"]
    code = [c for c in cells if c["cell_type"] == "code" and "".join(c["source"]).strip()]
    assert all(c.get("execution_count") for c in code), "some code cells were never executed"
    counts = [c["execution_count"] for c in code]
    assert counts == sorted(counts), "cells were executed out of order: re-run top to bottom"
    outputs = json.dumps([c.get("outputs", []) for c in code])
    assert not re.findall(r"/(?:root|tmp|home|work|Users)/", outputs), "machine paths in outputs"
    assert not re.findall(r"I0000|W0000|E0000|oneDNN custom operations|absl::InitializeLog", outputs), "TF log lines"
    assert not re.findall(r"\"ename\"", outputs), "an error in the committed outputs"
    assert path.stat().st_size < MAX_NOTEBOOK_KIB * 1024, f"over {MAX_NOTEBOOK_KIB} KiB"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_committed_figures_are_in_the_notebook(path):
    """Every cell that draws a figure (plt.subplots, plt.show or a vh.plots function) has it as an image in the
    committed outputs (a run under a non-interactive backend, MPLBACKEND=Agg, would leave them all out)."""
    cells = json.loads(path.read_text())["cells"]
    drawing = re.compile(r"plt\.subplots\(|plt\.show\(\)|vh\.plots\.(?!apply_style|confusion_matrix)\w+\(")
    showing = [c for c in cells if c["cell_type"] == "code" and drawing.search("".join(c["source"]))]
    missing = [
        "".join(c["source"]).splitlines()[0]
        for c in showing
        if not any("image/png" in out.get("data", {}) for out in c.get("outputs", []))
    ]
    assert not missing, f"cells without their figure: {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_badges_and_colab_install_use_the_project_url(path):
    url = PYPROJECT["project"]["urls"]["Repository"].rstrip("/")
    repo = url.removeprefix("https://github.com/")
    cells = json.loads(path.read_text())["cells"]
    intro = "".join(cells[0]["source"])
    assert f"colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}" in intro
    assert f"mybinder.org/v2/gh/{repo}/main?labpath=notebooks%2F{path.name}" in intro
    setup = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    # Colab installs the version the notebook was written for: the tag of the version it requires.
    required = re.search(r'budget = vh\.setup\(requires="([^"]+)"\)', setup)
    assert required, "the setup cell calls vh.setup(requires=...)"
    assert f'"vgg-helpers @ git+{url}@v{required.group(1)}"' in setup


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_listed_in_readme_and_start_here(path):
    readme = (ROOT / "README.md").read_text()
    start = (ROOT / "notebooks" / "00_start_here.ipynb").read_text()
    assert f"(notebooks/{path.name})" in readme
    assert f"({path.name})" in start


def test_setup_cells_require_a_version_the_package_satisfies():
    from vgg_helpers.runtime import check_version

    for path in NOTEBOOKS:
        setup = next("".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code")
        check_version(re.search(r'requires="([^"]+)"', setup).group(1))  # raises ImportError if not


# --- one template for every notebook (README: "Adding notebook NN") -----------------------------------


def cells_of(path):
    return [(c["cell_type"], "".join(c["source"]), c.get("metadata", {})) for c in json.loads(path.read_text())["cells"]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_follows_the_template(path):
    cells = cells_of(path)
    number = path.name[:2]
    kind, title, _ = cells[0]
    assert kind == "markdown" and title.startswith(f"# {number} · "), "cell 0: the title, '# NN · Title'"
    assert "In this notebook you:" in title and "**Prerequisites:**" in title and "**Time to run:**" in title
    headings = [line for kind, source, _ in cells if kind == "markdown" for line in source.splitlines() if line.startswith("#")]
    top = [h for h in headings if h.startswith(("## ", "### Solutions"))]
    assert top[0] == "## Setup", "the first section is ## Setup"
    numbered = [h for h in top[1:] if re.match(r"## \d+\. ", h)]
    assert numbered and [int(h.split()[1].rstrip(".")) for h in numbered] == list(range(1, len(numbered) + 1)), (
        "sections are numbered ## 1., ## 2., … in order"
    )
    assert top[-3:] == ["## Exercises", "## Summary", "### Solutions"], (
        f"the notebook ends with Exercises, Summary, Solutions: {top[-3:]}"
    )
    assert cells[1][0] == "markdown" and cells[1][1].startswith("## Setup"), "cell 1: ## Setup"
    assert cells[2][0] == "code" and "vh.setup(requires=" in cells[2][1], "cell 2: the setup cell"
    solutions = next(i for i, (kind, source, _) in enumerate(cells) if kind == "markdown" and source.startswith("### Solutions"))
    solution_cells = [c for c in cells[solutions + 1 :] if c[0] == "code"]
    assert solution_cells and all(meta.get("jupyter", {}).get("source_hidden") for _, _, meta in solution_cells), (
        "solution cells are hidden"
    )
    assert all(meta.get("jupyter", {}).get("outputs_hidden") for _, _, meta in solution_cells), (
        "solution cells' outputs are hidden too: a printed answer would show under the collapsed cell"
    )
    checks = [source for kind, source, _ in cells[:solutions] if kind == "code" and "vh.exercises.check(" in source]
    answered = [source for _, source, _ in solution_cells]
    for check in checks:
        key = re.search(r'vh\.exercises\.check\("([^"]+)"', check).group(1)
        assert any(f'assert vh.exercises.check("{key}"' in source for source in answered), f"no solution asserts {key}"
    assert [s for s in answered if not s.startswith("# Solution")] == [], "each solution cell starts with '# Solution k'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_uses_one_import_style(path):
    code = "\n".join(source for kind, source, _ in cells_of(path) if kind == "code")
    assert "import vgg_helpers as vh" in code
    assert not re.findall(r"^\s*from vgg_helpers[\w.]* import", code, re.M), "import vgg_helpers as vh, then vh.module.name"
    assert not re.findall(r"^\s*\w+ = vh\.\w+\s*$", code, re.M), "no aliases of vh's modules: write vh.module.name"


# --- run times: the header, the committed run and the tables agree ---------------------------------

KERNEL_START_S = 3.5  #: a Run All in a fresh kernel also waits for the kernel to start (measured: 3.4-3.7 s)
TOLERANCE = 0.25


def header_seconds(path) -> float:
    intro = cells_of(path)[0][1]
    found = re.search(r"\*\*Time to run:\*\* (?:about )?(\d+(?:\.\d+)?) (s|min) in the cpu budget", intro)
    assert found, "the header says '**Time to run:** N s (or N.N min) in the cpu budget'"
    return float(found.group(1)) * (60 if found.group(2) == "min" else 1)


def committed_run_seconds(path) -> float:
    """Run All time of the committed run: first cell's start to last cell's reply, plus the kernel's start."""
    from datetime import datetime

    stamps = [
        c.get("metadata", {}).get("execution", {}) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
    ]
    stamps = [s for s in stamps if "iopub.execute_input" in s and "shell.execute_reply" in s]
    assert stamps, "the committed notebook has no execution times: execute it (python -m benchmarks --notebooks … --save)"

    def parse(text):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return (parse(stamps[-1]["shell.execute_reply"]) - parse(stamps[0]["iopub.execute_input"])).total_seconds() + KERNEL_START_S


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_header_run_time_matches_the_committed_run(path):
    setup_output = json.dumps(json.loads(path.read_text())["cells"][2].get("outputs", []))
    assert "budget: cpu" in setup_output, "the committed notebook is the cpu budget's run"
    claimed, measured = header_seconds(path), committed_run_seconds(path)
    assert abs(claimed - measured) <= TOLERANCE * measured, (
        f"header says {claimed:.0f} s, the committed run took {measured:.0f} s"
    )


@pytest.mark.parametrize("document", ["README.md", "docs/teaching.md"])
def test_run_time_tables_come_from_the_committed_runs(document):
    from benchmarks.notebooks import TABLE_END, TABLE_START

    text = (ROOT / document).read_text()
    assert TABLE_START in text and TABLE_END in text, f"{document} shows the table that the benchmark writes"
    table = text.split(TABLE_START, 1)[1].split(TABLE_END, 1)[0]
    rows = dict(re.findall(r"^\| (\d\d_\w+) \| ([\d.]+ (?:s|min)) \|", table, re.M))
    assert set(rows) == {path.stem for path in NOTEBOOKS}, "one row per notebook"
    for path in NOTEBOOKS:
        value, unit = rows[path.stem].split()
        seconds = float(value) * (60 if unit == "min" else 1)
        measured = committed_run_seconds(path)
        assert abs(seconds - measured) <= TOLERANCE * measured, (
            f"{path.stem}: the table says {seconds:.0f} s, the committed run {measured:.0f} s"
        )
    other = "docs/teaching.md" if document == "README.md" else "README.md"
    assert table == (ROOT / other).read_text().split(TABLE_START, 1)[1].split(TABLE_END, 1)[0], (
        "README and teaching.md show one table"
    )
