"""The Trainer as the project runs it: the weighted loss, class weights, evaluation steps."""

from __future__ import annotations

import pytest
import torch

from tweet_classifier.config import TrainConfig
from tweet_classifier.training import trainer


def test_balanced_class_weights_match_sklearn_formula():
    weights = trainer.balanced_class_weights(["a", "a", "a", "b"], ["a", "b", "c"])
    assert weights == pytest.approx([4 / (3 * 3), 4 / (3 * 1), 1.0])


def test_weighted_cross_entropy_reduces_to_plain_and_weighted_means():
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    targets = torch.tensor([0, 1, 2, 1, 0])
    plain = torch.nn.functional.cross_entropy(logits, targets)
    assert trainer.weighted_cross_entropy(logits, targets, None, None, 0.0) == pytest.approx(plain.item())
    class_weights = torch.tensor([1.0, 2.0, 0.5])
    weighted = torch.nn.functional.cross_entropy(logits, targets, weight=class_weights)
    assert trainer.weighted_cross_entropy(logits, targets, class_weights, None, 0.0) == pytest.approx(weighted.item())
    sample_weights = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])
    kept = torch.nn.functional.cross_entropy(logits[[0, 2, 4]], targets[[0, 2, 4]])
    assert trainer.weighted_cross_entropy(logits, targets, None, sample_weights, 0.0) == pytest.approx(kept.item())
    smoothed = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1)
    assert trainer.weighted_cross_entropy(logits, targets, None, None, 0.1) == pytest.approx(smoothed.item())


def test_eval_steps_follow_epochs_or_config():
    assert trainer.resolve_eval_steps(1000, TrainConfig(batch_size=10, evals_per_epoch=4)) == 25
    assert trainer.resolve_eval_steps(1000, TrainConfig(batch_size=10, eval_steps=7)) == 7
    assert trainer.resolve_eval_steps(1000, TrainConfig(batch_size=10, max_steps=5)) == 5
    assert trainer.steps_per_epoch(1001, TrainConfig(batch_size=10)) == 101
