"""Tokenizers for the ``Predictor``: the transformers tokenizer or the exported Rust one (``onnx/tokenizer.json``,
no transformers import), the Rust encoders that skip the Python wrapper, and the ``[UNK]`` share the drift
monitor needs, read off the same encoding the model ran on (one tokenization per request)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from tweet_classifier.artifact import TOKENIZER_NAME
from tweet_classifier.inference.backends import MODEL_INPUTS, ONNX_DIR, transformers_attribute
from tweet_classifier.inference.errors import ModelLoadError

# The Rust tokenizer, truncation and padding set, so loads of exported backends skip transformers.
# Model input -> attribute of a tokenizers.Encoding.
TOKENIZER_COLUMNS = dict(zip(MODEL_INPUTS, ("ids", "attention_mask", "type_ids"), strict=True))


def rust_encoder(tokenizer: Any, max_length: int) -> Any:
    """The fast tokenizer's own Rust ``Tokenizer``, copied and set to truncate and pad like
    ``tokenizer(texts, padding=True, truncation=True, max_length=...)``; ``None`` for slow tokenizers.

    Calling the Rust object directly skips the Python wrapper's per-call work (0.04 against 0.11 ms
    for one tweet); tests check both give the same ids, masks and type ids.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    known = {"input_ids", "attention_mask", "token_type_ids"}
    if backend is None or tokenizer.pad_token_id is None or not set(tokenizer.model_input_names) <= known:
        return None
    encoder = Tokenizer.from_str(backend.to_str())
    encoder.enable_truncation(max_length=max_length, direction=tokenizer.truncation_side)
    encoder.enable_padding(
        direction=tokenizer.padding_side,
        pad_id=tokenizer.pad_token_id,
        pad_type_id=tokenizer.pad_token_type_id,
        pad_token=tokenizer.pad_token,
    )
    return encoder


def unpadded_copy(encoder: Any) -> Any:
    """A copy of the Rust encoder that truncates but does not pad: its ids count each text's tokens."""
    if encoder is None:
        return None
    copy = Tokenizer.from_str(encoder.to_str())
    copy.no_padding()
    return copy


def is_rust_tokenizer(tokenizer: Any) -> bool:
    return isinstance(tokenizer, Tokenizer)


def load_tokenizer(folder: Path, exported_only: bool = False) -> Any:
    """The exported Rust tokenizer (``onnx/tokenizer.json``) when only exported backends (ONNX, the
    compiled package) load now, else the transformers tokenizer (~3 s of a cold start on two cores)."""
    exported = folder / ONNX_DIR / TOKENIZER_NAME
    if exported_only and exported.is_file():
        try:
            return Tokenizer.from_file(str(exported))
        except Exception as error:  # tokenizers raises a bare Exception on bad JSON
            raise ModelLoadError(f"{exported} is corrupt ({error}); re-run `tweet-classifier export`") from None
    auto_tokenizer = transformers_attribute("AutoTokenizer")
    try:
        return auto_tokenizer.from_pretrained(str(folder), trust_remote_code=False)
    except (OSError, ValueError, TypeError) as error:
        raise ModelLoadError(f"cannot load the tokenizer from {folder} ({error}); re-save the model folder") from None


def special_token_ids(tokenizer: Any) -> tuple[int | None, np.ndarray]:
    """The ``[UNK]`` id (``None`` without one) and the ids of the other special tokens ([CLS], [SEP],
    [PAD], ...), from either tokenizer kind."""
    if is_rust_tokenizer(tokenizer):
        unk_token = getattr(tokenizer.model, "unk_token", None)
        unk_id = tokenizer.token_to_id(unk_token) if unk_token else None
        special = {token_id for token_id, token in tokenizer.get_added_tokens_decoder().items() if token.special}
    else:
        unk_id = tokenizer.unk_token_id
        special = set(tokenizer.all_special_ids)
    special.discard(unk_id)
    return unk_id, np.array(sorted(special), dtype=np.int64)


def unk_shares(encoded: dict[str, np.ndarray], unk_id: int | None, special_ids: np.ndarray) -> np.ndarray:
    """Per row of a tokenized batch: the share of ``[UNK]`` among the tokens the model saw, special tokens
    and padding not counted (the drift monitor's ``unk_share``); 0 without an ``[UNK]`` id."""
    ids = encoded["input_ids"]
    if unk_id is None:
        return np.zeros(len(ids))
    counted = ~np.isin(ids, special_ids)
    if "attention_mask" in encoded:
        counted &= encoded["attention_mask"].astype(bool)
    totals = counted.sum(axis=1)
    unknown = (counted & (ids == unk_id)).sum(axis=1)
    return np.divide(unknown, totals, out=np.zeros(len(ids)), where=totals > 0)
