"""mesakit: the shared code of *Learned Optimization, Hands-On*.

Notebooks import the plumbing from here (environments, agents, baselines, analysis,
exercise checks) and show only the code that is the lesson's point. Submodules are
imported explicitly, e.g. ``from mesakit import knapsack``.
"""
import os as _os

# OpenMP threads that spin while waiting make small tensor work many times slower when
# the cores are shared (two notebooks at once, a busy laptop). Passive waiting costs
# nothing when they are not; it must be set before torch is first imported.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .core import (  # noqa: E402
    check_choice,
    check_device,
    check_in_range,
    check_positive_int,
    check_probability,
    format_value,
    get_device,
    glue,
    make_generator,
    progress,
    results_table,
    seed_everything,
    setup,
)

__version__ = "0.1.0"
__all__ = [
    "check_choice",
    "check_device",
    "check_in_range",
    "check_positive_int",
    "check_probability",
    "format_value",
    "get_device",
    "glue",
    "make_generator",
    "progress",
    "results_table",
    "seed_everything",
    "setup",
]
