"""The tokenizer and the classifier a run starts from: the base model with a new head carrying the label
names (``id2label``), or a tiny random BERT (``train.tiny_model``, for tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from tweet_classifier.config import TrainConfig
from tweet_classifier.training.errors import TrainingError

TINY_MODEL_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


def load_tokenizer(train_config: TrainConfig) -> PreTrainedTokenizerBase:
    try:
        return AutoTokenizer.from_pretrained(train_config.base_model, revision=train_config.base_revision)
    except (OSError, ValueError) as error:
        raise TrainingError(_base_model_hint(train_config, error)) from None


def _base_model_hint(train_config: TrainConfig, error: Exception) -> str:
    return (
        f"could not load base model {train_config.base_model!r} (revision {train_config.base_revision or 'main'}): "
        f"{error}. Check train.base_model / train.base_revision; offline, point HF_HUB_CACHE at the mirror "
        "and set HF_HUB_OFFLINE=1"
    )


def build_model(
    train_config: TrainConfig, labels: Sequence[str], tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The classifier: the base model with a new head, or a tiny random BERT (``train.tiny_model``, tests)."""
    label_kwargs: dict[str, Any] = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: index for index, label in enumerate(labels)},
    }
    if train_config.tiny_model:
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, **TINY_MODEL_SIZE, **label_kwargs)
        model = BertForSequenceClassification(config)
    else:
        try:
            # fp32 master weights whatever the checkpoint's dtype: bf16 comes from autocast, not from the weights.
            model = AutoModelForSequenceClassification.from_pretrained(
                train_config.base_model, revision=train_config.base_revision, dtype=torch.float32, **label_kwargs
            )
        except (OSError, ValueError) as error:
            raise TrainingError(_base_model_hint(train_config, error)) from None
    if train_config.freeze_embeddings:
        for parameter in model.base_model.embeddings.parameters():
            parameter.requires_grad = False
    return model
