"""Plumbing every notebook shares: the device, seeding, progress bars, glued numbers,
and argument validation with messages that name the bad argument."""
from __future__ import annotations

import os
import random
from typing import Any, Iterable

import numpy as np
import torch

__all__ = [
    "setup",
    "check_device",
    "get_device",
    "seed_everything",
    "make_generator",
    "progress",
    "glue",
    "format_value",
    "results_table",
    "check_positive_int",
    "check_choice",
    "check_probability",
    "check_in_range",
]


def get_device(prefer: str | None = None) -> torch.device:
    """The device lessons run on: ``cuda`` when one is available, else the CPU.

    ``prefer`` ("cpu" or "cuda") overrides the choice; the environment variable
    ``MESAKIT_DEVICE`` does the same for a whole run (the tests use it to force the CPU).
    """
    choice = prefer or os.environ.get("MESAKIT_DEVICE")
    if choice is not None:
        check_choice("prefer", choice, ("cpu", "cuda"))
        if choice == "cuda" and not torch.cuda.is_available():
            raise ValueError("prefer='cuda' was asked for, but no CUDA device is available")
        return torch.device(choice)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(name: str, device: Any) -> torch.device:
    """The one validator of a ``device`` argument: a ``torch.device`` or its name.

    Raises ValueError naming the argument when the value is not a device, or when CUDA
    is asked for on a machine without it (rather than torch's "Torch not compiled with
    CUDA enabled" from deep inside a call). ``None`` means the CPU."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (TypeError, RuntimeError, ValueError):
        raise ValueError(f"{name} must be a torch.device or a name such as 'cpu' or 'cuda', "
                         f"got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} asks for CUDA, but no CUDA device is available "
                         "here; use 'cpu' or mesakit.get_device()")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be a CPU or CUDA device, got {device!r}")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def setup(seed: int, *, threads: int = 1, prefer: str | None = None) -> torch.device:
    """What every lesson's setup cell does: seed Python, NumPy and PyTorch, fix torch's
    CPU thread count, and return the device to run on (see :func:`get_device`).

    One thread by default: the course's networks are tiny, so a second thread only adds
    synchronisation, slows to a crawl when another process holds the other core, and can
    change the last bits of a sum (and so a trained network) with the number of cores.
    A fixed count makes a run's numbers the same on any machine of one kind."""
    threads = check_positive_int("threads", threads)
    torch.set_num_threads(threads)
    seed_everything(seed)
    return get_device(prefer)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA) so a rerun gives the same numbers
    on the same machine."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    random.seed(int(seed))
    np.random.seed(int(seed) % 2**32)
    torch.manual_seed(int(seed))
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(int(seed))


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private random stream for one function call, so results do not depend on what
    ran before. Generators live on the CPU; draw there and move tensors to ``device``."""
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    check_device("device", device)
    gen = torch.Generator(device="cpu")
    gen.manual_seed(int(seed))
    return gen


def progress(iterable: Iterable | None = None, **kwargs: Any):
    """A ``tqdm.auto`` progress bar (a widget in Jupyter, text elsewhere).

    Set ``MESAKIT_PROGRESS=0`` to silence bars, e.g. in unit tests."""
    from tqdm.auto import tqdm

    kwargs.setdefault("disable", os.environ.get("MESAKIT_PROGRESS", "1") == "0")
    kwargs.setdefault("mininterval", 0.5)
    return tqdm(iterable, **kwargs)


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Store a number computed by the run so the book's prose can cite it with
    ``{glue:text}`name``` (myst-nb), and return it as a plain Python value.

    In Jupyter or Colab the prose shows the role, not the number, so there the value is
    also printed as ``name = value`` (floats to 4 significant digits). The book's
    executor sets ``MESAKIT_BOOK=1``, which keeps the pages free of these lines."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"name must be an identifier-like string, got {name!r}")
    if isinstance(value, torch.Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()
    if isinstance(value, np.generic):
        value = value.item()
    try:
        from myst_nb import glue as _glue
    except ImportError:
        _glue = None
    if _glue is not None:
        _glue(name, value, display=display)
    if os.environ.get("MESAKIT_BOOK") != "1":
        print(f"{name} = {format_value(value)}")
    return value


def format_value(value: Any) -> str:
    """A short human-readable form of a glued value: floats to 4 significant digits,
    lists and tuples element by element, anything else as ``str``."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        inner = ", ".join(format_value(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner})"
    return str(value)


def results_table(rows: Iterable[tuple], *, title: str = "Results of this run") -> str:
    """Print a lesson's headline numbers as one small table and return its text.

    For a reader in Jupyter or Colab, where the prose shows ``{glue:text}`` roles instead of
    numbers: a lesson ends its experiment with one such cell (tagged ``remove-cell``, since
    the book's prose already shows the glued numbers). Each row is ``(label, value)`` or
    ``(label, value, compared_with)``: ``label`` a string saying what was measured, ``value``
    and ``compared_with`` numbers (shown by :func:`format_value`, floats to 4 significant
    digits) or strings shown as they are (e.g. ``"0.42 ± 0.03 °C"``). Printed in one write,
    so a notebook shows it in one output box.

    Raises:
        ValueError: ``rows`` is empty, a row is not a tuple or list of 2 or 3 entries, or a
            label is not a non-empty string; ``title`` is not a string.
    """
    if not isinstance(title, str):
        raise ValueError(f"title must be a string, got {type(title).__name__}")
    rows = list(rows)
    if not rows:
        raise ValueError("rows must not be empty")
    cells = []
    for i, row in enumerate(rows):
        if not isinstance(row, (tuple, list)) or len(row) not in (2, 3):
            raise ValueError(f"rows[{i}] must be (label, value) or (label, value, compared_with), got {row!r}")
        if not isinstance(row[0], str) or not row[0].strip():
            raise ValueError(f"rows[{i}]: the label must be a non-empty string, got {row[0]!r}")
        cells.append([row[0]] + [v if isinstance(v, str) else format_value(v) for v in row[1:]])
    label_w = max(len(c[0]) for c in cells)
    value_w = max(len(c[1]) for c in cells)
    lines = [title]
    for c in cells:
        line = f"  {c[0]:<{label_w}}  {c[1]:>{value_w}}"
        if len(c) == 3:
            line += f"   vs {c[2]}"
        lines.append(line.rstrip())
    text = "\n".join(lines)
    print(text)
    return text


def check_positive_int(name: str, value: Any, minimum: int = 1) -> int:
    """Raise ValueError unless ``value`` is an integer >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_choice(name: str, value: Any, allowed: Iterable[Any]) -> Any:
    """Raise ValueError unless ``value`` is one of ``allowed``, listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def check_in_range(name: str, value: Any, low: float, high: float) -> float:
    """Raise ValueError unless ``low <= value <= high``."""
    try:
        ok = low <= float(value) <= high
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def check_probability(name: str, value: Any) -> float:
    """Raise ValueError unless ``value`` is a probability in [0, 1]."""
    return check_in_range(name, value, 0.0, 1.0)
