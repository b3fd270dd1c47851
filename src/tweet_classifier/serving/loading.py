"""What the service needs of a predictor (``PredictorLike``) and how the real one is loaded.

The service is written against the protocol, so tests serve a keyword-rule double through the very same
code; ``load_real_predictor`` loads ``inference.predictor.Predictor`` with the serving settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from tweet_classifier.config import InferenceConfig
from tweet_classifier.inference.predictor import Predictor, is_rust_tokenizer, load_tokenizer


class PredictionLike(Protocol):
    label: str
    scores: dict[str, float]
    normalized_text: str
    compute_ms: float
    needs_review: bool


class PredictorLike(Protocol):
    """The parts of ``predictor.Predictor`` the service uses (see docs/DESIGN.md)."""

    labels: list[str]
    model_version: str
    manifest: Any

    def validate(self, text: object) -> str: ...
    def predict(self, text: str) -> PredictionLike: ...
    def predict_batch(self, texts: Sequence[str]) -> list[PredictionLike]: ...


PredictorLoader = Callable[[str, str | None], PredictorLike]


class _UnkCounter:
    """Token ids of a text, without special tokens, and the [UNK] id, from either tokenizer kind."""

    def __init__(self, ids: Callable[[str], list[int]], unk_id: int | None) -> None:
        self.ids = ids
        self.unk_id = unk_id

    @classmethod
    def load(cls, folder: Path) -> _UnkCounter:
        # The exported Rust tokenizer when the folder has one (no transformers import), else AutoTokenizer;
        # either way a private copy: a fast tokenizer shared across threads can fail with "Already borrowed".
        tokenizer = load_tokenizer(folder, exported_only=True)
        if is_rust_tokenizer(tokenizer):
            tokenizer.no_truncation()  # exported for the model (max_length, padding); here every token counts
            tokenizer.no_padding()
            unk_token = getattr(tokenizer.model, "unk_token", None)
            return cls(
                lambda text: list(tokenizer.encode(text, add_special_tokens=False).ids),
                tokenizer.token_to_id(unk_token) if unk_token else None,
            )
        return cls(
            lambda text: list(tokenizer(text, add_special_tokens=False, truncation=True, max_length=512)["input_ids"]),
            tokenizer.unk_token_id,
        )


def load_real_predictor(model: str, revision: str | None, inference: InferenceConfig) -> PredictorLike:
    # max_chars unset by any layer: the model folder's own cap (manifest.max_chars) applies.
    # defer_batch: healthy as soon as single texts are served warm; the batch backend joins in the background.
    return Predictor.load(
        model,
        revision=revision,
        backend=inference.backend,
        max_chars=inference.max_chars if "max_chars" in inference.model_fields_set else None,
        num_threads=inference.num_threads or None,
        batch_size=inference.batch_size,
        defer_batch=True,
    )
