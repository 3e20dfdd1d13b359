#!/usr/bin/env python3
"""Generate the student workbooks in ``exercises/`` from the completed ones in ``solutions/``.

``solutions/`` is the single source, and ``exercises/`` holds exactly what nbgrader's
``generate_assignment`` makes of it, cell source for cell source, so an instructor who
copies ``solutions/`` into an nbgrader course hands out the same text as ``exercises/``
(``tests/test_make_exercises.py`` runs nbgrader, when it is installed, to keep it so).
The rules are those of nbgrader's ClearSolutions, ClearHiddenTests and ClearMarkScheme
preprocessors (nbgrader 0.9, "Creating and grading assignments" in its user guide, and
``nbgrader/preprocessors/clear*.py``):

- a cell's source is split at ``\n``; a line that *contains* ``BEGIN SOLUTION`` opens a
  solution region, a line containing ``END SOLUTION`` closes it. In a code cell the region,
  both delimiter lines included, becomes the stub ``# YOUR CODE HERE`` /
  ``raise NotImplementedError()``, each line indented like the BEGIN line; in a
  markdown cell it becomes ``YOUR ANSWER HERE``;
- a solution cell (``nbgrader.solution`` in its metadata) without a region becomes the
  stub entirely (markdown: ``YOUR ANSWER HERE``);
- regions between lines containing ``BEGIN HIDDEN TESTS`` and ``END HIDDEN TESTS`` are
  removed, delimiters included, in any cell; so are ``BEGIN MARK SCHEME`` /
  ``END MARK SCHEME`` regions;
- the lines left are joined with ``\n`` (nothing is trimmed), and outputs and execution
  counts are cleared (ClearOutput).

Nothing else changes: the workbook's title is the same in both versions, and the book
tells the two apart in its table of contents (``_toc.yml``) and with a note under the
completed workbook's title (``_ext/course_site.py``). Stricter than nbgrader, which would
still generate something: a region in a cell without the matching nbgrader metadata
(nbgrader refuses that too, by default), nested or unclosed regions, an END without its
BEGIN, and nbgrader's ``AUTOTEST`` lines (not used here) are errors.

Usage: ``python scripts/make_exercises.py`` writes ``exercises/``; ``--check`` writes
nothing and exits 1 if ``exercises/`` is out of date.
"""
from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ("BEGIN SOLUTION", "END SOLUTION")
HIDDEN = ("BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
MARK_SCHEME = ("BEGIN MARK SCHEME", "END MARK SCHEME")
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
TEXT_STUB = ["YOUR ANSWER HERE"]


class MarkerError(ValueError):
    """A solutions notebook whose markers do not pair up or sit in the wrong cell."""


def replace_regions(source: str, delimiters: tuple[str, str], stub: list[str] | None, where: str) -> tuple[str, bool]:
    """Replace every region between lines containing ``delimiters`` by ``stub`` (indented
    like the BEGIN line), or drop it when ``stub`` is None. Returns the new source and
    whether a region was found."""
    begin, end = delimiters
    out: list[str] = []
    inside, found = False, False
    for lineno, line in enumerate(source.split("\n"), start=1):
        if begin in line:
            if inside:
                raise MarkerError(f"{where}, line {lineno}: {begin!r} inside an open region")
            inside, found = True, True
            if stub is not None:
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + s for s in stub)
        elif end in line:
            if not inside:
                raise MarkerError(f"{where}, line {lineno}: {end!r} without its BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: a {begin!r} region is never closed")
    return "\n".join(out), found


def strip_regions(source: str, where: str, *, cell_type: str = "code") -> str:
    """A cell's source with solution regions replaced by the stub and hidden-test and
    mark-scheme regions dropped (no metadata checks: see :func:`student_version`)."""
    source, _ = replace_regions(source, SOLUTION, CODE_STUB if cell_type == "code" else TEXT_STUB, where)
    source, _ = replace_regions(source, HIDDEN, None, where)
    source, _ = replace_regions(source, MARK_SCHEME, None, where)
    return source


def student_version(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student notebook nbgrader's ``generate_assignment`` makes of one solutions
    notebook (cell sources, outputs and execution counts; nbgrader's own metadata aside)."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        grader = cell.get("metadata", {}).get("nbgrader", {})
        if "AUTOTEST" in cell.source:
            raise MarkerError(f"{where}: nbgrader's AUTOTEST lines are not supported here")
        stub = CODE_STUB if cell.cell_type == "code" else TEXT_STUB
        source, solution = replace_regions(cell.source, SOLUTION, stub, where)
        if solution and not grader.get("solution"):
            raise MarkerError(f"{where}: a solution region in a cell without nbgrader's solution metadata")
        if grader.get("solution") and not solution:
            source = "\n".join(stub)
        source, hidden = replace_regions(source, HIDDEN, None, where)
        if hidden and not grader.get("grade"):
            raise MarkerError(f"{where}: hidden tests in a cell without nbgrader's grade metadata")
        source, scheme = replace_regions(source, MARK_SCHEME, None, where)
        if scheme and not grader.get("task"):
            raise MarkerError(f"{where}: a mark scheme in a cell without nbgrader's task metadata")
        cell.source = source
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    return nb


def render(nb: nbformat.NotebookNode) -> str:
    return nbformat.writes(nb, version=4) + "\n"


def expected_exercises() -> dict[Path, str]:
    """What ``exercises/`` must hold now: path → file text."""
    result = {}
    for source in sorted((ROOT / "solutions").glob("*.ipynb")):
        nb = nbformat.read(source, as_version=4)
        result[ROOT / "exercises" / source.name] = render(student_version(nb, source.name))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether exercises/ is up to date")
    args = parser.parse_args(argv)
    expected = expected_exercises()
    existing = set((ROOT / "exercises").glob("*.ipynb"))
    stale = sorted(str(p.relative_to(ROOT)) for p, text in expected.items()
                   if not p.exists() or p.read_text() != text)
    extra = sorted(str(p.relative_to(ROOT)) for p in existing - set(expected))
    if args.check:
        if stale or extra:
            print("exercises/ is out of date; run `make exercises`.", file=sys.stderr)
            for p in stale:
                print(f"  differs from its solutions source: {p}", file=sys.stderr)
            for p in extra:
                print(f"  has no solutions source: {p}", file=sys.stderr)
            return 1
        print(f"exercises/ is up to date ({len(expected)} workbook(s)).")
        return 0
    (ROOT / "exercises").mkdir(exist_ok=True)
    for path, text in expected.items():
        path.write_text(text)
    for path in extra:
        path.unlink()
    print(f"wrote {len(expected)} workbook(s) to exercises/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
