"""The generator that makes student workbooks from solutions."""
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
import make_exercises as gen  # noqa: E402


def test_solution_becomes_indented_stub_and_hidden_tests_vanish():
    src = "def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n\nok = check(f)\n### BEGIN HIDDEN TESTS\nassert ok\n### END HIDDEN TESTS"
    out = gen.strip_regions(src, "test")
    assert out == "def f(x):\n    # YOUR CODE HERE\n    raise NotImplementedError()\n\nok = check(f)"


@pytest.mark.parametrize("src", [
    "### BEGIN SOLUTION\nx = 1",
    "### END SOLUTION",
    "### BEGIN SOLUTION\n### BEGIN HIDDEN TESTS\n### END HIDDEN TESTS\n### END SOLUTION",
    "### BEGIN HIDDEN TESTS\n### END SOLUTION",
])
def test_unpaired_markers_are_errors(src):
    with pytest.raises(gen.MarkerError):
        gen.strip_regions(src, "test")


def test_student_version_clears_outputs_and_markdown_answers():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Workbook (solutions)"),
        nbformat.v4.new_code_cell("x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION", execution_count=3,
                                  outputs=[nbformat.v4.new_output("stream", text="hi")]),
        nbformat.v4.new_markdown_cell("The answer is 42.", metadata={"nbgrader": {"solution": True}}),
    ])
    student = gen.student_version(nb, "t.ipynb")
    assert student.cells[0].source == "# Workbook (exercises)"
    assert student.cells[1].source == "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()"
    assert student.cells[1].outputs == [] and student.cells[1].execution_count is None
    assert student.cells[2].source == "YOUR ANSWER HERE"
    assert nb.cells[1].source.startswith("x = 1\n### BEGIN"), "the source notebook is not modified"
