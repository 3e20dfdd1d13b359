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


def test_unfinished_helper_is_named_not_the_function_under_check(capsys):
    def helper(x):
        # YOUR CODE HERE
        raise NotImplementedError()

    def finished(x):                      # done, but calls the unfinished helper
        return helper(x).cumsum(-1)

    result = check(finished)
    out = capsys.readouterr().out
    assert result.status == "not implemented" and not result
    assert "cumsum: helper, which it calls, is not implemented yet" in out
    assert "cumsum: not implemented yet" not in out


def test_helper_nested_two_calls_deep_is_named(capsys):
    def inner(x):
        raise NotImplementedError()

    def middle(x):
        return inner(x)

    result = check(lambda x: middle(x))
    assert result.status == "not implemented"
    assert "inner, which it calls, is not implemented yet" in capsys.readouterr().out


def test_not_implemented_inside_a_library_is_a_bug_not_a_stub(capsys):
    def uses_meta_tensors(x):
        return torch.tensor(x.to("meta").tolist())   # torch: "Cannot copy out of meta tensor"

    result = check(uses_meta_tensors)
    out = capsys.readouterr().out
    assert result.status == "failed"
    assert "your function raised NotImplementedError" in out and "not implemented yet" not in out


def test_a_diagnosis_names_the_mistake_and_case_hints_explain_the_case(capsys):
    from mesakit.checks import same_as

    def reversed_sum(x):
        return x.flip(-1).cumsum(-1).flip(-1)

    diagnoses = [same_as(reversed_sum, "you summed from the right", compare_tensors())]
    cases = [Case((torch.arange(6.0).reshape(2, 3),), description="a 2×3 tensor", hint="the direction of the sum")]
    result = run_check("cumsum", reversed_sum, reference, cases, compare=compare_tensors(), hint="general advice",
                       diagnoses=diagnoses)
    out = capsys.readouterr().out
    assert not result and "Hint: you summed from the right" in out and "general advice" not in out

    result = run_check("cumsum", lambda x: x.cumsum(-1) * 2, reference, cases, compare=compare_tensors(),
                       hint="general advice", diagnoses=diagnoses)
    out = capsys.readouterr().out
    assert not result and "This case checks the direction of the sum" in out and "Hint: general advice" in out


def test_a_variant_that_crashes_or_is_right_says_nothing(capsys):
    from mesakit.checks import same_as

    def crashes(x):
        raise RuntimeError("no")

    diagnoses = [same_as(crashes, "never shown", compare_tensors()),
                 same_as(reference, "the right answer is not a mistake", compare_tensors())]
    result = run_check("cumsum", lambda x: x, reference, CASES, compare=compare_tensors(), hint="general advice",
                       diagnoses=diagnoses)
    out = capsys.readouterr().out
    assert not result and "Hint: general advice" in out and "never shown" not in out and "not a mistake" not in out
