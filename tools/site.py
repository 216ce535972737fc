"""The collection as a static web site, built from the committed notebooks without executing them.

    python -m tools.site build/site         # make site

Sphinx with MyST-NB (notebooks as pages, their committed outputs as they are: ``nb_execution_mode = "off"``)
and the Sphinx Book Theme (navigation between the notebooks, search, a layout for phones and projectors).
The sources are gathered in ``build/site-src``: a landing page made from the README's story and notebook table,
the notebooks 00–08, the instructor guide, docs/benchmarks.md and docs/blog-post.md. Solution cells keep their
``hide-cell`` tag, so they stay collapsed. An interactive widget cannot run without a kernel: its output is
replaced by a note that says where to run it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

from tools.editions import notebooks

ROOT = Path(__file__).resolve().parents[1]
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = (
    "This explorer is interactive: it needs a running kernel. Open the notebook on Binder or Colab (the badges at "
    "the top of the page) or in JupyterLab (`make lab`) and run its cells; the figures above show the same things."
)

CONF = """
project = "VGG, from the blog post to 99% on MNIST"
author = "The VGG teaching collection team"
extensions = ["myst_nb", "sphinx-mathjax-offline"]  # MathJax served with the site, not from a CDN
nb_execution_mode = "off"  # the committed outputs, as they are
myst_enable_extensions = ["dollarmath", "amsmath"]
exclude_patterns = ["_build"]
html_theme = "sphinx_book_theme"
html_title = "VGG, from the blog post to 99% on MNIST"
html_theme_options = {{
    "repository_url": "{url}",
    "use_repository_button": True,
    "path_to_docs": "notebooks",
    "show_toc_level": 2,
}}
html_context = {{"default_mode": "light"}}
html_show_sourcelink = False
html_favicon = "favicon.svg"
html_static_path = ["_static"]
html_css_files = ["site.css"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]
"""


def landing_page(readme: str) -> str:
    """The README's title, story and notebook table, with the table's links pointing at the site's pages."""
    head, rest = readme.split("## Notebooks", 1)
    table = rest.split("\n## ", 1)[0]
    lines = [
        head.rstrip(),
        "",
        "## Notebooks",
        table.rstrip(),
        "",
        "The instructor guide, the benchmarks and the blog post's facts are in the last pages of the book.",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        ":caption: Notebooks",
        ":hidden:",
        "",
        *[f"notebooks/{path.stem}" for path in notebooks()],
        "```",
        "",
        "```{toctree}",
        ":maxdepth: 1",
        ":caption: For instructors and maintainers",
        ":hidden:",
        "",
        "docs/teaching",
        "docs/benchmarks",
        "docs/blog-post",
        "```",
        "",
    ]
    return "\n".join(lines)


#: Long inline code (a call with its arguments) wraps on a phone instead of widening the page.
CSS = (
    "code.literal span.pre { white-space: pre-wrap; overflow-wrap: anywhere; }\n"
    # on a phone the theme's title filled half the first screen
    "@media (max-width: 600px) { .bd-article h1 { font-size: 1.9rem; } }\n"
)
FAVICON = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#b22222"/>'
    '<text x="8" y="12" font-size="10" text-anchor="middle" fill="white" font-family="sans-serif">V</text></svg>'
)


def without_live_widgets(nb):
    """Replace each widget's output (which shows nothing without a kernel) with a note on where to run it, and drop
    the saved widget state, so that the page loads no widget scripts from outside."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.get("outputs", []):
            if WIDGET_MIME in out.get("data", {}):
                out = nbformat.v4.new_output("display_data", data={"text/markdown": WIDGET_NOTE, "text/plain": WIDGET_NOTE})
            outputs.append(out)
        cell.outputs = outputs
    return nb


def sources(target: Path) -> Path:
    """Gather the site's sources in ``target`` (emptied first)."""
    if target.exists():
        shutil.rmtree(target)
    (target / "notebooks").mkdir(parents=True)
    (target / "docs").mkdir()
    readme = (ROOT / "README.md").read_text()
    (target / "index.md").write_text(landing_page(readme))
    url = next(
        line.split("=", 1)[1].strip().strip('"')
        for line in (ROOT / "pyproject.toml").read_text().splitlines()
        if line.startswith("Repository")
    )
    (target / "conf.py").write_text(CONF.format(url=url))
    (target / "favicon.svg").write_text(FAVICON)
    (target / "_static").mkdir()
    (target / "_static" / "site.css").write_text(CSS)
    for path in notebooks():
        nbformat.write(without_live_widgets(nbformat.read(path, as_version=4)), target / "notebooks" / path.name)
    for name in ("teaching.md", "benchmarks.md", "blog-post.md"):
        shutil.copy(ROOT / "docs" / name, target / "docs" / name)
    return target


def build(out_dir, source_dir=None) -> float:
    """Build the HTML site into ``out_dir``; return the seconds it took. Raises ``RuntimeError`` with Sphinx's
    output if the build fails or warns (a broken link or a missing page is a warning)."""
    out_dir = Path(out_dir)
    source = sources(Path(source_dir) if source_dir else out_dir.parent / "site-src")
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going", "-E", str(source), str(out_dir)],
        capture_output=True, text=True,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"the site did not build:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
    return time.perf_counter() - start


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out_dir = Path(argv[0] if argv else "build/site")
    seconds = build(out_dir)
    print(f"built the site in {seconds:.0f} s: {out_dir / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
