"""Workbooks follow nbgrader's conventions so an instructor can grade ``solutions/``
unchanged, and every exercise says how hard, how important and how long it is."""
import re

import pytest
import yaml

from mesakit.checks import ReferenceUsedError
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
    assert "(solutions)" not in nb.cells[0].source, (
        "one title for both versions: nbgrader copies it unchanged into the student version, which must be "
        "exercises/ (the book's table of contents says which version a page is)")
    solution_cells = [c for c in nb.cells if "### BEGIN SOLUTION" in c.source]
    assert len(solution_cells) >= len(headers), "every exercise has an answer cell"


def test_the_table_of_contents_says_which_version_each_workbook_page_is():
    entries = []

    def walk(node):
        if isinstance(node, dict):
            if str(node.get("file", "")).startswith(("exercises/", "solutions/")):
                entries.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
    walk(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert entries, "the workbooks are in the book"
    for entry in entries:
        version = entry["file"].split("/")[0]
        assert version in entry.get("title", ""), f"{entry['file']}: its toc title must say '{version}'"


# ------------------------------------------------ hidden tests: no passing by calling mesakit

RERUN = re.compile(r"^with checks\.forbid_reference\((?P<refs>[^)]*)\):\n(?P<body>(?:    .*(?:\n|$))+)", re.M)
CHECKED = re.compile(r"checks\.check_\w+\((\w+)\)")


def _hidden(source: str) -> str:
    return "\n".join(re.findall(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", source, re.S))


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_check_is_rerun_without_mesakits_reference_in_hidden_tests(path):
    for index, cell in enumerate(read(path).cells):
        visible = CHECKED.search(cell.source.split("### BEGIN HIDDEN TESTS")[0])
        if cell.cell_type != "code" or not visible:
            continue
        rerun = RERUN.search(_hidden(cell.source))
        assert rerun, f"cell {index}: the check of {visible.group(1)} has no hidden rerun under forbid_reference"
        assert CHECKED.search(rerun.group("body")).group(1) == visible.group(1), f"cell {index}"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_hidden_tests_fail_an_answer_that_calls_the_reference_and_pass_the_solution(path):
    """Runs each workbook's answers (the solution cells, after the setup and import cells)
    and each hidden rerun: the completed answer passes; an answer that hands its arguments
    to the check's own reference fails with ReferenceUsedError (and one that hands them to
    any other listed reference fails too)."""
    nb = read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    namespace: dict = {}
    for cell in code[:2]:                                  # setup, imports
        exec(compile(cell.source, f"{path.name}:setup", "exec"), namespace)
    reruns = 0
    for index, cell in enumerate(nb.cells):
        grader = cell.metadata.get("nbgrader", {})
        if grader.get("solution") and cell.cell_type == "code":
            exec(compile(cell.source, f"{path.name}:cell{index}", "exec"), namespace)
        rerun = RERUN.search(_hidden(cell.source)) if grader.get("grade") else None
        if rerun is None:
            continue
        block = compile(rerun.group(0), f"{path.name}:cell{index}:hidden", "exec")
        exec(block, namespace)                             # the completed answer passes
        name = CHECKED.search(rerun.group("body")).group(1)
        answer = namespace[name]
        for k, expression in enumerate(e.strip() for e in rerun.group("refs").split(",")):
            reference = eval(expression, namespace)
            namespace[name] = lambda *args, _ref=reference, **kwargs: _ref(*args, **kwargs)
            # The first reference is the check's own, with the answer's signature; the others
            # (batched variants, helpers) may not even accept its arguments: then the rerun
            # fails as a wrong answer, which is still a failed hidden test.
            expected = (ReferenceUsedError, re.escape(expression.split(".")[-1])) if k == 0 else (AssertionError, None)
            with pytest.raises(expected[0], match=expected[1]):
                exec(block, namespace)
        namespace[name] = answer
        reruns += 1
    assert reruns >= 5, f"{path.name}: only {reruns} hidden reruns found"


def test_the_completed_workbook_page_says_what_it_is(tmp_path):
    """Both versions share their title (nbgrader copies it), so the book's extension puts a
    note under the title of every page in solutions/, linking the student version. Built
    here on a two-page Sphinx project, warnings as errors."""
    import subprocess
    import sys

    (tmp_path / "conf.py").write_text(f"import sys\nsys.path.insert(0, {str(ROOT / '_ext')!r})\n"
                                      "extensions = ['course_site']\n")
    (tmp_path / "index.rst").write_text("Home\n====\n\n.. toctree::\n\n   exercises/wb\n   solutions/wb\n")
    for version in ("exercises", "solutions"):
        (tmp_path / version).mkdir()
        (tmp_path / version / "wb.rst").write_text(f"Workbook 1\n==========\n\n{version} text\n")
    result = subprocess.run([sys.executable, "-m", "sphinx", "-q", "-W", "-b", "html", str(tmp_path),
                             str(tmp_path / "_out")], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    solutions = (tmp_path / "_out" / "solutions" / "wb.html").read_text()
    assert "Completed workbook." in solutions and 'href="../exercises/wb.html"' in solutions
    assert "Completed workbook." not in (tmp_path / "_out" / "exercises" / "wb.html").read_text()
