"""Fused CPU kernels for inference (``fused_kernels.cpp``), compiled once per machine.

The layers' per-edge chain (gather, add, activation, weighted sum over neighbours) runs as
one pass per edge instead of one PyTorch operator per step: ``bench/predict.py`` measures
what that gains in the surrogates, ``bench/charge_model_speed.py`` in the charge model
(CGConv's gated message, summed, with its BatchNorm and residual). They are used only where they give the same numbers as the layers written
in PyTorch (within float32 rounding): CPU, float32, no gradients, evaluation mode, the
shards' regular neighbour layout. Everything else, and every machine where they cannot be
built, runs the PyTorch layers.

Building needs a C++ compiler and ``ninja`` (a Python dependency); it takes about half a
minute, once: :mod:`mofsieve.native_build` keeps the library in ``$MOFSIEVE_KERNEL_CACHE``
(default ``~/.cache/mofsieve``) under a name that changes with the source, the compiler flags
and the torch version, built in a private folder and renamed into place, so jobs that start
together on a cluster never wait on each other's lock and a job killed mid-build leaves
nothing behind that the next one would trust. ``MOFSIEVE_FUSED_KERNELS=0`` turns the kernels
off.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import ModuleType

from mofsieve.native_build import CACHE, TorchExtension, cache_dir, compiler_available

__all__ = [
    "CACHE",
    "LIBRARY",
    "SOURCE",
    "SWITCH",
    "cache_dir",
    "compiler_available",
    "kernels",
    "switched_off",
]

SOURCE = Path(__file__).with_name("fused_kernels.cpp")
SWITCH = "MOFSIEVE_FUSED_KERNELS"

# Vector width as PyTorch itself dispatches on this CPU; ATen's vector headers select their
# implementation from these macros.
_CAPABILITY_FLAGS = {
    "AVX512": [
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mfma",
        "-DCPU_CAPABILITY_AVX512",
        "-DCPU_CAPABILITY=AVX512",
    ],
    "AVX2": ["-mavx2", "-mfma", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"],
}
# ATen's parallel_for is OpenMP in PyTorch's CPU builds.
_COMMON_FLAGS = ["-O3", "-fopenmp"]


def _flags() -> list[str] | None:
    """The compiler flags for this CPU, or None where no vector width fits."""
    import torch

    flags = _CAPABILITY_FLAGS.get(torch.backends.cpu.get_cpu_capability())
    return None if flags is None else _COMMON_FLAGS + flags


LIBRARY = TorchExtension(
    "mofsieve_fused",
    sources=[SOURCE],
    flags=_flags,
    link_flags=["-fopenmp"],
    switch=SWITCH,
    subject="fused CPU kernels",
    fallback="the PyTorch layers run instead (same numbers, slower)",
    logger=logging.getLogger(__name__),
    build_time="~30 s",
)

# Run the PyTorch layers inside this block (benchmarks and tests compare the two).
switched_off = LIBRARY.switched_off


def kernels() -> ModuleType | None:
    """The compiled kernels, or None (switched off, unsupported CPU, or the build failed:
    said once in the log; the PyTorch layers then run, same numbers, slower)."""
    return LIBRARY.get()
