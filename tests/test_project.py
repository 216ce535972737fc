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
    return {canonicalize_name(r.name): r for r in reqs}


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
def test_badges_and_colab_install_use_the_project_url(path):
    url = PYPROJECT["project"]["urls"]["Repository"].rstrip("/")
    repo = url.removeprefix("https://github.com/")
    cells = json.loads(path.read_text())["cells"]
    intro = "".join(cells[0]["source"])
    assert f"colab.research.google.com/github/{repo}/blob/main/notebooks/{path.name}" in intro
    assert f"mybinder.org/v2/gh/{repo}/main?labpath=notebooks%2F{path.name}" in intro
    setup = next("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    assert f'"vgg-helpers @ git+{url}"' in setup and 'budget = vh.setup(requires="' in setup


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
