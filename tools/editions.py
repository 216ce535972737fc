"""Classroom editions of the notebooks, made from the committed ones (the instructor edition).

    python -m tools.editions student build/student     # without the solution cells (make student)
    python -m tools.editions pasted build/pasted       # each solution pasted into its answer cell
    python -m tools.editions tested build/tested       # what make test runs: the student edition, then the pasted exercises

The committed notebooks are the single source. A solution cell carries the cell tag ``solution`` (and
``hide-cell``, which keeps it collapsed on the site). The student edition is written with nbconvert's
``TagRemovePreprocessor``, which drops the cells tagged ``solution``: statements, answer cells
(``name = None  # your code here``), check cells and every other output stay, so a student still sees the
figures without running anything. The pasted edition puts each solution's code into its exercise's answer
cell, so that running it shows every check pass where the student's answer would go. The tested edition, which
``make test`` runs under nbval, is both in one notebook, so that each notebook runs once: the student edition as it
is (every check compared with "not answered yet"), followed by the pasted edition's exercise section (from the
"## Exercises" heading on), whose checks must pass (``assert``).
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import TagRemovePreprocessor

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
SOLUTION_TAG = "solution"
#: An answer cell: one assignment of None, "# your code here" (the exercise template, README "Adding notebook NN").
ANSWER = re.compile(r"^(\w+) = None  # your code here")
CHECK = re.compile(r'vh\.exercises\.check\("([^"]+)", (\w+)')


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def solution_cells(nb) -> list:
    """The solution code cells (the "### Solutions" heading above them carries the tag too)."""
    return [cell for cell in nb.cells if cell.cell_type == "code" and SOLUTION_TAG in cell.metadata.get("tags", [])]


def student(nb, check_unanswered: bool = True):
    """The notebook without its solution cells (a copy; ``nb`` is left as it is). With ``check_unanswered``, each
    check cell is marked ``# NBVAL_CHECK_OUTPUT``, so that nbval compares what it prints with the committed
    "not answered yet" (the committed notebooks leave every answer at None)."""
    remover = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    edition, _ = remover.preprocess(copy.deepcopy(nb), {})
    if check_unanswered:
        for _, _, check in exercises(edition):
            cell = edition.cells[check]
            if not all("not answered yet" in "".join(out.get("text", "")) for out in cell.outputs) or not cell.outputs:
                raise ValueError(f"the check cell {cell.source[:60]!r} does not print 'not answered yet' in the committed run")
            cell.source = "# NBVAL_CHECK_OUTPUT\n" + cell.source
    return edition


def exercises(nb) -> list[tuple[str, int, int]]:
    """``(variable, answer cell index, check cell index)`` for each exercise, in order."""
    found = []
    for index, cell in enumerate(nb.cells):
        match = ANSWER.match(cell.source) if cell.cell_type == "code" else None
        if match:
            check = next((i for i in range(index + 1, len(nb.cells)) if CHECK.search(nb.cells[i].source or "")), None)
            if check is None or CHECK.search(nb.cells[check].source).group(2) != match.group(1):
                raise ValueError(f"the answer cell `{match.group(1)} = None` has no check cell right after it")
            found.append((match.group(1), index, check))
    return found


def pasted(nb):
    """The notebook with each solution in its exercise's answer cell and the solution cells removed."""
    edition = copy.deepcopy(nb)
    solutions = solution_cells(edition)
    answers = exercises(edition)
    if len(solutions) != len(answers):
        raise ValueError(f"{len(answers)} answer cells but {len(solutions)} solution cells")
    for (variable, index, _), solution in zip(answers, solutions, strict=True):
        if not re.search(rf"^(def |class )?{variable}\b", solution.source, re.M):
            raise ValueError(f"the solution cell for `{variable}` does not define it:\n{solution.source[:200]}")
        answer = edition.cells[index]
        answer.source = solution.source
        answer.outputs = solution.outputs
    return student(edition, check_unanswered=False)


EXERCISES_HEADING = "## Exercises"
CHECK_CALL = re.compile(r"^vh\.exercises\.check\(", re.M)


def tested(nb):
    """The student edition, then the pasted edition's exercise section again with each check asserted: the
    student edition runs top to bottom unchanged (its cells come first, in order), and the solutions then pass
    in their answer cells, after the same cells as in the pasted edition."""
    first = student(nb)
    second = pasted(nb)
    start = next(
        (i for i, cell in enumerate(second.cells) if cell.cell_type == "markdown" and cell.source.startswith(EXERCISES_HEADING)),
        None,
    )
    if start is None:
        raise ValueError(f"no {EXERCISES_HEADING!r} heading: the tested edition repeats the section that it opens")
    again = copy.deepcopy(second.cells[start + 1 :])
    for cell in again:  # a cell id is unique within a notebook (nbformat 4.5)
        cell.id = f"{cell.id}-again"
    for _, _, check in exercises(second):
        cell = again[check - start - 1]
        if len(CHECK_CALL.findall(cell.source)) != 1:
            raise ValueError(f"the check cell {cell.source[:60]!r} should call vh.exercises.check once, at a line's start")
        cell.source = CHECK_CALL.sub("assert vh.exercises.check(", cell.source)
    heading = nbformat.v4.new_markdown_cell(
        "## The exercises again, each solution pasted into its answer cell\n\n(Written by `tools/editions.py` for "
        "`make test`: every check must pass.)"
    )
    first.cells += [heading, *again]
    return first


def write(kind: str, out_dir) -> list[Path]:
    make = {"student": student, "pasted": pasted, "tested": tested}[kind]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks():
        edition = make(nbformat.read(path, as_version=4))
        target = out_dir / path.name
        nbformat.write(edition, target)
        written.append(target)
    return written


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("student", "pasted", "tested"):
        print(__doc__)
        return 2
    written = write(*argv)
    print(f"wrote {len(written)} notebooks to {argv[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
