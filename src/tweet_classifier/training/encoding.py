"""A split as the Trainer reads it: token ids left unpadded (tweets are ~30 tokens; padding every row to 128
would waste 4x), label ids and sample weights, and the collator that pads each batch to its longest text."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from tweet_classifier.training.errors import TrainingError

if TYPE_CHECKING:
    import pandas as pd
    from transformers import PreTrainedTokenizerBase


class EncodedSplit:
    """Token ids (unpadded), label ids and sample weights of one split; items are dicts for the collator."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]


def encode_split(
    frame: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    max_length: int,
    use_weights: bool,
) -> EncodedSplit:
    label_index = {label: index for index, label in enumerate(labels)}
    unknown = sorted(set(frame["label"].astype(str)) - set(label_index))
    if unknown:
        raise TrainingError(f"labels {unknown} are not in the label list {list(labels)}; fix data.labels")
    encoded = tokenizer(frame["text"].astype(str).tolist(), truncation=True, max_length=max_length)
    weights = frame["weight"].astype(float).tolist() if use_weights and "weight" in frame else [1.0] * len(frame)
    features = []
    for row, label in enumerate(frame["label"].astype(str)):
        item = {name: values[row] for name, values in encoded.items()}
        item["labels"] = label_index[label]
        item["sample_weight"] = weights[row]
        features.append(item)
    return EncodedSplit(features)


class TweetCollator:
    """Pads token fields to the longest text of the batch (or to ``pad_to_length``) and stacks targets."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        pad_to_multiple_of: int | None = None,
        pad_to_length: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_to_length = pad_to_length

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        token_fields = [
            {key: value for key, value in item.items() if key.endswith("_ids") or key.endswith("_mask")}
            for item in features
        ]
        if self.pad_to_length is not None:
            batch = self.tokenizer.pad(
                token_fields, padding="max_length", max_length=self.pad_to_length, return_tensors="pt"
            )
        else:
            batch = self.tokenizer.pad(
                token_fields, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
            )
        result = dict(batch)
        result["labels"] = torch.tensor([item["labels"] for item in features], dtype=torch.long)
        result["sample_weight"] = torch.tensor([item.get("sample_weight", 1.0) for item in features], dtype=torch.float)
        return result
