"""mesakit: the shared code of *Learned Optimization, Hands-On*.

Notebooks import the plumbing from here (environments, agents, baselines, analysis,
exercise checks) and show only the code that is the lesson's point. Submodules are
imported explicitly, e.g. ``from mesakit import knapsack``.
"""
from .core import (
    check_choice,
    check_in_range,
    check_positive_int,
    check_probability,
    get_device,
    glue,
    make_generator,
    progress,
    seed_everything,
)

__version__ = "0.1.0"
__all__ = [
    "check_choice",
    "check_in_range",
    "check_positive_int",
    "check_probability",
    "get_device",
    "glue",
    "make_generator",
    "progress",
    "seed_everything",
]
