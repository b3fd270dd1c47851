"""One chunk of rows to its prediction columns, and the counts: what every engine's worker runs (the local
engine in this process, each Ray actor in its own), so both write the same rows."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.bulk.formats import ESCAPED_BYTE

# Error kinds, in the order the summary lists them.
ERROR_KINDS = ("empty", "too_long", "undecodable", "not_text", "invalid")


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    resumed_rows: int = 0
    seconds: float = 0.0

    def counts(self) -> dict[str, Any]:
        """What a counts file (and a Ray actor's answer) holds: the rows, the scored and the errors."""
        return {"rows": self.rows, "scored": self.scored, "errors": self.errors}

    @property
    def texts_per_s(self) -> float:
        return (self.rows - self.resumed_rows) / self.seconds if self.seconds > 0 else 0.0


# Scores a list of chunks and yields them in order, each one's counts added to the summary before it is yielded.
ScoreChunks = Callable[[list[pd.DataFrame], Summary], Iterator[pd.DataFrame]]


@dataclass(frozen=True)
class OutputColumns:
    """The names of the columns ``predict`` adds (``prefix`` avoids clashes with the input's own)."""

    labels: tuple[str, ...]
    prefix: str = ""

    @property
    def label(self) -> str:
        return f"{self.prefix}label"

    def probability(self, label: str) -> str:
        return f"{self.prefix}prob_{label}"

    @property
    def model_version(self) -> str:
        return f"{self.prefix}model_version"

    @property
    def error(self) -> str:
        return f"{self.prefix}error"

    def names(self) -> list[str]:
        return [self.label, *map(self.probability, self.labels), self.model_version, self.error]


def check_text(predictor: Any, text: object, encoding: str) -> tuple[str | None, str | None]:
    """``(kind, message)`` of why ``text`` cannot be scored; ``(None, None)`` when it can."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "empty", "text is empty (missing cell): put the tweet in the text column"
    if isinstance(text, str) and ESCAPED_BYTE.search(text):
        byte = ord(ESCAPED_BYTE.search(text).group()) - 0xDC00  # type: ignore[union-attr]
        return "undecodable", (
            f"text is not valid {encoding} (byte 0x{byte:02x}): pass --encoding with the file's encoding or fix the row"
        )
    try:
        predictor.normalize(text)
    except TweetClassifierError as error:
        if not isinstance(text, str):
            return "not_text", str(error)
        if len(text) > predictor.max_chars:
            return "too_long", str(error)
        return ("empty" if not text.strip() else "invalid"), str(error)
    return None, None


def score_frame(
    predictor: Any, frame: pd.DataFrame, text_column: str, columns: OutputColumns, encoding: str, summary: Summary
) -> pd.DataFrame:
    """``frame`` with the prediction columns added; bad rows get ``error`` and no label."""
    texts = frame[text_column].tolist()
    line_errors = frame.pop("_line_error").tolist() if "_line_error" in frame.columns else [None] * len(texts)
    errors: list[str | None] = []
    valid: list[int] = []
    for position, (text, line_error) in enumerate(zip(texts, line_errors, strict=True)):
        if isinstance(line_error, str):
            kind, message = "invalid", line_error
        else:
            kind, message = check_text(predictor, text, encoding)
        if kind is None:
            valid.append(position)
        else:
            summary.errors[kind] += 1
        errors.append(message)
    predictions = predictor.predict_batch([texts[position] for position in valid]) if valid else []
    labels: list[str | None] = [None] * len(texts)
    probabilities = {label: [math.nan] * len(texts) for label in columns.labels}
    for position, prediction in zip(valid, predictions, strict=True):
        labels[position] = prediction.label
        for label in columns.labels:
            probabilities[label][position] = prediction.scores[label]
    scored = frame.copy()
    scored[columns.label] = labels
    for label in columns.labels:
        scored[columns.probability(label)] = probabilities[label]
    scored[columns.model_version] = predictor.model_version
    scored[columns.error] = errors
    summary.rows += len(texts)
    summary.scored += len(valid)
    return scored
