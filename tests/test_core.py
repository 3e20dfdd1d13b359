"""mesakit.core: device choice, seeding, glue fallback and argument validation."""
import pytest
import torch

import mesakit as mk


def test_get_device_defaults_and_validates(monkeypatch):
    monkeypatch.delenv("MESAKIT_DEVICE", raising=False)
    assert mk.get_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert mk.get_device("cpu").type == "cpu"
    with pytest.raises(ValueError, match="prefer"):
        mk.get_device("tpu")


def test_seed_everything_makes_torch_repeatable():
    mk.seed_everything(3)
    a = torch.rand(5)
    mk.seed_everything(3)
    assert torch.equal(a, torch.rand(5))
    with pytest.raises(ValueError, match="seed"):
        mk.seed_everything(-1)


def test_make_generator_is_private_and_repeatable():
    g1, g2 = mk.make_generator(7), mk.make_generator(7)
    torch.rand(3)  # the global stream does not affect a private generator
    assert torch.equal(torch.rand(4, generator=g1), torch.rand(4, generator=g2))
    with pytest.raises(ValueError, match="seed"):
        mk.make_generator("7")


def test_glue_returns_plain_values(capsys):
    assert mk.glue("core_test_value", torch.tensor(0.5)) == 0.5
    with pytest.raises(ValueError, match="name"):
        mk.glue("not a name", 1)


def test_glue_prints_outside_the_book_and_stays_quiet_inside(capsys, monkeypatch):
    monkeypatch.delenv("MESAKIT_BOOK", raising=False)
    mk.glue("core_test_shown", 0.123456789)
    assert "core_test_shown = 0.1235" in capsys.readouterr().out
    monkeypatch.setenv("MESAKIT_BOOK", "1")
    mk.glue("core_test_hidden", 2.0)
    assert "core_test_hidden" not in capsys.readouterr().out


def test_format_value_rounds_floats_only():
    assert mk.format_value(1 / 3) == "0.3333"
    assert mk.format_value([0.5, 2, "a"]) == "[0.5, 2, a]"
    assert mk.format_value(12345) == "12345"
    assert mk.format_value(True) == "True"


@pytest.mark.parametrize("call, fragment", [
    (lambda: mk.check_positive_int("n_items", 0), "n_items"),
    (lambda: mk.check_positive_int("n_items", 2.5), "n_items"),
    (lambda: mk.check_positive_int("flag", True), "flag"),
    (lambda: mk.check_choice("mode", "x", ("a", "b")), "mode must be one of"),
    (lambda: mk.check_probability("q", 1.5), "q"),
    (lambda: mk.check_in_range("t", "hot", 0, 1), "t"),
])
def test_validators_name_the_bad_argument(call, fragment):
    with pytest.raises(ValueError, match=fragment):
        call()


def test_validators_pass_good_values():
    assert mk.check_positive_int("n", 3) == 3
    assert mk.check_probability("q", 0.25) == 0.25


def test_results_table_prints_one_aligned_block_and_returns_it(capsys):
    text = mk.results_table([("error at 20 °C", 0.123456, "planner 0.1 °C"),
                             ("seeds", 3),
                             ("error at 26 °C, trained nets", "4.20 ± 0.05 °C")], title="Results (SEED = 0)")
    out = capsys.readouterr().out
    assert out == text + "\n", "printed once, in one write"
    lines = text.splitlines()
    assert lines[0] == "Results (SEED = 0)"
    assert lines[1].split()[-5:] == ["0.1235", "vs", "planner", "0.1", "°C"], "floats to 4 significant digits"
    assert "4.20 ± 0.05 °C" in lines[3], "strings as they are"
    ends = {len(line.split("   vs")[0]) for line in lines[1:]}
    assert len(ends) == 1, f"values right-aligned in one column: {lines}"


@pytest.mark.parametrize("rows, fragment", [
    ([], "rows must not be empty"),
    ([("label",)], r"rows\[0\]"),
    ([("a", 1), ("b", 1, 2, 3)], r"rows\[1\]"),
    ([(3, 1)], "label"),
    ([("  ", 1)], "label"),
    (["ab"], r"rows\[0\]"),
])
def test_results_table_validates_rows(rows, fragment):
    with pytest.raises(ValueError, match=fragment):
        mk.results_table(rows)


def test_results_table_validates_title():
    with pytest.raises(ValueError, match="title"):
        mk.results_table([("a", 1)], title=None)
