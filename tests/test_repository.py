"""Repository-wide rules: clean notebooks, a table of contents that matches the files,
setup cells that install from the configured repository, exercises generated from
solutions, and lesson notebooks that follow the course's anatomy."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from repo import ROOT, config, first_code_cell, lesson_notebooks, notebooks, read, toc_files

ALL_NOTEBOOKS = notebooks()
IDS = [str(p.relative_to(ROOT)) for p in ALL_NOTEBOOKS]


def test_there_are_notebooks():
    assert len(lesson_notebooks()) >= 3, "Chapter 1 has three lessons"
    assert (ROOT / "solutions" / "01_selection_vs_control.ipynb").exists()
    assert (ROOT / "exercises" / "01_selection_vs_control.ipynb").exists()


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=IDS)
def test_notebook_is_committed_clean(path):
    dirty = [i for i, c in enumerate(read(path).cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} carry outputs or execution counts; clear them"


def test_every_notebook_is_in_the_toc_and_every_entry_exists():
    listed = set(toc_files())
    missing_from_toc = [str(p.relative_to(ROOT).with_suffix("")) for p in ALL_NOTEBOOKS
                        if str(p.relative_to(ROOT).with_suffix("")) not in listed]
    assert not missing_from_toc, f"notebooks not in _toc.yml: {missing_from_toc}"
    dangling = [f for f in listed
                if not any((ROOT / f).with_suffix(ext).exists() for ext in (".md", ".ipynb"))]
    assert not dangling, f"_toc.yml entries with no file: {dangling}"


def test_setup_cells_install_from_the_configured_repository_and_are_identical():
    url = config()["repository"]["url"].rstrip("/")
    setups = {str(p.relative_to(ROOT)): first_code_cell(read(p)) for p in ALL_NOTEBOOKS}
    wrong = [name for name, src in setups.items() if f'"git+{url}"' not in src]
    assert not wrong, f"setup cells that do not install git+{url}: {wrong}"
    assert len(set(setups.values())) == 1, "every notebook must start with the same setup cell"


def test_exercises_are_generated_from_solutions():
    result = subprocess.run([sys.executable, "scripts/make_exercises.py", "--check"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", lesson_notebooks(), ids=lambda p: p.name)
def test_lesson_follows_the_anatomy(path):
    nb = read(path)
    text = "\n".join(c.source for c in nb.cells)
    markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
    assert markdown[0].lstrip().startswith("# "), "a lesson starts with its title"
    assert sum(line.startswith("# ") for m in markdown for line in m.splitlines()) == 1, "one H1"
    assert "{glue:" in text and "mk.glue(" in text, "results in prose are glued from the run"
    assert re.search(r"^assert ", text, re.M), "a check cell asserts the lesson's claims"
    assert "{exercise}" in text and "{solution}" in text, "questions for the reader"
    assert "Key takeaways" in text
    assert "{cite}" in text and "{term}" in text


def test_glued_names_are_defined_before_use_and_unique():
    """Every ``{glue:...}`name``` in prose refers to a value glued in an earlier cell.
    A name built with an f-string (``mk.glue(f"bandit_total_{key}", ...)``) counts as
    defining every name with its literal prefix, and a name held in a variable
    (``mk.glue(name, ...)``) as defining any name from there on: the strict book build
    catches a wrong one of those."""
    defined_anywhere: dict[str, str] = {}
    for path in ALL_NOTEBOOKS:
        defined: set[str] = set()
        prefixes: set[str] = set()
        dynamic = False
        for cell in read(path).cells:
            if cell.cell_type == "code":
                for name in re.findall(r"mk\.glue\(\s*[\"']([A-Za-z0-9_]+)[\"']", cell.source):
                    assert name not in defined_anywhere, f"glue name {name!r} used in {path.name} and {defined_anywhere[name]}"
                    defined_anywhere[name] = path.name
                    defined.add(name)
                prefixes.update(re.findall(r"mk\.glue\(\s*f[\"']([A-Za-z0-9_]*)\{", cell.source))
                dynamic = dynamic or bool(re.search(r"mk\.glue\(\s*[A-Za-z_]", cell.source))
            else:
                for name in re.findall(r"\{glue:\w+\}`([A-Za-z0-9_]+)", cell.source):
                    known = dynamic or name in defined or any(p and name.startswith(p) for p in prefixes)
                    assert known, f"{path.name}: glue {name!r} is used before it is computed"


def _echoes_a_value(source: str) -> bool:
    """True when a cell's last statement is an expression whose value Jupyter would show
    (no trailing ';'), other than a call that draws or shows something."""
    import ast
    import io
    import tokenize
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    if not tree.body or not isinstance(tree.body[-1], ast.Expr):
        return False
    segment = ast.get_source_segment(source, tree.body[-1]) or ""
    if segment.startswith(("plt.show", "frame_player", "display(", "print(")):
        return False
    tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
              if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.ENDMARKER,
                                tokenize.INDENT, tokenize.DEDENT)]
    return not (tokens and tokens[-1].string == ";")


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=IDS)
def test_figure_cells_do_not_echo_a_value(path):
    """A figure cell (myst-nb caption) that also echoes its last value gets a second
    output, and the book then names two targets alike (a strict-build warning)."""
    bad = [i for i, c in enumerate(read(path).cells)
           if c.cell_type == "code" and "mystnb" in c.metadata and _echoes_a_value(c.source)]
    assert not bad, f"{path.name}: figure cells {bad} end with a bare expression; end it with ';'"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=IDS)
def test_figure_cells_carry_alt_text_where_myst_nb_reads_it(path):
    """myst-nb reads a figure's alt text from cell metadata ``mystnb.image.alt``; an
    ``image`` key elsewhere is silently ignored and the page gets a file name as alt."""
    bad = [i for i, c in enumerate(read(path).cells) if c.cell_type == "code"
           and ("image" in c.metadata
                or ("figure" in c.metadata.get("mystnb", {})
                    and not str(c.metadata["mystnb"].get("image", {}).get("alt", "")).strip()))]
    assert not bad, f"{path.name}: cells {bad} need metadata mystnb.image.alt (real alt text)"
