"""The tokenizer and classifier a run starts from."""

from __future__ import annotations

import pytest

from tests.training_helpers import LABELS
from tweet_classifier.config import TrainConfig
from tweet_classifier.training import base_model
from tweet_classifier.training.errors import TrainingError


def test_unknown_base_model_is_a_user_error():
    config = TrainConfig(base_model="nobody/does-not-exist-anywhere")
    with pytest.raises(TrainingError, match="HF_HUB_OFFLINE"):
        base_model.load_tokenizer(config)


def test_tiny_model_carries_the_labels_and_can_freeze_embeddings(short_run):
    config, _ = short_run
    tokenizer = base_model.load_tokenizer(config.train)
    frozen = base_model.build_model(config.train.model_copy(update={"freeze_embeddings": True}), LABELS, tokenizer)
    assert frozen.config.id2label == dict(enumerate(LABELS))
    assert not any(parameter.requires_grad for parameter in frozen.bert.embeddings.parameters())
    assert all(parameter.requires_grad for parameter in frozen.classifier.parameters())
    trainable = base_model.build_model(config.train, LABELS, tokenizer)
    assert all(parameter.requires_grad for parameter in trainable.bert.embeddings.parameters())
