"""Workbooks follow nbgrader's conventions so an instructor can grade ``solutions/``
unchanged, and every exercise says how hard, how important and how long it is."""
import re

import pytest

from repo import ROOT, read

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_nbgrader_metadata_matches_the_markers(path):
    grade_ids = []
    points = 0
    for index, cell in enumerate(read(path).cells):
        grader = cell.metadata.get("nbgrader")
        has_solution = "### BEGIN SOLUTION" in cell.source
        has_hidden = "### BEGIN HIDDEN TESTS" in cell.source
        if has_solution:
            assert grader and grader["solution"] and not grader["grade"], f"cell {index}: answer cell without nbgrader solution metadata"
        if has_hidden:
            assert grader and grader["grade"] and grader["points"] > 0, f"cell {index}: test cell without points"
            assert grader["locked"], f"cell {index}: test cells are locked"
        if grader:
            assert grader.get("schema_version") == 3
            grade_ids.append(grader["grade_id"])
            points += grader.get("points", 0)
    assert len(grade_ids) == len(set(grade_ids)), "grade_id values must be unique"
    assert points > 0


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_exercises_state_difficulty_importance_and_minutes(path):
    nb = read(path)
    headers = [c.source for c in nb.cells if c.cell_type == "markdown" and re.match(r"## Exercise \d+", c.source)]
    assert 5 <= len(headers) <= 8, f"{path.name}: {len(headers)} exercises; a workbook has 5 to 8"
    for header in headers:
        title = header.splitlines()[0]
        assert "**Difficulty**" in header and "**Importance**" in header, title
        assert re.search(r"\*\*About \d+ minutes\*\*", header), title
        assert re.search(r"\*\*\d+ points?\*\*", header), title
    assert "(solutions)" in nb.cells[0].source, "the title says which version this is"
    solution_cells = [c for c in nb.cells if "### BEGIN SOLUTION" in c.source]
    assert len(solution_cells) >= len(headers), "every exercise has an answer cell"
