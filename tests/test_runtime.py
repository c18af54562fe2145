"""The CPU process settings of train/predict (mofsieve.runtime)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

# One EdgeConv + head-attention layer over a batch the size predict uses (8,000 atoms, 12
# neighbours: per-edge tensors of 16–25 MB), five times after a warm-up pass; prints the
# minor page faults those five passes cost. The PyTorch layers, as training runs them: the
# fused inference kernels (mofsieve.fused) allocate fewer per-edge tensors.
_PROBE = """
import resource, sys, torch
from mofsieve import fused
from mofsieve.layers import EdgeConv, HeadAttentionConv
from mofsieve.runtime import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
torch.set_num_threads(1)
torch.manual_seed(0)
n, k = 8000, 12
x, e = torch.randn(n, 64), torch.rand(n * k, 42)
edge_index = torch.stack([torch.randint(0, n, (n * k,)), torch.arange(n).repeat_interleave(k)])
edge, conv = EdgeConv(64, 42).eval(), HeadAttentionConv(64, 42, heads=3).eval()
def layer_pass():
    with torch.no_grad(), fused.switched_off():
        return conv(x, edge_index, edge(x, edge_index, e, degree=k), degree=k)
layer_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    layer_pass()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, mode], check=True, capture_output=True, text=True
    )
    return int(out.stdout.strip())


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt thresholds are glibc's")
def test_keep_freed_memory_stops_layer_tensors_faulting_in_again():
    default = _faults("default")
    kept = _faults("keep")
    # Measured over ten runs each: 53,000–74,000 faults with glibc's defaults (each big tensor
    # a fresh mmap), 0–12,000 kept (the heap growing by a tensor now and then).
    assert default > 20_000, default
    assert kept < default / 3, (kept, default)
