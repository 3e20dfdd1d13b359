"""Shared test settings: quiet progress bars; mesakit imported first so its OpenMP
setting (passive waiting) applies before any test module imports torch."""
import os

os.environ.setdefault("MESAKIT_PROGRESS", "0")
import mesakit  # noqa: E402,F401

import torch  # noqa: E402

# Unit tests use tiny tensors, for which a second thread only adds synchronisation.
torch.set_num_threads(1)
