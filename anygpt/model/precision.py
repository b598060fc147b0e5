"""bf16 autocast where the hardware computes in bf16, full fp32 elsewhere: one recipe for every machine.

On a CPU without bf16 instructions, autocast to bf16 is emulated and slower than fp32; on one with AVX512-BF16 or
AMX (or Arm's BF16 extension) it ran the demo's training step ~1.4x faster (``benchmarks/perf/lm_precision.py``).
Lightning's ``precision`` flag is fixed in the config, so the choice is made here, when the trainer is built:

    trainer:
      plugins:
        - class_path: anygpt.model.precision.NativeBf16Mixed
          init_args: {device: cpu}

(leave ``trainer.precision`` unset: Lightning refuses both). ``trainer.precision`` then reads ``bf16-mixed`` or
``32-true``, and the run's log says which and why.
"""

from __future__ import annotations

import platform
from collections.abc import Generator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities import rank_zero_info


def _cpuinfo(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _arm_cpu_has_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Linux on Arm lists the BF16 extension (Armv8.6) as ``bf16`` among each core's Features."""
    return any(line.lower().startswith("features") and "bf16" in line.split(":", 1)[-1].split()
               for line in _cpuinfo(cpuinfo))


def _x86_cpu_has_bf16() -> bool:
    return any(getattr(torch.cpu, name)() for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
               if hasattr(torch.cpu, name))


def device_name(device: str | torch.device = "cpu", cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The accelerator's or CPU's model name (``NVIDIA H100 80GB HBM3``, ``AMD EPYC``), for provenance records."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    for line in _cpuinfo(cpuinfo):
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def has_native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bf16 matrix products in hardware (not emulated through fp32)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if kind != "cpu":
        return False
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64", "i386", "i686"):
        return _x86_cpu_has_bf16()
    if machine in ("aarch64", "arm64") and platform.system() == "Linux":
        return _arm_cpu_has_bf16()
    return False


class NativeBf16Mixed(MixedPrecision):
    """``bf16-mixed`` (autocast, fp32 weights and optimizer) if :func:`has_native_bf16`, else plain ``32-true``.

    Args:
        device: the device type the trainer runs on (``cpu`` or ``cuda``), where the autocast applies.
        native: force the decision (tests, or a user who knows better); ``None`` detects it.
    """

    def __init__(self, device: str = "cpu", native: bool | None = None) -> None:
        super().__init__("bf16-mixed", device)
        self.native = has_native_bf16(device) if native is None else native
        if not self.native:
            self.precision = "32-true"  # what trainer.precision reports: the run computes in fp32
        rank_zero_info(f"NativeBf16Mixed: {self.precision} on {device} "
                       f"({'native bf16 found' if self.native else 'no native bf16: fp32 is faster there'})")

    @contextmanager
    def forward_context(self) -> Generator[None, None, None]:
        with super().forward_context() if self.native else nullcontext():
            yield
