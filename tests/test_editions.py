"""The classroom editions (tools/editions.py), made from the committed notebooks: the student edition has no
solutions and every check says "not answered yet"; the pasted edition has every solution in its answer cell; the
tested edition (what make test runs) is both; and no numeric answer is printed anywhere a student sees."""

import re

import nbformat
import pytest

from tools import editions
from vgg_helpers.exercises import agrees

NOTEBOOKS = editions.notebooks()


def load(path):
    return nbformat.read(path, as_version=4)


def text_of(cell) -> str:
    """What a reader sees of a cell: a markdown cell's text, a code cell's printed and displayed outputs."""
    if cell.cell_type == "markdown":
        return cell.source
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        data = output.get("data", {})
        parts.append(data.get("text/plain", "") + data.get("text/html", "") + data.get("text/markdown", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_solutions_come_last_and_match_the_exercises(path):
    """Removing the solutions removes nothing that a later cell needs; each exercise has its solution."""
    nb = load(path)
    tagged = [i for i, cell in enumerate(nb.cells) if editions.SOLUTION_TAG in cell.metadata.get("tags", [])]
    assert tagged and tagged == list(range(tagged[0], len(nb.cells))), "the solution cells should close the notebook"
    assert nb.cells[tagged[0]].source.startswith("### Solutions")
    assert len(editions.exercises(nb)) == len(editions.solution_cells(nb)) > 0


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_edition(path):
    nb = load(path)
    student = editions.student(nb)
    assert not any(editions.SOLUTION_TAG in cell.metadata.get("tags", []) for cell in student.cells)
    solution_code = {line for cell in editions.solution_cells(nb) for line in cell.source.splitlines() if len(line) > 40}
    student_code = {line for cell in student.cells if cell.cell_type == "code" for line in cell.source.splitlines()}
    # An exercise may build on a cell the lesson shows (07's step on section 2's): those lines are taught, not leaked.
    exercises_start = next(i for i, cell in enumerate(nb.cells) if cell.source.startswith("## Exercises"))
    taught = {line for cell in nb.cells[:exercises_start] if cell.cell_type == "code" for line in cell.source.splitlines()}
    assert not (solution_code - taught) & {line for line in student_code if "vh.exercises.check" not in line}
    for _, answer, check in editions.exercises(student):
        assert student.cells[answer].source.split("=")[1].strip().startswith("None")
        assert student.cells[check].source.startswith("# NBVAL_CHECK_OUTPUT\n")  # nbval compares "not answered yet"


def test_student_edition_refuses_a_check_that_was_answered(tmp_path):
    nb = load(NOTEBOOKS[0])
    _, _, check = editions.exercises(nb)[0]
    nb.cells[check].outputs[0]["text"] = "00-mean-pixel: ✓ correct\n"
    with pytest.raises(ValueError, match="not answered yet"):
        editions.student(nb)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_pasted_edition(path):
    nb = load(path)
    pasted = editions.pasted(nb)
    solutions = editions.solution_cells(nb)
    for (variable, answer, _), solution in zip(editions.exercises(load(path)), solutions, strict=True):
        assert pasted.cells[answer].source == solution.source
        assert re.search(rf"^(def |class )?{variable}\b", solution.source, re.M)
    assert not editions.solution_cells(pasted)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_tested_edition_is_the_student_edition_then_the_pasted_exercises(path):
    """What make test runs: every cell of the student edition first, unchanged; then the pasted edition's exercise
    section, each check asserted (a wrong answer only prints, so nbval would not notice it unasserted)."""
    nb = load(path)
    student, pasted, tested = editions.student(nb), editions.pasted(load(path)), editions.tested(load(path))
    assert [c.source for c in tested.cells[: len(student.cells)]] == [c.source for c in student.cells]
    start = next(i for i, c in enumerate(pasted.cells) if c.source.startswith("## Exercises"))
    again = tested.cells[len(student.cells) + 1 :]
    assert len(again) == len(pasted.cells) - start - 1
    checks = {check for _, _, check in editions.exercises(pasted)}
    for index, (cell, original) in enumerate(zip(again, pasted.cells[start + 1 :], strict=True)):
        if index + start + 1 in checks:
            assert cell.source == original.source.replace("vh.exercises.check(", "assert vh.exercises.check(")
        else:
            assert cell.source == original.source
    assert sum("assert vh.exercises.check(" in c.source for c in again) == len(editions.exercises(nb))
    ids = [cell.id for cell in tested.cells]
    assert len(set(ids)) == len(ids)  # a repeated id makes nbformat warn and rename it each time the edition is read
    nbformat.validate(tested)


#: Exercises answered with a number, and how their solution cell prints it.
NUMERIC_ANSWERS = {
    "00-mean-pixel": r"mean scaled pixel: ([\d.]+)",
    "01-block3-params": r"block 3: ([\d,]+) parameters",
    "01-gap-params": r"average pooling: ([\d,]+) parameters",
    "02-pool8-macs": r"2, 4, 8: ([\d,]+) MACs",
    "02-lrn-cap": r"LRN peaks at ([\d.]+)",
    "03-he-stddev": r"He std: ([\d.]+)",
    "03-logit-scale": r"predicted logit std ([\d.e+]+)",
    "04-top2-accuracy": r"top-2 ([\d.]+)%",
}
FRACTIONS = {"04-top2-accuracy"}
#: Numbers that a check would accept but that are printed for another reason, with that reason.
COINCIDENCES = {
    ("02-lrn-cap", "52"): "the blog network's 52 million weights (01, 03), not an LRN output",
    ("04-top2-accuracy", "99.87%"): "Byerly et al.'s MNIST ensemble record, quoted in 04's prose",
}
NUMBER = re.compile(r"(?<![\w.])(\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?)(%?)")


def numbers(text: str, percent_as_fraction: bool):
    """Every number printed in ``text`` with at least two significant digits (a percentage as a fraction, if asked)."""
    for digits, percent in NUMBER.findall(text):
        if len(digits.split("e")[0].replace(",", "").replace(".", "").lstrip("0")) < 2:
            continue
        value = float(digits.replace(",", ""))
        yield digits + percent, value / 100 if percent and percent_as_fraction else value


def test_no_numeric_answer_is_printed_outside_the_solutions():
    """A printed number that its check would accept (the answer, or the answer rounded to two significant figures or
    more) is a leak wherever a student sees it: an output or the text of any notebook. Percentages count as
    fractions for the answers that are fractions (a top-2 accuracy), not for the others (a mean pixel of 0.13 is
    not an accuracy of 13%)."""
    answers, seen = {}, []
    for path in NOTEBOOKS:
        nb = load(path)
        for cell in nb.cells:
            if editions.SOLUTION_TAG in cell.metadata.get("tags", []):
                for key, pattern in NUMERIC_ANSWERS.items():
                    if f'"{key}"' in cell.source:
                        value = float(re.search(pattern, text_of(cell)).group(1).replace(",", ""))
                        answers[key] = value / 100 if key == "04-top2-accuracy" else value
            else:
                seen.append((path.stem, text_of(cell)))
    assert set(answers) == set(NUMERIC_ANSWERS)
    leaks = [
        (key, notebook, printed)
        for key, answer in answers.items()
        for notebook, text in seen
        for printed, value in numbers(text, percent_as_fraction=key in FRACTIONS)
        if (agrees(1 - value, 1 - answer) if key in FRACTIONS else agrees(value, answer))  # as the checks compare
        and (key, printed) not in COINCIDENCES
    ]
    assert not leaks, leaks
