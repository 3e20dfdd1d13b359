"""Automatic checks for the workbooks' exercises.

Each workbook has one module here (``ch01`` for Chapter 1). A check runs the learner's
function and the reference from mesakit on the same seeded inputs and prints one clear
line: a pass, a hint naming what went wrong (an exception, a wrong shape, a wrong value),
or "not implemented yet" for the stub the student version starts with. It never lets a
traceback escape, and returns a truthy/falsy :class:`CheckResult` so a notebook can skip
experiments that need an unfinished function.
"""
from .core import CheckResult, Case, Diagnosis, compare_tensors, run_check, same_as

__all__ = ["CheckResult", "Case", "Diagnosis", "run_check", "compare_tensors", "same_as"]
