"""What every backend applies from ``calibration.json``: the temperature that divides the logits before the
softmax and the review threshold under which a prediction is handed to a person (``needs_review``).

``training/calibration.py`` fits both on the validation split and writes the file; this module only reads
it, so the ``Predictor`` and the portable pipeline need neither scipy nor the training stage.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import CALIBRATION_NAME, read_json
from tweet_classifier.errors import TweetClassifierError

CALIBRATION_FORMAT_VERSION = 1


class CalibrationError(TweetClassifierError):
    """Calibration cannot be fitted or read; the message says what to change."""


@dataclass(frozen=True)
class Calibration:
    """What ``Predictor`` applies: the temperature and the review threshold (``None``: nothing is flagged)."""

    temperature: float
    review_threshold: float | None
    weights_sha256: str | None = None


def read_calibration(model_dir: Path) -> Calibration | None:
    """The folder's calibration, ``None`` when it has none; ``CalibrationError`` when it is unreadable."""
    path = Path(model_dir) / CALIBRATION_NAME
    if not path.is_file():
        return None
    fix = f"re-run `tweet-classifier calibrate --model {model_dir}`"
    try:
        payload = read_json(path)
        if payload.get("format_version") != CALIBRATION_FORMAT_VERSION:
            raise ValueError(f"format_version {payload.get('format_version')!r}")
        temperature = payload["temperature"]
        threshold = payload["review"]["threshold"]
        digest = payload.get("weights_sha256")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError, KeyError, TypeError) as error:
        raise CalibrationError(f"{path} is unreadable ({error}): {fix}") from None
    for name, value in (("temperature", temperature), ("review.threshold", threshold)):
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise CalibrationError(f"{path}: {name} is {value!r}, not a positive number: {fix}")
    return Calibration(float(temperature), float(threshold), digest if isinstance(digest, str) else None)


def review_outcome(review: Mapping[str, Any]) -> str:
    """One sentence on how the review threshold was chosen, for the card, the Model tab and the trust
    report, from calibration.json's ``review`` or metrics.json's ``selective``. Files written before the
    coverage guard (no ``min_coverage``, ``reached`` instead of ``target_reached``) still read."""
    metric, target, threshold = review["metric"], review["target"], review["threshold"]
    value, coverage = review.get("value"), review.get("coverage")
    if "min_coverage" not in review:
        if review.get("reached") is False:
            return (
                f"Target {metric} >= {target} is not reached on validation at any coverage, so the threshold "
                f"{threshold:.3f} flags every prediction (fitted before the coverage guard: re-run "
                "`tweet-classifier calibrate`)."
            )
        kept = f": {value:.3f} on {100 * coverage:.1f}% of validation" if value is not None else ""
        return f"Threshold {threshold:.3f} is the lowest keeping {metric} >= {target} on validation{kept}."
    guard = f">= {100 * review['min_coverage']:.0f}% coverage (and >= {review['min_kept']} rows)"
    kept = f"{value:.3f} on {100 * coverage:.1f}% of validation"
    small = (
        ""
        if review.get("guard_met", True)
        else " Validation is smaller than the guard (review.min_kept, review.min_per_class), so only the "
        "whole split was judged."
    )
    if review.get("target_reached", True):
        return (
            f"Threshold {threshold:.3f} is the lowest keeping {metric} >= {target} on validation at {guard}: "
            f"{kept}.{small}"
        )
    return (
        f"Target {metric} >= {target} is not reachable on validation at {guard}; threshold set at "
        f"{threshold:.3f}, the best {metric} there: {kept} (lower review.target or review.min_coverage and "
        f"re-calibrate to change it).{small}"
    )
