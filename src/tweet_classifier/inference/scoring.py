"""A model's probabilities on many texts through the ``Predictor``'s batch path: what evaluation reports,
what training writes into ``metrics.json`` and the canary, and what calibration is fitted on.

One engine for serving and for measuring, so a reported number is what the server's reference backend
computes: ``torch-fp32`` (``torch-bf16``, bf16 weights as served, when ``evaluate.bf16`` asks for it),
uncalibrated (the model's own softmax and argmax: calibration is fitted on these numbers and nothing is
tuned on test), and every row scored however long (the character cap is for requests, not for splits).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tweet_classifier.artifact import read_json
from tweet_classifier.inference.backends import REFERENCE_BACKEND
from tweet_classifier.inference.errors import ModelLoadError
from tweet_classifier.inference.predictor import Predictor


def load_scorer(
    model: str | Path, revision: str | None = None, *, bf16: bool = False, batch_size: int = 64
) -> Predictor:
    """The Predictor of a model folder or Hub id for scoring splits: reference backend, raw probabilities."""
    # torch is the backend being loaded (so it costs nothing extra here); the module stays light to import.
    import torch

    predictor = Predictor.load(
        model,
        revision=revision,
        backend="torch-bf16" if bf16 else REFERENCE_BACKEND,
        max_chars=sys.maxsize,
        # The process's own thread count: a training run or a test keeps the threads it set.
        num_threads=torch.get_num_threads(),
        batch_size=batch_size,
        warn_unverified=False,
        calibrated=False,
    )
    _check_label_order(predictor)
    return predictor


def _check_label_order(predictor: Predictor) -> None:
    """The manifest names the columns of the scores; the weights' config.json must agree, column by column."""
    id2label = read_json(predictor.folder / "config.json").get("id2label", {})
    model_labels = [id2label.get(str(index)) for index in range(len(id2label))]
    if model_labels != predictor.labels:
        raise ModelLoadError(
            f"{predictor.folder}: config.json labels {model_labels} disagree with the manifest labels "
            f"{predictor.labels}; the folder was edited by hand: retrain or re-download it"
        )


def score_texts(predictor: Predictor, texts: Sequence[str]) -> np.ndarray:
    """Probabilities of ``texts``: rows in input order, columns in ``predictor.labels`` order."""
    predictions = predictor.predict_batch(list(texts))
    if not predictions:
        return np.zeros((0, len(predictor.labels)), dtype=np.float32)
    return np.array(
        [[prediction.scores[label] for label in predictor.labels] for prediction in predictions], dtype=np.float32
    )
