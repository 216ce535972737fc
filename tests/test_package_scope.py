"""The package's scope, tested: every public name in ``vgg_helpers`` is reached from a notebook.

A name is reached when a notebook's code uses it (``vh.module.name``, ``vh.name``, ``vgg_helpers.module.name``,
``from vgg_helpers[.module] import name``; the worker scripts that ``%%writefile`` cells write included), when a
reached definition refers to it (followed with :mod:`ast` through the package's own imports; a reached class
brings its whole body), or, for an exercise's check registered with ``@checker("key")``, when a notebook names
its key. What no notebook reaches belongs to the maintainers' ``benchmarks/`` or to the tests, unless
:data:`EXCEPTIONS` says in one line why it stays.
"""

import ast
import json
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE = "vgg_helpers"

#: Public names that no notebook reaches, kept on purpose: name, and why.
EXCEPTIONS = {
    "vgg_helpers.__all__": "the package's public names, for `from vgg_helpers import *` and the reader",
}


def cell_python(source: str) -> str:
    """A code cell as plain Python: a cell magic's line (``%%writefile worker.py``) dropped, the rest of the cell
    kept (a written worker script is Python too); each line magic or shell line (``%pip``, ``!ls``) made ``pass``."""
    lines = source.splitlines()
    if lines and lines[0].startswith("%%"):
        lines = lines[1:]
    return "\n".join(
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line for line in lines
    )


def notebook_trees(paths) -> list[ast.Module]:
    """Every code cell of the notebooks at ``paths``, parsed."""
    trees = []
    for path in paths:
        for number, cell in enumerate(json.loads(Path(path).read_text())["cells"]):
            if cell["cell_type"] == "code":
                source = cell_python("".join(cell["source"]))
                try:
                    trees.append(ast.parse(source))
                except SyntaxError as err:  # pragma: no cover - a notebook cell that is not Python
                    raise AssertionError(f"{Path(path).name}, cell {number}: not Python after magics are removed: {err}") from err
    return trees


class Package:
    """The package's modules as :mod:`ast` trees: each module's top-level definitions and import aliases."""

    def __init__(self, folder: Path):
        self.trees = {path.stem: ast.parse(path.read_text()) for path in sorted(Path(folder).glob("*.py"))}
        self.definitions = {module: _definitions(tree) for module, tree in self.trees.items()}
        self.aliases = {module: self._aliases(tree) for module, tree in self.trees.items()}

    def _target(self, module: str | None, name: str):
        """What ``name`` imported from ``module`` of the package (None: the package itself) stands for."""
        if module is None:
            return ("module", name) if name in self.trees else ("name", "__init__", name)
        return ("name", module, name)

    def _aliases(self, tree: ast.Module) -> dict:
        """Names bound anywhere in ``tree`` by an import from the package: name → ("package",),
        ("module", module) or ("name", module, name)."""
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == PACKAGE and alias.asname:
                        aliases[alias.asname] = ("module", parts[1]) if len(parts) > 1 else ("package",)
                    elif parts[0] == PACKAGE:
                        aliases[PACKAGE] = ("package",)
            elif isinstance(node, ast.ImportFrom):
                parts = (node.module or "").split(".") if node.module else []
                if node.level:  # from . import x, from .x import y
                    source = parts[0] if parts else None
                elif parts and parts[0] == PACKAGE:
                    source = parts[1] if len(parts) > 1 else None
                else:
                    continue
                for alias in node.names:
                    aliases[alias.asname or alias.name] = self._target(source, alias.name)
        return aliases

    def resolve(self, node, aliases: dict):
        """What a ``Name`` or ``Attribute`` chain stands for in the package, given the aliases in force; or None."""
        if isinstance(node, ast.Name):
            return aliases.get(node.id)
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value, aliases)
            if base == ("package",):
                return self._target(None, node.attr)
            if base and base[0] == "module":
                return ("name", base[1], node.attr)
        return None

    def uses(self, nodes, module: str | None, aliases: dict) -> set[tuple[str, str]]:
        """The package's (module, name) pairs that the code in ``nodes`` refers to; ``module`` is the module the code
        is in (its own top-level names count), or None for a notebook."""
        found = set()
        for top in nodes:
            for node in ast.walk(top):
                target = self.resolve(node, aliases)
                if target and target[0] == "name":
                    found.add(target[1:])
                if module is not None and isinstance(node, ast.Name) and node.id in self.definitions[module]:
                    found.add((module, node.id))
        return found

    def roots(self, notebooks) -> set[tuple[str, str]]:
        """What the notebooks use, what runs when the package is imported, and the checks of exercises they name."""
        trees = notebook_trees(notebooks)
        aliases = {}  # one namespace for all cells: `import vgg_helpers as vh` is in each notebook's setup cell only
        for tree in trees:
            aliases.update(self._aliases(tree))
        found = self.uses(trees, None, aliases) | {alias[1:] for alias in aliases.values() if alias[0] == "name"}
        strings = {node.value for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Constant)}
        for module, tree in self.trees.items():
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    for decorator in node.decorator_list:
                        found |= self.uses([decorator], module, self.aliases[module])  # it runs at import
                        if _registers(decorator, strings):
                            found.add((module, node.name))
                elif not (_is_definition(node) or isinstance(node, (ast.Import, ast.ImportFrom)) or _is_main(node)):
                    found |= self.uses([node], module, self.aliases[module])  # a statement run at import
        return found

    def reached(self, notebooks) -> set[tuple[str, str]]:
        """Every (module, name) that the notebooks reach, directly or through the package's own code."""
        seen, todo = set(), list(self.roots(notebooks))
        while todo:
            module, name = todo.pop()
            if (module, name) in seen or module not in self.trees:
                continue
            seen.add((module, name))
            if name in self.definitions[module]:
                todo += self.uses(self.definitions[module][name], module, self.aliases[module])
            elif self.aliases[module].get(name, ("",))[0] == "name":  # a name the module imports: where it comes from
                todo.append(self.aliases[module][name][1:])
        return seen


def _is_definition(node) -> bool:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
        return True  # a docstring
    targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) else None
    return targets is not None and all(isinstance(t, (ast.Name, ast.Tuple)) for t in targets)


def _is_main(node) -> bool:
    """``if __name__ == "__main__":``, which runs only as a script, never on import."""
    return isinstance(node, ast.If) and ast.unparse(node.test).replace("'", '"') == '__name__ == "__main__"'


def _definitions(tree: ast.Module) -> dict[str, list]:
    """The module's top-level names, each with the statements that define it."""
    names: dict[str, list] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.setdefault(node.name, []).append(node)
        elif _is_definition(node) and not isinstance(node, ast.Expr):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        names.setdefault(name.id, []).append(node.value if node.value is not None else node)
    return names


def _registers(decorator, strings: set) -> bool:
    """Whether a decorator makes its function run without being named: ``atexit.register``, or an exercise
    check (``@checker("key")``) whose key a notebook names."""
    if isinstance(decorator, ast.Attribute) and ast.unparse(decorator) == "atexit.register":
        return True
    return (
        isinstance(decorator, ast.Call)
        and ast.unparse(decorator.func) == "checker"
        and any(isinstance(arg, ast.Constant) and arg.value in strings for arg in decorator.args)
    )


def _public(name: str) -> bool:
    return not name.startswith("_") or (name.startswith("__") and name.endswith("__"))


def public_names(package: Package) -> dict[str, tuple[str, str]]:
    """The package's public top-level names, as ``vgg_helpers.module.name``: (module, name)."""
    return {
        f"{PACKAGE}.{name}" if module == "__init__" else f"{PACKAGE}.{module}.{name}": (module, name)
        for module, names in package.definitions.items()
        for name in names
        if _public(name)
    }


def unreached_names(folder: Path, notebooks) -> list[str]:
    """The package's public top-level names that no notebook reaches."""
    package = Package(folder)
    reached = package.reached(notebooks)
    return sorted(dotted for dotted, pair in public_names(package).items() if pair not in reached)


def test_every_public_name_is_reached_from_a_notebook():
    assert NOTEBOOKS, "no notebooks found"
    unreached = [name for name in unreached_names(ROOT / PACKAGE, NOTEBOOKS) if name not in EXCEPTIONS]
    assert not unreached, (
        "no notebook reaches these public names of vgg_helpers, directly or through the package's code: "
        + ", ".join(unreached)
        + ". Move them to benchmarks/ or the tests, delete them, or add them to EXCEPTIONS with a reason."
    )
    stale = [name for name in EXCEPTIONS if name not in public_names(Package(ROOT / PACKAGE))]
    assert not stale, f"EXCEPTIONS names what the package does not define: {stale}"


def test_the_rule_notices_a_public_function_no_notebook_uses(tmp_path):
    """The control: a public function added to a copy of the package is reported, with what only it calls."""
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT / PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with open(copy / "training.py", "a") as module:
        module.write("\n\ndef unused_helper():\n    return unused_detail()\n\n\ndef unused_detail():\n    return 1\n")
    found = unreached_names(copy, NOTEBOOKS)
    assert "vgg_helpers.training.unused_helper" in found and "vgg_helpers.training.unused_detail" in found
    assert "vgg_helpers.training.train_and_evaluate" not in found  # notebooks 06 and 08 call it


def test_every_way_a_notebook_names_the_package_is_followed(tmp_path):
    """Each import style, a worker script written by %%writefile, an exercise's key: each reaches its name."""
    cells = [
        "%pip install -q something\nimport vgg_helpers as vh\nif True:\n    !echo hi\nvh.setup()\nvh.data.load_mnist()",
        "from vgg_helpers.plots import show_digits\nfrom vgg_helpers import architectures, BUDGETS",
        "%%writefile {folder}/worker.py\nimport vgg_helpers\nvgg_helpers.distributed.free_ports(2)",
        'vh.exercises.check("00-mean-pixel", None)\narchitectures.blog_vgg()',
    ]
    notebook = tmp_path / "99_test.ipynb"
    notebook.write_text(json.dumps({"cells": [{"cell_type": "code", "source": source} for source in cells]}))
    reached = Package(ROOT / PACKAGE).reached([notebook])
    expected = [
        ("runtime", "setup"), ("data", "load_mnist"), ("plots", "show_digits"), ("runtime", "BUDGETS"),
        ("distributed", "free_ports"), ("exercises", "_mean_pixel"), ("architectures", "blog_vgg"),
        ("architectures", "BLOG_WIDTHS"),  # blog_vgg's default
        ("runtime", "import_tensorflow"),  # called when the package is imported
    ]  # fmt: skip
    assert [pair for pair in expected if pair not in reached] == []
    assert ("exercises", "_one_cycle") not in reached and ("training", "plan_training") not in reached
