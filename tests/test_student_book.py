"""The student edition for a graded class: no completed workbooks in its table of
contents, solutions hidden in the lessons, the main book's executed notebooks reused."""
import subprocess
import sys

import yaml

from repo import ROOT, toc_files


def test_student_config_drops_solutions_and_hides_answers(tmp_path):
    subprocess.run([sys.executable, "scripts/student_book.py", str(tmp_path)], cwd=ROOT, check=True)
    toc = yaml.safe_load((tmp_path / "_toc.yml").read_text())
    config = yaml.safe_load((tmp_path / "_config.yml").read_text())
    assert "solutions/" not in yaml.safe_dump(toc)
    assert any(f.startswith("solutions/") for f in toc_files()), "the main book does list them"
    assert "exercises/01_selection_vs_control" in yaml.safe_dump(toc)
    assert config["sphinx"]["config"]["hide_solutions"] is True
    assert config["execute"]["cache"] == str(ROOT / "_build" / ".jupyter_cache")
    assert all((ROOT / "references.bib").samefile(f) for f in config["bibtex_bibfiles"])


def test_student_workbooks_carry_no_answers_or_hidden_tests():
    for path in (ROOT / "exercises").glob("*.ipynb"):
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
            assert marker not in text, f"{path.name} contains {marker!r}"
