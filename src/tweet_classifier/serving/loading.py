"""What the service needs of a predictor (``PredictorLike``) and how the real one is loaded.

The service is written against the protocol, so tests serve a keyword-rule double through the very same
code; ``load_real_predictor`` loads ``inference.predictor.Predictor`` with the serving settings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from tweet_classifier.config import InferenceConfig
from tweet_classifier.inference.predictor import Predictor


class PredictionLike(Protocol):
    label: str
    scores: dict[str, float]
    normalized_text: str
    compute_ms: float
    needs_review: bool
    # Share of [UNK] in the encoding the model ran on (the drift monitor's feature; 0.0 when not measured).
    unk_share: float


class PredictorLike(Protocol):
    """The parts of ``predictor.Predictor`` the service uses (see docs/DESIGN.md)."""

    labels: list[str]
    model_version: str
    manifest: Any

    def validate(self, text: object) -> str: ...
    def predict(self, text: str) -> PredictionLike: ...
    def predict_batch(self, texts: Sequence[str]) -> list[PredictionLike]: ...


PredictorLoader = Callable[[str, str | None], PredictorLike]


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
