"""tokenization.py: the [UNK] share each prediction carries comes from the encoding the model ran on, and
equals what the drift monitor computed by tokenizing the text a second time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tweet_classifier.drift import unk_share
from tweet_classifier.inference.predictor import Predictor
from tweet_classifier.inference.tokenization import load_tokenizer, special_token_ids, unk_shares

# The base WordPiece vocabulary has no token for the runes and the monocular O: each becomes one [UNK]
# (emoji do not: the normalizer spells them out).
TEXTS = ["late again", "lost my bag ᚠ and ꙮ", "ꙮ", "@united thanks 😍 for the upgrade", "ok ok ok ok"]


def _second_tokenization(folder: Path, text: str) -> float:
    """How the server counted before: the normalized text tokenized again, without special tokens."""
    tokenizer = load_tokenizer(folder)
    return unk_share(tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.unk_token_id)


@pytest.mark.parametrize("backend", ["torch-fp32", "onnx-int8"])
def test_each_prediction_carries_the_unk_share_of_its_own_encoding(exported: Path, backend: str) -> None:
    predictor = Predictor.load(exported, backend=backend, warn_unverified=False)
    for prediction in [*predictor.predict_batch(TEXTS), predictor.predict(TEXTS[1])]:
        expected = _second_tokenization(exported, prediction.normalized_text)
        assert prediction.unk_share == pytest.approx(expected), prediction.normalized_text
    shares = [prediction.unk_share for prediction in predictor.predict_batch(TEXTS)]
    assert shares[0] == 0.0
    assert shares[2] == 1.0  # one token, unknown
    assert 0 < shares[1] < 1


def test_special_tokens_and_padding_are_not_counted(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    unk_id, special_ids = special_token_ids(tokenizer)
    assert unk_id == tokenizer.unk_token_id
    assert unk_id not in special_ids
    assert {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id} <= set(special_ids.tolist())
    encoded = {name: np.asarray(values) for name, values in tokenizer(["ꙮ", "ꙮ late again"], padding=True).items()}
    # Row 0: [CLS] [UNK] [SEP] + padding -> 1 of 1; row 1: [CLS] [UNK] late again [SEP] -> 1 of 3.
    assert unk_shares(encoded, unk_id, special_ids).tolist() == pytest.approx([1.0, 1 / 3])
    assert unk_shares(encoded, None, special_ids).tolist() == [0.0, 0.0]
