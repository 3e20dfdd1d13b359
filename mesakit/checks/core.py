"""The machinery every exercise check shares: run on seeded cases, compare, explain."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch

NOT_IMPLEMENTED = "not implemented yet"


@dataclass(frozen=True)
class Case:
    """One seeded input to a check: positional and keyword arguments, and a short
    description shown in hints (e.g. "3 instances of 5 items")."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    description: str = ""


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


def run_check(
    name: str,
    learner_fn: Callable,
    reference_fn: Callable,
    cases: Sequence[Case],
    *,
    compare: Comparer,
    hint: str,
    verbose: bool = True,
) -> CheckResult:
    """Run ``learner_fn`` and ``reference_fn`` on each case and compare the answers.

    Prints (when ``verbose``) and returns a :class:`CheckResult`. ``hint`` is the advice
    shown on any failure: what the function should do, in a sentence.
    """
    if not callable(learner_fn):
        raise ValueError(f"learner_fn must be a function, got {type(learner_fn).__name__}")
    if not cases:
        raise ValueError("cases must not be empty")

    def finish(status: str, message: str) -> CheckResult:
        if verbose:
            print(message)
        return CheckResult(name, status, message)

    for i, case in enumerate(cases, start=1):
        where = f"case {i} of {len(cases)}" + (f" ({case.description})" if case.description else "")
        try:
            got = learner_fn(*_fresh(case.args), **_fresh(case.kwargs))
        except NotImplementedError:
            return finish("not implemented",
                          f"… {name}: {NOT_IMPLEMENTED}. Replace `raise NotImplementedError()` "
                          f"with your code and run this cell again.")
        except Exception as exc:  # a learner's bug becomes a hint, not a traceback
            return finish("failed",
                          f"✗ {name}: your function raised {type(exc).__name__}: {exc} on {where}.\n"
                          f"  Hint: {hint}")
        expected = reference_fn(*_fresh(case.args), **_fresh(case.kwargs))
        problem = compare(got, expected)
        if problem is not None:
            return finish("failed", f"✗ {name}: wrong answer on {where}: {problem}.\n  Hint: {hint}")
    return finish("passed", f"✓ {name}: passed all {len(cases)} seeded cases.")
