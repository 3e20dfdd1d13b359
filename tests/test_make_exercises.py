"""The generator that makes student workbooks from solutions, and the promise it keeps:
``exercises/`` is what nbgrader's ``generate_assignment`` makes of ``solutions/``."""
import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from repo import ROOT, read

sys.path.insert(0, str(ROOT / "scripts"))
import make_exercises as gen  # noqa: E402

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
HAVE_NBGRADER = importlib.util.find_spec("nbgrader") is not None


def test_solution_becomes_indented_stub_and_hidden_tests_vanish():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nok = check(f)\n### BEGIN HIDDEN TESTS\nassert ok\n### END HIDDEN TESTS"
    out = gen.strip_regions(src, "test")
    assert out == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nok = check(f)"


@pytest.mark.parametrize("src", [
    "### BEGIN SOLUTION\nx = 1",
    "### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION",
    "### BEGIN HIDDEN TESTS\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS",
    "### BEGIN HIDDEN TESTS\nx = 1",
])
def test_unpaired_markers_are_errors(src):
    with pytest.raises(gen.MarkerError):
        gen.strip_regions(src, "test")


SOLUTION_META = {"nbgrader": {"grade": False, "grade_id": "a", "locked": False, "schema_version": 3,
                              "solution": True, "task": False}}
TEST_META = {"nbgrader": {"grade": True, "grade_id": "t", "locked": True, "points": 1, "schema_version": 3,
                          "solution": False, "task": False}}


def test_student_version_clears_outputs_and_markdown_answers_and_keeps_the_title():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Workbook 1"),
        nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="hi")], metadata=SOLUTION_META),
        nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"nbgrader": {**SOLUTION_META["nbgrader"],
                                                                                   "grade_id": "m"}}),
    ])
    student = gen.student_version(nb, "t.ipynb")
    assert student.cells[0].source == "# Workbook 1", "nbgrader changes no title, so neither do we"
    assert student.cells[1].source == "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.cells[2].source == "YOUR ANSWER HERE"
    assert nb.cells[1].source.startswith("x = 1\n### BEGIN"), "the source notebook is not modified"


@pytest.mark.parametrize("cell", [
    nbformat.v4.new_code_cell("### BEGIN SOLUTION\nx = 1\n### END SOLUTION"),
    nbformat.v4.new_code_cell("ok = 1\n### BEGIN HIDDEN TESTS\nassert ok\n### END HIDDEN TESTS"),
], ids=["solution-without-metadata", "hidden-tests-without-metadata"])
def test_regions_need_nbgrader_metadata(cell):
    with pytest.raises(gen.MarkerError, match="metadata"):
        gen.student_version(nbformat.v4.new_notebook(cells=[cell]), "t.ipynb")


# ------------------------------------------------------------------ what nbgrader does

def nbgrader_rules(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell type, source) of every cell of the student version, by nbgrader's documented
    rules, written here independently of ``scripts/make_exercises.py``: nbgrader 0.9's
    ``ClearSolutions``, ``ClearHiddenTests`` and ``ClearMarkScheme`` preprocessors, which
    ``nbgrader generate_assignment`` runs in that order (nbgrader user guide, "Creating and
    grading assignments": "Autograded answer" cells and "Autograder tests" cells;
    ``nbgrader/preprocessors/clearsolutions.py``, ``clearhiddentests.py``):

    * "a line containing ``BEGIN SOLUTION``" starts a solution region and "a line
      containing ``END SOLUTION``" ends it; in code the region becomes
      ``ClearSolutions.code_stub['python']`` = ``# YOUR CODE HERE\\nraise NotImplementedError()``,
      indented like the BEGIN line; in markdown, ``ClearSolutions.text_stub`` =
      ``YOUR ANSWER HERE``;
    * a solution cell with no region is replaced by the stub as a whole;
    * the lines from one containing ``BEGIN HIDDEN TESTS`` to one containing
      ``END HIDDEN TESTS`` are removed (likewise ``BEGIN/END MARK SCHEME``);
    * sources are split and joined on ``\\n``.

    This is the comparison when nbgrader is not installed; when it is, a test checks that
    these rules and nbgrader agree on every workbook."""
    cells = []
    for cell in nb.cells:
        solution_cell = bool(cell.metadata.get("nbgrader", {}).get("solution"))
        stub = ["# YOUR CODE HERE", "raise NotImplementedError()"] if cell.cell_type == "code" else ["YOUR ANSWER HERE"]
        lines, kept, skipping, replaced = cell.source.split("\n"), [], None, False
        for line in lines:
            if skipping is None and "BEGIN SOLUTION" in line:
                skipping, replaced = "END SOLUTION", True
                kept += [line[: len(line) - len(line.lstrip())] + s for s in stub]
            elif skipping is None and "BEGIN HIDDEN TESTS" in line:
                skipping = "END HIDDEN TESTS"
            elif skipping is None and "BEGIN MARK SCHEME" in line:
                skipping = "END MARK SCHEME"
            elif skipping is not None and skipping in line:
                skipping = None
            elif skipping is None:
                kept.append(line)
        source = "\n".join(stub) if solution_cell and not replaced else "\n".join(kept)
        cells.append((cell.cell_type, source))
    return cells


@pytest.fixture(scope="module")
def nbgrader_release(tmp_path_factory) -> dict[str, nbformat.NotebookNode] | None:
    """The student versions ``nbgrader generate_assignment`` writes for every workbook in
    ``solutions/`` (one assignment holding them all), or None without nbgrader."""
    if not HAVE_NBGRADER:
        return None
    course = tmp_path_factory.mktemp("nbgrader-course")
    source = course / "source" / "workbooks"
    source.mkdir(parents=True)
    for path in SOLUTIONS:
        (source / path.name).write_bytes(path.read_bytes())
    (course / "nbgrader_config.py").write_text('c = get_config()\nc.CourseDirectory.course_id = "course"\n')
    env = dict(os.environ)
    # nbgrader runs `alembic` (installed beside it) to create its gradebook.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["JUPYTER_CONFIG_DIR"] = str(course / ".jupyter")     # no personal nbgrader configuration
    result = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "workbooks", "--force",
                             f"--CourseDirectory.root={course}"], cwd=course, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {p.name: read(course / "release" / "workbooks" / p.name) for p in SOLUTIONS}


def _cells(nb) -> list[tuple[str, str]]:
    return [(c.cell_type, c.source) for c in nb.cells]


def _first_difference(got, expected) -> str:
    if len(got) != len(expected):
        return f"{len(got)} cells, expected {len(expected)}"
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            return f"cell {i} differs:\n--- exercises/\n{g[1]}\n--- expected\n{e[1]}"
    return ""


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_exercises_are_what_nbgrader_generates(path, nbgrader_release):
    """``exercises/NAME`` has, cell for cell, the sources nbgrader generates from
    ``solutions/NAME`` (nbgrader itself when installed, else its rules above)."""
    expected = _cells(nbgrader_release[path.name]) if nbgrader_release else nbgrader_rules(read(path))
    got = _cells(read(ROOT / "exercises" / path.name))
    assert got == expected, _first_difference(got, expected)
    for cell in read(ROOT / "exercises" / path.name).cells:
        assert cell.cell_type != "code" or (cell.outputs == [] and cell.execution_count is None)


@pytest.mark.skipif(not HAVE_NBGRADER, reason="nbgrader is not installed (pip install nbgrader)")
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_the_rules_written_here_are_nbgraders(path, nbgrader_release):
    """The fallback comparison is only as good as its rules: with nbgrader installed, they
    must give what nbgrader gives."""
    assert nbgrader_rules(read(path)) == _cells(nbgrader_release[path.name])


@pytest.mark.skipif(not HAVE_NBGRADER, reason="nbgrader is not installed (pip install nbgrader)")
def test_the_generator_agrees_with_nbgraders_preprocessors_on_edge_cases():
    from nbgrader.preprocessors import ClearHiddenTests, ClearMarkScheme, ClearSolutions

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"language": "python", "name": "python3",
                                                           "display_name": "Python 3"}}, cells=[
        nbformat.v4.new_markdown_cell("# Title (solutions)\n\ntext"),
        nbformat.v4.new_code_cell("def f():\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n",
                                  metadata=SOLUTION_META),
        nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {**SOLUTION_META["nbgrader"], "grade_id": "b"}}),
        nbformat.v4.new_code_cell("ok = f()\n\n### BEGIN HIDDEN TESTS\nassert ok\n### END HIDDEN TESTS\n",
                                  metadata=TEST_META),
        nbformat.v4.new_markdown_cell("Answer:\n### BEGIN SOLUTION\n42\n### END SOLUTION\nend",
                                      metadata={"nbgrader": {**SOLUTION_META["nbgrader"], "grade_id": "m"}}),
    ])
    expected = copy.deepcopy(nb)
    resources = {}
    for preprocessor in (ClearSolutions(), ClearHiddenTests(), ClearMarkScheme()):
        expected, resources = preprocessor.preprocess(expected, resources)
    assert _cells(gen.student_version(nb, "t.ipynb")) == _cells(expected)
    assert nbgrader_rules(nb) == _cells(expected)
