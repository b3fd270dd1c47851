"""Where a run trains: bf16 only where the hardware computes it natively."""

from __future__ import annotations

import torch

from tweet_classifier.config import TrainConfig
from tweet_classifier.training import device


def test_device_plan_respects_config(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    plan = device.plan_device(TrainConfig(bf16=False, fused_adamw=False))
    assert (plan.device, plan.bf16, plan.fused_adamw) == ("cpu", False, False)
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: True)
    assert device.plan_device(TrainConfig(bf16=True)).bf16 is True
    monkeypatch.setattr(device, "cpu_supports_bf16", lambda: False)
    assert device.plan_device(TrainConfig(bf16=True)).bf16 is False
