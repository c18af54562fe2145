"""CPU process settings shared by `mofsieve train` and `mofsieve predict`.

Why the allocator setting: a batch's per-edge tensors are 5–25 MB each. glibc serves blocks
that large with a fresh ``mmap`` and hands them back to the kernel when freed, so every
layer of every batch page-faults its tensors in again (``bench/allocator.py``, predict on
8,948 CoRE MOFs: 2.8 million minor faults, 1.08× the run time with the fused kernels of
mofsieve.fused, 10 million and 1.19× with PyTorch layers only, as training runs). Raising the
mmap and trim thresholds makes freed blocks stay in the heap and be reused. The heap then
stays at its peak, which is set by the batch size, not by the number of MOFs (same
benchmark: peak memory within 5 % of glibc's defaults).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

# From glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# 1 GiB: above any tensor a batch allocates.
_MMAP_THRESHOLDS = (1 << 30, 32 << 20)
_TRIM_THRESHOLD = (1 << 31) - 1


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed large blocks instead of returning them to the kernel.

    Both thresholds must be set together: setting either one switches off glibc's own
    adaptive threshold, and the trim threshold alone makes every block over 128 KiB an mmap.
    Returns False (and changes nothing) where the C library is not glibc or refuses.
    """
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    # Older glibc refuses mmap thresholds over 32 MiB (its documented maximum): take that.
    if not any(mallopt(_M_MMAP_THRESHOLD, value) for value in _MMAP_THRESHOLDS):
        return False  # nothing changed
    return bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))


def configure_cpu(threads: int | None, keep_freed: bool = True) -> bool:
    """Threads (None: torch's choice), denormals flushed to zero, and with ``keep_freed`` the
    allocator as above. Returns whether freed memory is kept."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    # Denormal floats make CPU arithmetic up to 10× slower and carry no information here.
    torch.set_flush_denormal(True)
    if not keep_freed:
        return False
    kept = keep_freed_memory()
    if not kept:
        log.debug("could not raise glibc's malloc thresholds; large tensors stay mmap-backed")
    return kept
