"""The exercise-check machinery: it must pass a right answer and turn every kind of
wrong answer into a hint rather than a traceback."""
import torch

from mesakit.checks import Case, compare_tensors, run_check


def reference(x):
    return x.cumsum(-1)


CASES = [Case((torch.arange(6.0).reshape(2, 3),), description="a 2×3 tensor"),
         Case((torch.ones(4),), description="ones")]


def check(fn, **kw):
    return run_check("cumsum", fn, reference, CASES, compare=compare_tensors(), hint="sum along the last axis", **kw)


def test_right_answer_passes(capsys):
    result = check(lambda x: torch.cumsum(x, dim=-1))
    assert result and result.status == "passed"
    assert "✓ cumsum: passed all 2 seeded cases" in capsys.readouterr().out


def test_stub_reports_not_implemented(capsys):
    def stub(x):
        raise NotImplementedError()
    result = check(stub)
    assert not result and result.status == "not implemented"
    assert "not implemented yet" in capsys.readouterr().out


def test_exception_becomes_a_hint(capsys):
    result = check(lambda x: x.nonexistent())
    out = capsys.readouterr().out
    assert not result and "raised AttributeError" in out and "Hint: sum along the last axis" in out


def test_wrong_shape_and_type_and_value_are_explained(capsys):
    assert not check(lambda x: x.sum(-1))
    assert "expected shape (2, 3), got shape (2,)" in capsys.readouterr().out
    assert not check(lambda x: x.tolist())
    assert "expected a torch.Tensor, got list" in capsys.readouterr().out
    assert not check(lambda x: x.cumsum(-1) + (x > 4))
    assert "entries differ; first at index (1, 2)" in capsys.readouterr().out


def test_learner_cannot_change_the_reference_input():
    def in_place(x):
        x.zero_()
        return reference(x)
    assert not check(in_place, verbose=False)


def test_dtype_kind_is_enforced():
    result = run_check("mask", lambda x: (x > 2).int(), lambda x: x > 2, CASES,
                       compare=compare_tensors(dtype_kind="bool"), hint="return a bool mask", verbose=False)
    assert not result and "bool tensor" in result.message
