#!/usr/bin/env python3
"""Generate the student workbooks in ``exercises/`` from the completed ones in ``solutions/``.

``solutions/`` is the single source. In code cells, the lines between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` become a stub that raises ``NotImplementedError`` (nbgrader's
convention, so the checks report "not implemented yet"), and the lines between
``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS`` are dropped. Markdown cells that
nbgrader marks as solutions become "YOUR ANSWER HERE". The word "(solutions)" in the
first cell becomes "(exercises)". Outputs and execution counts are cleared.

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
BEGIN_SOLUTION, END_SOLUTION = "### BEGIN SOLUTION", "### END SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"
STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]


class MarkerError(ValueError):
    """A solutions notebook whose markers do not pair up."""


def strip_regions(source: str, where: str) -> str:
    """Replace solution regions by the stub and drop hidden-test regions."""
    out: list[str] = []
    mode = None  # None, "solution" or "hidden"
    for lineno, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker in (BEGIN_SOLUTION, BEGIN_HIDDEN):
            if mode is not None:
                raise MarkerError(f"{where}, line {lineno}: {marker!r} inside an open region")
            mode = "solution" if marker == BEGIN_SOLUTION else "hidden"
            if mode == "solution":
                indent = line[: len(line) - len(line.lstrip())]
                out.extend(indent + stub for stub in STUB)
            continue
        if marker in (END_SOLUTION, END_HIDDEN):
            expected = END_SOLUTION if mode == "solution" else END_HIDDEN
            if marker != expected:
                raise MarkerError(f"{where}, line {lineno}: {marker!r} without its BEGIN")
            mode = None
            continue
        if mode is None:
            out.append(line)
    if mode is not None:
        raise MarkerError(f"{where}: a {mode} region is never closed")
    return "\n".join(out).rstrip("\n")


def student_version(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """The student notebook made from one solutions notebook."""
    nb = copy.deepcopy(nb)
    for index, cell in enumerate(nb.cells):
        where = f"{name}, cell {index}"
        grader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type == "code":
            cell.source = strip_regions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown" and grader.get("solution"):
            cell.source = "YOUR ANSWER HERE"
        if index == 0:
            cell.source = cell.source.replace("(solutions)", "(exercises)")
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
