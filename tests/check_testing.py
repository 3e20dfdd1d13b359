"""What the workbook-check tests share: a stub learner and the assertion that a check
rejected a wrong answer with a hint (not a traceback) naming the mistake."""
from __future__ import annotations


def stub(*args, **kwargs):
    """A learner's unfinished function, as the generated student workbook has it."""
    raise NotImplementedError()


def rejected(result, capsys, *needles):
    """Assert the check failed, printed a hint and no traceback, and the hint contains
    every needle (the words that name the mistake); returns the printed text."""
    out = capsys.readouterr().out
    assert not result and result.status == "failed", out
    assert "Hint:" in out and "Traceback" not in out, out
    for needle in needles:
        assert needle in out, out
    return out
