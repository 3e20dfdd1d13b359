"""Every public function that takes ``device`` validates it through ``mk.check_device``:
asking for CUDA on a machine without it, or for a device that is not one, gives a
ValueError naming the argument, never torch's "Torch not compiled with CUDA enabled"."""
from __future__ import annotations

import ast
import importlib
import inspect
from pathlib import Path

import pytest
import torch

import mesakit as mk

PACKAGE = Path(mk.__file__).parent
VALIDATORS = ("check_device", "_check_device", "_device", "_resolve_device")


def public_functions_with_device():
    """(module, qualified name, node) of every public function or method with a
    ``device`` parameter, found in the source."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)

        def visit(node, prefix=""):
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef) and not child.name.startswith("_"):
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    args = [a.arg for a in child.args.args + child.args.kwonlyargs]
                    if "device" in args and not child.name.startswith("_") or child.name == "__init__" and "device" in args:
                        found.append((module, prefix + child.name, child))
        visit(tree)
    return found


FUNCTIONS = [f for f in public_functions_with_device() if f[1] != "check_device"]


def test_there_are_functions_to_check():
    assert len(FUNCTIONS) >= 10


@pytest.mark.parametrize("module, name, node", FUNCTIONS, ids=[f"{m}.{n}" for m, n, _ in FUNCTIONS])
def test_device_argument_goes_through_a_validator(module, name, node):
    """The function validates ``device`` itself or hands it straight to a mesakit
    function or class that does (checked by the same test)."""
    calls = [n for n in ast.walk(node) if isinstance(n, ast.Call)]
    validated = any(getattr(c.func, "id", getattr(c.func, "attr", None)) in VALIDATORS for c in calls)
    forwarded = any(kw.arg == "device" and isinstance(kw.value, ast.Name) and kw.value.id == "device"
                    for c in calls for kw in c.keywords
                    if getattr(c.func, "id", getattr(c.func, "attr", "")) not in ("to", "zeros", "ones", "full",
                                                                                    "empty", "arange", "tensor",
                                                                                    "randn", "rand", "randint",
                                                                                    "as_tensor", "eye", "zeros_like",
                                                                                    "linspace", "ones_like", "full_like"))
    assert validated or forwarded, (
        f"{module}.{name} takes `device` but neither validates it with mk.check_device nor "
        "passes it on to a mesakit function that does")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_names_the_argument():
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        mk.check_device("device", "cuda")
    with pytest.raises(ValueError, match="device must be"):
        mk.check_device("device", "gpu0")
    assert mk.check_device("device", None) == torch.device("cpu")
    assert mk.check_device("device", torch.device("cpu")) == torch.device("cpu")


CALLS = {
    "thermostat.initial_temps": lambda m: m.initial_temps(4, seed=0, device="cuda"),
    "knapsack.random_instances": lambda m: m.random_instances(4, 5, seed=0, device="cuda"),
    "mazes.random_mazes": lambda m: m.random_mazes(4, 7, seed=0, device="cuda"),
    "icl_regression.sample_tasks": lambda m: m.sample_tasks(4, 3, seed=0, device="cuda"),
    "weather.sample_world": lambda m: m.sample_world("rain_twice", 4, 8, seed=0, device="cuda"),
}


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("target", sorted(CALLS))
def test_functions_the_review_named_reject_cuda_clearly(target):
    module_name, func = target.split(".")
    module = importlib.import_module(f"mesakit.{module_name}")
    if not hasattr(module, func):
        pytest.fail(f"mesakit.{target} is gone; update this test")
    try:
        CALLS[target](module)
    except ValueError as err:
        assert "device" in str(err) and "CUDA" in str(err), str(err)
    except TypeError as err:  # the call's other arguments drifted: say so plainly
        pytest.fail(f"update the call for {target}: {err}")
    else:
        pytest.fail(f"{target}(device='cuda') did not raise on a machine without CUDA")
