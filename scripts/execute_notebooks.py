"""Execute every notebook of the course once, two at a time, and store the results in the
book's execution cache, so that the book build that follows reuses them.

This is the notebook test of ``make test``: a notebook passes when every cell runs
without an error (its check cells assert the lesson's claims), and the script prints
each notebook's execution time. Storing the executed notebooks in jupyter-cache
(``_build/.jupyter_cache``, where myst-nb looks in ``execute_notebooks: cache`` mode) lets
one execution serve both the test and the website, instead of running every notebook
twice.

A notebook whose code is unchanged is not executed again, unless the ``mesakit``
package changed since the cache was filled: its source is hashed, and a new hash clears
the cache, so a change to the package re-executes every page.

The kernels run with ``MESAKIT_PROGRESS=0`` (no progress widgets in the static pages)
and ``MESAKIT_BOOK=1`` (``mk.glue`` records values for the book instead of printing
them), on one thread.

    python scripts/execute_notebooks.py                   # every notebook in the toc dirs
    python scripts/execute_notebooks.py chapters/02_mesa_learning/*.ipynb --jobs 1
"""
from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "_build" / ".jupyter_cache"
STAMP = ROOT / "_build" / ".mesakit-source-hash"
NOTEBOOK_DIRS = ("chapters", "exercises", "solutions")
KERNEL_ENV = {"MESAKIT_PROGRESS": "0", "MESAKIT_BOOK": "1", "OMP_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}


def mesakit_hash() -> str:
    """A hash of everything the notebooks import from this repository."""
    digest = hashlib.sha256()
    for path in sorted((ROOT / "mesakit").rglob("*.py")) + [ROOT / "pyproject.toml"]:
        digest.update(str(path.relative_to(ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def invalidate_if_mesakit_changed() -> bool:
    """Clear the execution cache when mesakit's source differs from the one the cache
    was filled with. Returns True when it cleared it."""
    current = mesakit_hash()
    if STAMP.exists() and STAMP.read_text().strip() == current:
        return False
    cleared = CACHE.exists()
    shutil.rmtree(CACHE, ignore_errors=True)
    STAMP.parent.mkdir(parents=True, exist_ok=True)
    STAMP.write_text(current + "\n")
    return cleared


KERNEL_START_ATTEMPTS = 3


def execute(path: str, timeout: int) -> tuple[str, dict, float, str | None]:
    """Run one notebook in a fresh kernel, in its own folder (as the book does)."""
    from jupyter_cache.executors.utils import single_nb_execution

    os.environ.update(KERNEL_ENV)
    for attempt in range(KERNEL_START_ATTEMPTS):
        nb = nbformat.read(path, as_version=4)
        try:
            result = single_nb_execution(nb, cwd=str(Path(path).parent), timeout=timeout,
                                         allow_errors=False, meta_override=True)
            break
        except RuntimeError as exc:
            # Two kernels started at the same moment can pick the same free TCP port
            # (jupyter_client reserves none), and the loser dies before it replies:
            # that is a failed start, not a failing notebook, so start it again.
            if "Kernel died before replying" not in str(exc) or attempt == KERNEL_START_ATTEMPTS - 1:
                raise
            print(f"kernel for {Path(path).name} failed to start ({exc}); retrying", flush=True)
            time.sleep(1.0 + attempt)
    error = None
    if result.err is not None:
        error = str(result.err).strip()
    return path, result.nb, result.time, error


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    parser.add_argument("--jobs", type=int, default=2, help="notebooks executed at once")
    parser.add_argument("--timeout", type=int, default=int(os.environ.get("CELL_TIMEOUT", 300)),
                        help="per-cell limit in seconds")
    args = parser.parse_args()

    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    paths = [p.resolve() for p in args.notebooks] or sorted(
        p for d in NOTEBOOK_DIRS for p in (ROOT / d).rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    if invalidate_if_mesakit_changed():
        print("mesakit changed since the last execution: every notebook runs again")
    cache = get_cache(str(CACHE))

    todo = []
    for path in paths:
        try:
            cache.match_cache_notebook(nbformat.read(path, as_version=4))
        except KeyError:
            todo.append(path)
        else:
            print(f"cached  {path.relative_to(ROOT)}")

    failed: list[tuple[Path, str]] = []
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = []
        for i, p in enumerate(todo):
            futures.append(pool.submit(execute, str(p), args.timeout))
            if i < args.jobs - 1:
                time.sleep(3.0)   # stagger the first kernels' starts (see execute)
        for future in as_completed(futures):
            path, nb, seconds, error = future.result()
            rel = Path(path).relative_to(ROOT)
            if error is None:
                record = cache.add_nb_to_project(path)
                cache.cache_notebook_bundle(CacheBundleIn(nb, record.uri, data={"execution_seconds": seconds}),
                                            check_validity=False, overwrite=True)
                print(f"PASSED  {seconds:6.1f} s  {rel}", flush=True)
            else:
                failed.append((rel, error))
                print(f"FAILED  {seconds:6.1f} s  {rel}", flush=True)
    for rel, error in failed:
        print(f"\n===== {rel} =====\n{error}", file=sys.stderr)
    print(f"executed {len(todo)} notebook(s) in {time.perf_counter() - start:.0f} s "
          f"({len(paths) - len(todo)} cached)")
    print(f"{len(paths) - len(failed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
