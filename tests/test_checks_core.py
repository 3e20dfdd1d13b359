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


def test_a_diagnosis_is_named_only_if_it_fits_the_other_wrong_cases_too(capsys):
    """Two mistakes that agree on the first case: the one that also gives the learner's
    answers on the other cases is named, not the one listed first."""
    from mesakit.checks import same_as

    def doubled(x):                        # wrong everywhere: twice the cumsum
        return x.cumsum(-1) * 2

    def plus_first_row(x):                 # agrees with doubled on the first case only
        return x.cumsum(-1) + torch.tensor([[0.0, 1.0, 3.0], [3.0, 7.0, 12.0]]) if x.dim() == 2 else x.cumsum(-1) + 5
    cases = [Case((torch.arange(6.0).reshape(2, 3),)), Case((torch.ones(4),)), Case((torch.arange(3.0),))]
    assert same_as(plus_first_row, "x", compare_tensors())(doubled(*cases[0].args), cases[0].args, {})
    diagnoses = [same_as(plus_first_row, "you added the first row", compare_tensors()),
                 same_as(doubled, "you doubled it", compare_tensors())]
    run_check("cumsum", doubled, reference, cases, compare=compare_tensors(), hint="general", diagnoses=diagnoses)
    out = capsys.readouterr().out
    assert "Hint: you doubled it" in out and "first row" not in out and "another mistake" not in out, out

    # only the contradicted one: it is still named, with a note that it may not be all
    run_check("cumsum", doubled, reference, cases, compare=compare_tensors(), hint="general",
              diagnoses=diagnoses[:1])
    out = capsys.readouterr().out
    assert "Hint: you added the first row" in out and "there may be another mistake" in out, out

    # a variant that cannot run on another case has no opinion there: it is named plainly
    def doubled_2d_only(x):
        if x.dim() != 2:
            raise ValueError("2-D only")
        return x.cumsum(-1) * 2
    run_check("cumsum", doubled, reference, cases, compare=compare_tensors(), hint="general",
              diagnoses=[same_as(doubled_2d_only, "you doubled it", compare_tensors())])
    out = capsys.readouterr().out
    assert "Hint: you doubled it" in out and "another mistake" not in out, out


def test_a_function_that_raises_gets_the_cases_hint(capsys):
    def only_2d(x):
        x.view(2, 3)                       # raises unless x has six entries
        return x.cumsum(-1)
    cases = [Case((torch.arange(6.0),)), Case((torch.ones(4),), description="ones", hint="any length")]
    result = run_check("cumsum", only_2d, reference, cases, compare=compare_tensors(), hint="general advice")
    out = capsys.readouterr().out
    assert not result and "your function raised RuntimeError" in out and "This case checks any length" in out, out
    assert "Hint: general advice" in out


# ------------------------------------------------- hidden tests: no delegating to the reference

import functools  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402

from mesakit import knapsack, mazes  # noqa: E402
from mesakit.checks import ReferenceUsedError, ch01, forbid_reference  # noqa: E402
from mesakit.knapsack import greedy_by_density as aliased_reference  # noqa: E402


def honest_greedy(values, weights, capacity):
    density = values.double() / weights.double()
    order = torch.sort(density, dim=1, descending=True, stable=True).indices
    w_sorted = weights.gather(1, order)
    left = capacity.clone()
    take = torch.zeros_like(order, dtype=torch.bool)
    for k in range(order.shape[1]):
        take[:, k] = w_sorted[:, k] <= left
        left = left - torch.where(take[:, k], w_sorted[:, k], torch.zeros_like(left))
    return torch.zeros_like(take).scatter_(1, order, take)


def delegating_greedy(values, weights, capacity):
    return knapsack.greedy_by_density(values, weights, capacity)


def test_a_delegating_answer_passes_the_visible_check_but_not_the_hidden_test(capsys):
    assert ch01.check_greedy_by_density(delegating_greedy), "the loophole the hidden test closes"
    with pytest.raises(ReferenceUsedError, match=r"your greedy_by_density calls mesakit's reference "
                                                 r"knapsack\.greedy_by_density"):
        with forbid_reference(knapsack.greedy_by_density):
            assert ch01.check_greedy_by_density(delegating_greedy)


def test_an_honest_answer_passes_the_hidden_test_quietly(capsys):
    with forbid_reference(knapsack.greedy_by_density):
        result = ch01.check_greedy_by_density(honest_greedy)   # the check itself calls the reference
    assert result and result.status == "passed"
    assert capsys.readouterr().out == "", "quiet: the visible check cell already printed the verdict"
    with forbid_reference(knapsack.greedy_by_density, quiet=False):
        ch01.check_greedy_by_density(honest_greedy)
    assert "✓ greedy_by_density" in capsys.readouterr().out


@pytest.mark.parametrize("answer", [
    lambda v, w, c: aliased_reference(v, w, c),                                  # imported under another name
    functools.partial(knapsack.greedy_by_density),                               # no learner frame at all
    lambda v, w, c: next(map(knapsack.greedy_by_density, [v], [w], [c])),        # called from C code
], ids=["alias", "partial", "map"])
def test_delegating_in_disguise_is_caught(answer):
    with pytest.raises(ReferenceUsedError):
        with forbid_reference(knapsack.greedy_by_density):
            ch01.check_greedy_by_density(answer)


def test_a_reference_run_through_another_mesakit_function_counts():
    def via_helper(free, source):                 # mazes.reachable runs mazes.bfs_distances
        d = mazes.steps_needed(free, source)      # ... and so does this
        return torch.where(mazes.reachable(free, source), d[:, None, None], -1)
    with pytest.raises(ReferenceUsedError, match="your bfs_distances calls mesakit's reference mazes.bfs_distances"):
        with forbid_reference(mazes.bfs_distances):
            ch01.check_bfs_distances(via_helper)


def test_mesakit_helpers_the_exercise_allows_stay_allowed():
    def accuracy(net, free, source, max_iterations):   # uses mazes.reachable, which runs bfs_distances
        x, target = mazes.maze_inputs(free, source), mazes.reachable(free, source)
        h, out = net.initial_state(x), []
        with torch.no_grad():
            for _ in range(max_iterations):
                h = net.step(h, x)
                out.append((((net.decode(h) > 0) & free) == target).flatten(1).all(1).float().mean())
        return torch.stack(out)
    with forbid_reference(mazes.trace_thinking):
        assert ch01.check_accuracy_by_iterations(accuracy)


def test_the_profiler_is_restored_and_errors_chain():
    def marker(frame, event, arg):
        return None
    sys.setprofile(marker)
    try:
        with pytest.raises(ReferenceUsedError) as info:
            with forbid_reference(knapsack.greedy_by_density):
                delegating_greedy(*knapsack.random_instances(2, 3, seed=0))
                raise KeyError("the block's own error")
        assert isinstance(info.value.__cause__, KeyError)
        assert "your delegating_greedy calls" in str(info.value), "outside a check: the learner's own function"
        assert sys.getprofile() is marker
    finally:
        sys.setprofile(None)


@pytest.mark.parametrize("bad", [(), ("greedy_by_density",), (torch.sort,)])
def test_references_must_be_python_functions(bad):
    with pytest.raises(ValueError, match="reference"):
        with forbid_reference(*bad):
            pass
