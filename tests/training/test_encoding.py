"""Splits as the Trainer reads them and the collator that pads each batch."""

from __future__ import annotations

import pytest
import torch

from tests.training_helpers import LABELS
from tweet_classifier.training import base_model, encoding
from tweet_classifier.training.errors import TrainingError


def test_encode_split_rejects_unknown_labels(short_run):
    config, prepared = short_run
    tokenizer = base_model.load_tokenizer(config.train)
    frame = prepared.train.head(3).assign(label="sarcastic")
    with pytest.raises(TrainingError, match="sarcastic"):
        encoding.encode_split(frame, tokenizer, LABELS, 32, use_weights=True)


def test_collator_pads_dynamically_or_to_a_fixed_length(short_run):
    config, prepared = short_run
    tokenizer = base_model.load_tokenizer(config.train)
    encoded = encoding.encode_split(prepared.train.head(4), tokenizer, LABELS, 32, use_weights=True)
    features = [encoded[index] for index in range(len(encoded))]
    longest = max(len(item["input_ids"]) for item in features)
    dynamic = encoding.TweetCollator(tokenizer)(features)
    assert dynamic["input_ids"].shape == (4, longest)
    assert dynamic["labels"].dtype == torch.long
    assert dynamic["sample_weight"].shape == (4,)
    assert encoding.TweetCollator(tokenizer, pad_to_multiple_of=8)(features)["input_ids"].shape[1] % 8 == 0
    assert encoding.TweetCollator(tokenizer, pad_to_length=48)(features)["input_ids"].shape == (4, 48)
