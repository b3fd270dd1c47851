"""Label-noise audit of the train split with confident learning (Northcutt et al., 2021; cleanlab).

Every train row is scored by a model that never saw it (out-of-fold probabilities), and cleanlab
flags rows whose given label the out-of-fold model confidently disagrees with. The policy then
reports them, drops them or down-weights them. The model is a parameter: ``data.prepare_data`` passes
the TF-IDF model of ``tfidf_model.label_noise_model``. It calls this after splitting, on the train
split only: validation and test keep their labels so scores stay comparable.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tweet_classifier.config import RunConfig
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

SECTION_NAME = "label_noise"

# The model the audit takes: out-of-fold class probabilities of (texts, given labels, label list, sample
# weights or None), an array of shape (rows, labels) in label-list order, each row scored by a model that
# never saw its label. ``tfidf_model.label_noise_model(config)`` builds the one ``prepare_data`` uses.
OutOfFoldModel = Callable[[Sequence[str], Sequence[str], Sequence[str], "np.ndarray | None"], np.ndarray]


class LabelAuditError(TweetClassifierError):
    """The audit cannot run on this train split; the message says which setting to change."""


def _check_frame(train: pd.DataFrame, labels: list[str]) -> None:
    missing = [column for column in ("text", "label") if column not in train.columns]
    if missing:
        raise LabelAuditError(f"the train frame lacks the column(s) {missing}: pass a frame from data.prepare_data")
    unknown = sorted(set(train["label"].astype(str)) - set(labels))
    if unknown:
        raise LabelAuditError(f"train labels {unknown[:5]} are not in the label list {labels}: fix data.labels")


def find_label_issues_ranked(given_label_ids: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """Positions of rows with a likely wrong label, most severe first (lowest self-confidence)."""
    # Start-up time: cleanlab (and what it pulls in) loads only when an audit runs.
    from cleanlab.filter import find_label_issues

    return find_label_issues(
        labels=given_label_ids,
        pred_probs=probabilities,
        return_indices_ranked_by="self_confidence",
        # One process: deterministic, and the machine's cores are better spent elsewhere.
        n_jobs=1,
    )


def audit_label_noise(
    train: pd.DataFrame, labels: list[str], config: RunConfig, model: OutOfFoldModel
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Audit ``train`` with the out-of-fold probabilities of ``model`` and apply ``cleaning.label_noise.policy``.

    Returns the (possibly changed) train frame and the report section
    ``{"name": "label_noise", "policy", "rows_flagged", "share", "by_given_label", "examples", ...}``.
    ``report`` leaves the frame untouched, ``drop`` removes flagged rows (index reset),
    ``downweight`` multiplies their ``weight`` by ``downweight_factor``.
    """
    settings = config.cleaning.label_noise
    if settings.policy == "off":
        return train, {"name": SECTION_NAME, "policy": "off", "rows_flagged": 0, "share": 0.0}
    _check_frame(train, labels)
    started = time.perf_counter()
    texts = train["text"].astype(str).tolist()
    given = train["label"].astype(str).tolist()
    weights = train["weight"].to_numpy(dtype=float) if "weight" in train.columns else None
    try:
        probabilities = model(texts, given, labels, weights)
    except TweetClassifierError as error:
        raise LabelAuditError(f"label-noise audit: {error}") from None
    label_index = {label: index for index, label in enumerate(labels)}
    given_ids = np.array([label_index[label] for label in given])
    ranked = find_label_issues_ranked(given_ids, probabilities)
    flagged_mask = np.zeros(len(train), dtype=bool)
    flagged_mask[ranked] = True

    audited = _apply_policy(train, flagged_mask, settings.policy, settings.downweight_factor)
    suspected = probabilities.argmax(axis=1)
    by_given_label = {label: int(np.sum(flagged_mask & (given_ids == index))) for index, label in enumerate(labels)}
    examples = [
        {
            "text": texts[position],
            "given": given[position],
            "suspected": labels[int(suspected[position])],
            "confidence_in_given": round(float(probabilities[position, given_ids[position]]), 4),
        }
        for position in ranked[: settings.max_examples]
    ]
    section = {
        "name": SECTION_NAME,
        "policy": settings.policy,
        "rows_flagged": int(flagged_mask.sum()),
        "share": float(flagged_mask.mean()) if len(train) else 0.0,
        "by_given_label": by_given_label,
        "rows_before": len(train),
        "rows_after": len(audited),
        "folds": settings.folds,
        "seconds": round(time.perf_counter() - started, 3),
        "examples": examples,
    }
    logger.info(
        "label-noise audit: %d of %d train rows flagged (%.1f%%), policy %s, %.1fs",
        section["rows_flagged"],
        len(train),
        100 * section["share"],
        settings.policy,
        section["seconds"],
    )
    return audited, section


def _apply_policy(train: pd.DataFrame, flagged_mask: np.ndarray, policy: str, downweight_factor: float) -> pd.DataFrame:
    if policy == "drop":
        return train.loc[~flagged_mask].reset_index(drop=True)
    if policy == "downweight":
        changed = train.copy()
        current = changed["weight"].to_numpy(dtype=float) if "weight" in changed.columns else np.ones(len(changed))
        changed["weight"] = np.where(flagged_mask, current * downweight_factor, current)
        return changed
    return train
