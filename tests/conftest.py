"""Shared test settings: quiet progress bars, CPU unless a test asks otherwise."""
import os

os.environ.setdefault("MESAKIT_PROGRESS", "0")
