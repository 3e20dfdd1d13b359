"""Write the configuration of the student website for a graded class: the same book
without the completed workbooks (``solutions/``) and with every solution of the
lessons' questions left out of the pages (sphinx-exercise's ``hide_solutions``). The
student workbooks in ``exercises/`` carry no answers and no hidden tests already.

    python scripts/student_book.py OUT_DIR   # writes OUT_DIR/_config.yml and OUT_DIR/_toc.yml

``make book-student`` runs it and builds the site into ``_build/student/html``.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def without_solutions(node):
    """The toc with every entry under ``solutions/`` removed."""
    if isinstance(node, dict):
        return {k: without_solutions(v) for k, v in node.items()}
    if isinstance(node, list):
        return [without_solutions(x) for x in node
                if not (isinstance(x, dict) and str(x.get("file", "")).startswith("solutions/"))]
    return node


def main(out: Path) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["title"] = f"{config['title']} (student edition)"
    config.setdefault("sphinx", {}).setdefault("config", {})["hide_solutions"] = True
    # Paths in the configuration are relative to the book's root, not to OUT_DIR.
    config["bibtex_bibfiles"] = [str(ROOT / f) for f in config.get("bibtex_bibfiles", [])]
    # Reuse the main book's executed notebooks instead of running them again.
    config.setdefault("execute", {})["cache"] = str(ROOT / "_build" / ".jupyter_cache")
    local = config["sphinx"].get("local_extensions", {})
    config["sphinx"]["local_extensions"] = {name: str(ROOT / path) for name, path in local.items()}
    toc = without_solutions(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    out.mkdir(parents=True, exist_ok=True)
    (out / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    (out / "_toc.yml").write_text(yaml.safe_dump(toc, sort_keys=False))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
