"""What this machine computes fast, probed where a run starts: ``native_bf16`` (bf16 in hardware on the GPU or the
CPU, from ``cpu_flags``), ``resolve_precision`` (a preset's ``precision: auto`` made concrete from it) and
``machine_description`` (cores, CPU, GPU and torch, for the report's header).

Why a module of its own: these are the only answers of ``scoresep reproduce`` that depend on the machine rather
than on the preset or the results folder. A preset's ``auto`` precision is resolved here into the rows'
configurations (and so into their hashes), which is why a results folder moved to a machine that resolves it
differently is refused for the rows that inherit it. torch is imported inside the functions, so reading a preset
that names no ``auto`` precision does not load it.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16", "bf16"}  # x86 (AVX512-BF16, AMX) and Arm (FEAT_BF16)


def cpu_flags() -> set[str]:
    """The CPU's instruction-set flags: torch's own detection, else ``/proc/cpuinfo`` (``flags`` on x86,
    ``Features`` on Arm); empty when neither is available."""
    import torch

    capabilities = getattr(torch.cpu, "get_capabilities", None)
    if capabilities is not None:
        try:
            return {name for name, present in capabilities().items() if present is True}
        except RuntimeError:
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() in ("flags", "Features"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def native_bf16() -> str | None:
    """Where this machine computes bf16 in hardware: ``"cuda"`` (a GPU with bf16 units, not emulation),
    ``"cpu"`` (AVX512-BF16, AMX or Arm's BF16 instructions), or None: bf16 would be emulated, slower than fp32
    (AVX-512 alone, which oneDNN accepts for its bf16 path, only converts)."""
    import torch

    if torch.cuda.is_available():
        return "cuda" if torch.cuda.is_bf16_supported(including_emulation=False) else None
    return "cpu" if cpu_flags() & CPU_BF16_FLAGS else None


def resolve_precision(precision: str) -> str:
    """A preset's ``precision``: ``auto`` is ``bf16-mixed`` where bf16 runs in hardware (``native_bf16``), else
    ``32-true``; any other value is Lightning's own. Spectrograms, losses and metrics stay fp32 either way
    (``features.py`` turns autocast off; the stages compute losses on fp32 outputs). It is resolved on the
    machine that runs, so a results folder moved to a machine that resolves it differently is refused for the
    rows that inherit it: they would train with another configuration."""
    if precision != "auto":
        return precision
    return "bf16-mixed" if native_bf16() else "32-true"


def machine_description() -> str:
    """Cores, CPU model and the GPU if one is visible, for the report."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{cores} CPU cores ({cpu}){gpu}, torch {torch.__version__}"
