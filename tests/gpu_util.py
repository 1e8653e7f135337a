"""Helpers for the GPU-marked tests."""
import warnings

import torch


def count_syncs(fn) -> int:
    """Host synchronisations CUDA's sync debug mode reports while ``fn`` runs."""
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)
