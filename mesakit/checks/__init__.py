"""Automatic checks for the workbooks' exercises.

Each workbook has one module here (``ch01`` for Chapter 1). A check runs the learner's
function and the reference from mesakit on the same seeded inputs and prints one clear
line: a pass, a hint naming what went wrong (an exception, a wrong shape, a wrong value),
or "not implemented yet" for the stub the student version starts with. It never lets a
traceback escape, and returns a truthy/falsy :class:`CheckResult` so a notebook can skip
experiments that need an unfinished function.

The workbooks' hidden tests rerun each check inside :func:`forbid_reference`, so an
answer that only calls mesakit's own reference fails the graded test.
"""
from .core import (CheckResult, Case, Diagnosis, ReferenceUsedError, compare_tensors, forbid_reference,
                   run_check, same_as)

__all__ = ["CheckResult", "Case", "Diagnosis", "run_check", "compare_tensors", "same_as", "forbid_reference",
           "ReferenceUsedError"]
