"""The machinery every exercise check shares: run on seeded cases, compare, explain."""
from __future__ import annotations

import contextvars
import functools
import inspect
import linecache
import sys
import os
import sysconfig
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import torch

NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class Case:
    """One seeded input to a check: positional and keyword arguments, a short
    description shown in hints (e.g. "3 instances of 5 items"), and, for a case built to
    catch one mistake, ``hint``: what it tests, shown when the learner fails on it and no
    diagnosis names the mistake more precisely."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    description: str = ""
    hint: str = ""


#: A diagnosis looks at a wrong answer and the case's inputs and returns a sentence naming
#: the mistake it recognizes, or None. Built with :func:`same_as` for a known wrong variant.
Diagnosis = Callable[[Any, tuple, dict], "str | None"]


@dataclass(frozen=True)
class CheckResult:
    """The outcome of a check. Truthy only when every case passed; ``status`` is one of
    "passed", "failed", "not implemented"."""

    name: str
    status: str
    message: str

    def __bool__(self) -> bool:
        return self.status == "passed"

    def __repr__(self) -> str:  # what a notebook shows if the result is the cell's value
        return f"CheckResult({self.name!r}, {self.status!r})"


Comparer = Callable[[Any, Any], "str | None"]


def compare_tensors(*, atol: float = 1e-6, rtol: float = 1e-5, dtype_kind: str | None = None) -> Comparer:
    """A comparer for tensor answers: checks type, shape, (optionally) dtype kind —
    "bool", "int" or "float" — and values; returns None when they match, else what differs."""
    if dtype_kind not in (None, "bool", "int", "float"):
        raise ValueError(f"dtype_kind must be one of (None, 'bool', 'int', 'float'), got {dtype_kind!r}")

    def compare(got: Any, expected: torch.Tensor) -> str | None:
        if not isinstance(got, torch.Tensor):
            return f"expected a torch.Tensor, got {type(got).__name__}"
        if tuple(got.shape) != tuple(expected.shape):
            return f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
        if dtype_kind == "bool" and got.dtype != torch.bool:
            return f"expected a bool tensor, got dtype {got.dtype}"
        if dtype_kind == "int" and (got.dtype.is_floating_point or got.dtype == torch.bool):
            return f"expected an integer tensor, got dtype {got.dtype}"
        got_c, exp_c = got.detach().cpu(), expected.detach().cpu()
        if dtype_kind in ("bool", "int") or expected.dtype in (torch.bool,) or not expected.dtype.is_floating_point:
            mismatch = got_c.to(exp_c.dtype) != exp_c
        else:
            mismatch = ~torch.isclose(got_c.double(), exp_c.double(), atol=atol, rtol=rtol)
        if mismatch.any():
            n_bad = int(mismatch.sum())
            first = tuple(int(i) for i in mismatch.nonzero()[0])
            return (f"{n_bad} of {mismatch.numel()} entries differ; first at index {first}: "
                    f"got {got_c[first].item()}, expected {exp_c[first].item()}")
        return None

    return compare


class _SameAs:
    """A diagnosis built by :func:`same_as` (callable like any diagnosis)."""

    def __init__(self, wrong_fn: Callable, hint: str, compare: "Comparer"):
        self.wrong_fn, self.hint, self.compare = wrong_fn, hint, compare

    def explains(self, got: Any, args: tuple, kwargs: dict) -> "bool | None":
        """True when the variant gives ``got`` on this case, False when it gives something
        else, None when it cannot run on the case (no opinion)."""
        try:
            wrong = self.wrong_fn(*_fresh(args), **_fresh(kwargs))
        except Exception:  # the variant cannot run on this case: no opinion
            return None
        return self.compare(got, wrong) is None

    def __call__(self, got: Any, args: tuple, kwargs: dict) -> str | None:
        return self.hint if self.explains(got, args, kwargs) else None


def same_as(wrong_fn: Callable, hint: str, compare: "Comparer") -> Diagnosis:
    """A diagnosis for one known wrong variant: when the learner's answer on a case equals
    what ``wrong_fn`` (the mistake, written on purpose) returns on it, the hint is ``hint``.
    A variant that raises, or that gives the right answer on this case, says nothing.
    The check keeps the hint only if the variant also gives the learner's answer on every
    other case where the learner is wrong (and runs there): see :func:`run_check`."""
    return _SameAs(wrong_fn, hint, compare)


# Where library code lives: a NotImplementedError raised there is a real error, not a stub.
_LIBRARY_DIRS = tuple(sorted({os.path.realpath(p) for p in (
    sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"],
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))),   # mesakit itself
    os.path.dirname(os.path.dirname(os.path.abspath(torch.__file__))),
) if p}))


@functools.lru_cache(maxsize=4096)
def _is_library(filename: str) -> bool:
    if filename.startswith("<frozen "):          # the import machinery
        return True
    path = os.path.realpath(filename)
    return any(path == d or path.startswith(d + os.sep) for d in _LIBRARY_DIRS)


_CHECKS_DIR = os.path.realpath(os.path.dirname(os.path.abspath(__file__)))


@functools.lru_cache(maxsize=4096)
def _is_check(filename: str) -> bool:
    return os.path.realpath(filename).startswith(_CHECKS_DIR + os.sep)


def unfinished_function(exc: NotImplementedError) -> tuple[str, bool] | None:
    """Which of the learner's functions raised ``exc``: ``(name, is_helper)``.

    Walks the traceback: the first frame in learner code (not the standard library, not
    an installed package, not mesakit) is the function under check; the last frame is
    where the error was raised. When they differ, the function under check is finished
    as far as it goes but calls a helper that still raises (``is_helper`` True), and the
    name returned is the helper's. Returns None when the error was raised in library code
    or in compiled code called from the learner's line (a genuine "not implemented" of,
    say, torch on some device), which is a bug to report, not a stub.
    """
    steps = list(traceback.walk_tb(exc.__traceback__))
    if not steps:
        return None
    last_frame, last_line = steps[-1]
    raiser = last_frame.f_code
    if _is_library(raiser.co_filename):
        return None
    line = linecache.getline(raiser.co_filename, last_line, last_frame.f_globals)
    if line.strip() and "raise" not in line:
        return None    # raised from compiled code (torch's C++), called on this line
    own = [f.f_code for f, _ in steps if not _is_library(f.f_code.co_filename)]
    return raiser.co_name, raiser is not own[0]


def _fresh(value: Any) -> Any:
    """A copy of a case's arguments with every tensor cloned, so a function that writes
    into its inputs cannot change what the other function sees."""
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, tuple):
        return tuple(_fresh(v) for v in value)
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    return value


#: The name of the learner's function while a check runs it (see :func:`forbid_reference`).
_LEARNER: contextvars.ContextVar["str | None"] = contextvars.ContextVar("mesakit_learner", default=None)


def _call_learner(learner_fn: Callable, case: Case, name: str | None = None) -> Any:
    """The learner's answer on ``case`` (on fresh copies of its arguments). While it runs,
    :func:`forbid_reference` counts any run of a reference as the learner's."""
    token = _LEARNER.set(name or getattr(learner_fn, "__name__", "your function"))
    try:
        return learner_fn(*_fresh(case.args), **_fresh(case.kwargs))
    finally:
        _LEARNER.reset(token)


def _explains(diagnose: Diagnosis, got: Any, case: Case) -> "bool | None":
    """Whether ``diagnose`` explains the wrong answer ``got`` on ``case``: True, False, or
    None (no opinion: a :func:`same_as` variant that cannot run on the case)."""
    explains = getattr(diagnose, "explains", None)
    if explains is not None:
        return explains(got, case.args, case.kwargs)
    return bool(diagnose(got, case.args, case.kwargs))


def _best_diagnosis(diagnoses: Sequence[Diagnosis], got: Any, case: Case, learner_fn: Callable,
                    cases: Sequence[Case], reference_fn: Callable | None = None,
                    compare: "Comparer | None" = None, name: str | None = None) -> str | None:
    """The hint of the diagnosis that recognizes the wrong answer ``got`` on ``case``.

    A diagnosis that recognizes it is kept only if it does not contradict the learner's
    answers on the other cases: on every other case where the learner's answer is wrong
    (given ``reference_fn`` and ``compare``), it must explain that answer too, or have no
    opinion (a variant that cannot run there); a case where the learner's function raises
    says nothing. So a mistake that happens to give the same answer as another on one case
    is not named for it. When several are kept, the one that explains the learner's
    answers on the most other cases wins. When none is kept (the learner's answers fit no
    known mistake everywhere), the likeliest is still named, with a note that there may be
    another mistake as well (its answers elsewhere are not that mistake's)."""
    matches = []
    for diagnose in diagnoses:
        found = diagnose(got, case.args, case.kwargs)
        if found:
            matches.append((diagnose, found))
    if not matches:
        return None
    answers = []       # (the learner's answer, the case), on the other cases where it is wrong
    for other in cases:
        if other is case:
            continue
        try:
            answer = _call_learner(learner_fn, other, name)
        except Exception:
            continue
        if reference_fn is not None and compare is not None:
            try:
                expected = reference_fn(*_fresh(other.args), **_fresh(other.kwargs))
            except Exception:
                continue
            if compare(answer, expected) is None:
                continue                      # right on this case: nothing to explain
        answers.append((answer, other))
    verdicts = [[_explains(diagnose, answer, other) for answer, other in answers] for diagnose, _ in matches]
    scores = [sum(1 for x in v if x) for v in verdicts]
    kept = [i for i, v in enumerate(verdicts) if all(x is not False for x in v)]
    if kept or reference_fn is None or compare is None:
        kept = kept or list(range(len(matches)))
        return matches[max(kept, key=lambda i: (scores[i], -i))][1]
    # Every candidate is contradicted somewhere: name the likeliest, but say it may not be all.
    best = max(range(len(matches)), key=lambda i: (scores[i], -i))
    return (f"{matches[best][1]}\n  (On this case your answer is exactly what that mistake gives; on others it "
            f"is not, so there may be another mistake as well.)")


def run_check(
    name: str,
    learner_fn: Callable,
    reference_fn: Callable,
    cases: Sequence[Case],
    *,
    compare: Comparer,
    hint: str,
    diagnoses: Sequence[Diagnosis] = (),
    verbose: bool = True,
) -> CheckResult:
    """Run ``learner_fn`` and ``reference_fn`` on each case and compare the answers.

    Prints (when ``verbose``) and returns a :class:`CheckResult`. On a wrong answer the
    hint is that of the diagnosis (of ``diagnoses``) that recognizes the mistake and
    explains the learner's answers on the other cases where they are wrong too (see
    :func:`_best_diagnosis`); failing that, the case's own ``hint`` (what the case tests)
    followed by ``hint``, the general advice: what the function should do, in a sentence.
    When the learner's function raises, the case's ``hint`` and ``hint`` are shown after
    the error. A ``NotImplementedError`` raised in the
    learner's code means "not implemented yet", naming the unfinished function (the
    function under check, or a helper it calls).
    """
    if not callable(learner_fn):
        raise ValueError(f"learner_fn must be a function, got {type(learner_fn).__name__}")
    if not cases:
        raise ValueError("cases must not be empty")

    def finish(status: str, message: str) -> CheckResult:
        if verbose and not _QUIET.get():
            sys.stdout.write(message + "\n")   # one write: one output box
        return CheckResult(name, status, message)

    for i, case in enumerate(cases, start=1):
        where = f"case {i} of {len(cases)}" + (f" ({case.description})" if case.description else "")
        try:
            got = _call_learner(learner_fn, case, name)
        except NotImplementedError as exc:
            unfinished = unfinished_function(exc)
            if unfinished is not None:
                helper, is_helper = unfinished
                if is_helper:
                    return finish("not implemented",
                                  f"… {name}: {helper}, which it calls, is {NOT_IMPLEMENTED}. Finish "
                                  f"{helper} first (replace its `raise NotImplementedError()`), then run "
                                  f"this cell again.")
                return finish("not implemented",
                              f"… {name}: {NOT_IMPLEMENTED}. Replace `raise NotImplementedError()` "
                              f"with your code and run this cell again.")
            return finish("failed",
                          f"✗ {name}: your function raised NotImplementedError: {exc} on {where} "
                          f"(inside a library: an operation that is not available there).\n  Hint: {hint}")
        except Exception as exc:  # a learner's bug becomes a hint, not a traceback
            checks = f"  This case checks {case.hint}\n" if case.hint else ""
            return finish("failed",
                          f"✗ {name}: your function raised {type(exc).__name__}: {exc} on {where}.\n"
                          f"{checks}  Hint: {hint}")
        expected = reference_fn(*_fresh(case.args), **_fresh(case.kwargs))
        problem = compare(got, expected)
        if problem is not None:
            found = _best_diagnosis(diagnoses, got, case, learner_fn, cases, reference_fn, compare, name)
            if found:
                advice = f"  Hint: {found}"
            elif case.hint:
                advice = f"  This case checks {case.hint}\n  Hint: {hint}"
            else:
                advice = f"  Hint: {hint}"
            return finish("failed", f"✗ {name}: wrong answer on {where}: {problem}.\n{advice}")
    return finish("passed", f"✓ {name}: passed all {len(cases)} seeded cases.")


# ------------------------------------------------------------------ hidden tests

#: Set by :func:`forbid_reference` (``quiet=True``): checks run inside print nothing.
_QUIET: contextvars.ContextVar[bool] = contextvars.ContextVar("mesakit_checks_quiet", default=False)


class ReferenceUsedError(AssertionError):
    """The learner's code ran one of mesakit's reference implementations (see
    :func:`forbid_reference`). An AssertionError, so nbgrader counts the test as failed."""


def _reference_code(name: str, ref: Any):
    fn = inspect.unwrap(ref) if callable(ref) else ref      # through functools.wraps decorators
    fn = getattr(fn, "__func__", fn)                       # a bound or static method
    code = getattr(fn, "__code__", None)
    if code is None:
        raise ValueError(f"{name} must be Python functions (mesakit's references), got {ref!r}")
    module = getattr(fn, "__module__", "") or ""
    label = f"{module.removeprefix('mesakit.')}.{fn.__qualname__}" if module else fn.__qualname__
    return code, label


def _learner_caller(frame) -> str | None:
    """Who a reference running in ``frame`` runs for: the name of the learner's function,
    or None when it runs for a check. While a check runs the learner's function, every run
    counts as the learner's. Otherwise, walking out from the caller through library frames
    (mesakit, torch, the standard library), the first frame that is either learner code or
    a check decides: learner code → the learner's (directly or through any other mesakit
    function); a frame of ``mesakit.checks`` → the check's (its expected answer, or a wrong
    variant for a diagnosis)."""
    running = _LEARNER.get()
    if running is not None:
        return running
    caller = frame.f_back
    while caller is not None:
        filename = caller.f_code.co_filename
        if _is_check(filename):
            return None
        if not _is_library(filename):
            return caller.f_code.co_name
        caller = caller.f_back
    return None


@contextmanager
def forbid_reference(*references: Callable, quiet: bool = True) -> Iterator[None]:
    """Inside the ``with`` block, the learner's code may not run any of ``references``
    (mesakit's reference implementations); on leaving the block, if it did, raise
    :class:`ReferenceUsedError` naming the reference and the learner's function.

    For the workbooks' hidden tests: an "answer" such as
    ``def greedy_by_density(v, w, c): return knapsack.greedy_by_density(v, w, c)`` passes
    the visible check, since it returns the reference's own answers, and fails::

        with checks.forbid_reference(knapsack.greedy_by_density):
            assert checks.check_greedy_by_density(greedy_by_density)

    How it knows: while the block runs, a profile hook (:func:`sys.setprofile`) sees every
    function call in this thread; each time a reference's code starts, it walks out through
    the callers. The reference counts as used when it starts while a check is running the
    learner's function, or when learner code (any code outside the standard library,
    installed packages and mesakit) is reached before a frame of ``mesakit.checks``: so
    aliases (``from mesakit.knapsack import greedy_by_density as g``),
    ``functools.partial``, ``map`` and calls through other mesakit functions that use the
    reference are all caught, while the check's own calls of the reference (its expected
    answers, the wrong variants behind its diagnoses) are not. Other mesakit functions stay
    allowed as long as they do not run a listed reference: list only the functions that
    compute the exercise's answer, and make sure the helpers the exercise tells the learner
    to use do not call them.

    Args:
        *references: Python functions (at least one); decorated functions are unwrapped.
        quiet: checks run inside the block print nothing (they already printed their
            verdict in the visible check cell); their :class:`CheckResult` keeps its message.

    Raises:
        ValueError: no reference, or one that is not a Python function.
        ReferenceUsedError: on leaving the block, when the learner's code ran a reference
            (chained to any exception the block raised).

    Only the current thread is watched, and a profiler already installed
    (``sys.getprofile()``) is suspended for the block and restored after it.
    """
    if not references:
        raise ValueError("references must name at least one function")
    codes = dict(_reference_code("references", ref) for ref in references)
    used: list[tuple[str, str]] = []

    def hook(frame, event, arg):
        if event == "call" and frame.f_code in codes:
            learner = _learner_caller(frame)
            if learner is not None:
                used.append((codes[frame.f_code], learner))

    def verdict() -> ReferenceUsedError:
        ref, learner = used[0]
        where = "your code" if learner.startswith("<") else f"your {learner}"
        return ReferenceUsedError(
            f"{where} calls mesakit's reference {ref} (directly or through another mesakit function); "
            f"the exercise asks you to write it yourself, so this answer does not count.")

    previous = sys.getprofile()
    token = _QUIET.set(bool(quiet))
    sys.setprofile(hook)
    try:
        yield
    except BaseException as exc:
        if used:
            raise verdict() from exc
        raise
    finally:
        sys.setprofile(previous)
        _QUIET.reset(token)
    if used:
        raise verdict()
