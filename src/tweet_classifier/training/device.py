"""Where and in which precision a run trains: CUDA if present, else the CPU with bf16 autocast only where the
CPU computes bf16 natively (AMX or AVX512-BF16; elsewhere autocast is emulated and slower than fp32)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from tweet_classifier.config import TrainConfig

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DevicePlan:
    """Where and in which precision the run trains."""

    device: str  # "cpu" or "cuda"
    bf16: bool
    fused_adamw: bool
    description: str


def cpu_supports_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matmuls run natively; elsewhere bf16 autocast is emulated and slower."""
    for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, check, None)
        if probe is not None and probe():
            return True
    return False


def plan_device(train_config: TrainConfig) -> DevicePlan:
    if torch.cuda.is_available():
        bf16 = train_config.bf16 and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(0)
        return DevicePlan("cuda", bf16, train_config.fused_adamw, f"cuda ({name}){' bf16' if bf16 else ''}")
    bf16 = train_config.bf16 and cpu_supports_bf16()
    if train_config.bf16 and not bf16:
        logger.info("this CPU has neither AMX nor AVX512-BF16: training in fp32")
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return DevicePlan(
        "cpu", bf16, train_config.fused_adamw, f"cpu ({capability}, {threads} threads){' bf16' if bf16 else ''}"
    )
