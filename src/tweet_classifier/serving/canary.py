"""Where the canary's labelled rows come from: ``CANARY_FILE`` if set, else the model folder's own.

The service streams them through the same predictor as users, behind users, for the live macro-F1
(``ClassifierService.run_canary``); this module only finds and reads them, and says why when there are none.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.artifact import ArtifactError, read_canary
from tweet_classifier.serving.errors import BadRequestError

logger = logging.getLogger(__name__)

CanaryRows = tuple[list[str], list[str], dict[str, Any]]


def read_labelled_file(path: str | Path, labels: Sequence[str]) -> tuple[list[str], list[str]]:
    """A canary file: CSV or JSONL with ``text`` and ``label`` columns; rows with unknown labels are dropped."""
    source = Path(path)
    if not source.is_file():
        raise BadRequestError(f"CANARY_FILE {source} does not exist: point it at a CSV or JSONL with text,label")
    try:
        if source.suffix.lower() in {".jsonl", ".json"}:
            frame = pd.read_json(source, lines=True, dtype=False)
        else:
            frame = pd.read_csv(source, dtype=str, keep_default_na=False)
    except ValueError as error:
        raise BadRequestError(f"CANARY_FILE {source} is unreadable ({error}): use CSV or JSONL") from None
    missing = {"text", "label"} - set(frame.columns)
    if missing:
        raise BadRequestError(f"CANARY_FILE {source} lacks columns {sorted(missing)}: it needs text and label")
    frame = frame[frame["label"].astype(str).isin(set(labels))]
    return [str(text) for text in frame["text"]], [str(label) for label in frame["label"]]


def canary_rows(
    canary_file: Path | None, folder: Path | None, labels: Sequence[str], max_rows: int
) -> tuple[CanaryRows | None, str]:
    """Labelled rows for the live macro-F1 (``texts, labels, provenance``, at most ``max_rows``):
    ``canary_file`` (``CANARY_FILE``) if set, else the model ``folder``'s own; or ``None`` and why not."""
    if canary_file is not None:
        try:
            texts, row_labels = read_labelled_file(canary_file, labels)
        except BadRequestError as error:
            logger.error("%s", error)
            return None, str(error)
        source: dict[str, Any] = {"file": str(canary_file), "sampling": "CANARY_FILE"}
    else:
        try:
            canary = read_canary(folder) if folder is not None else None
        except ArtifactError as error:
            logger.warning("%s", error)
            return None, f"{error} (or set CANARY_FILE)"
        if canary is None:
            return None, (
                "this model folder has no labelled canary rows (canary.jsonl): set CANARY_FILE to a CSV or "
                "JSONL with text,label, or run `tweet-classifier export --model DIR` where its data is"
            )
        known = set(labels)
        pairs = [(text, label) for text, label in zip(canary.texts, canary.labels, strict=True) if label in known]
        texts, row_labels = [text for text, _ in pairs], [label for _, label in pairs]
        source = canary.provenance
    if not texts:
        return None, "the canary set has no row with one of this model's labels"
    if len(texts) > max_rows:
        source = {**source, "capped_to": max_rows, "expected_macro_f1": None}
    return (texts[:max_rows], row_labels[:max_rows], source), ""
