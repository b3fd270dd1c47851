"""Live drift: the recent inputs' feature distributions against the training split's, by PSI.

The binning, the PSI and the reference file are ``tweet_classifier.drift``'s (training writes the
reference with the same code); this keeps the last ``window`` inputs' bins and turns the PSI into a
verdict in plain words.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import REFERENCE_NAME
from tweet_classifier.drift import (
    PREDICTED_LABEL,
    DriftReference,
    DriftReferenceError,
    bin_shares,
    drift_bins,
    population_stability_index,
)
from tweet_classifier.text import TextTraits

logger = logging.getLogger(__name__)


def read_reference(folder: Path | None) -> tuple[DriftReference | None, str]:
    """The model folder's drift reference (``reference.json``, written by training), or why drift cannot be
    measured, in words for the drift view."""
    if folder is None:
        return None, "The model's files could not be read, so there is no training reference to compare with."
    path = folder / REFERENCE_NAME
    if not path.is_file():
        return None, (
            f"Drift is off: this model folder has no {REFERENCE_NAME} (the training split's feature "
            "distributions). Models trained by tweet-classifier carry one; for an older folder, run "
            "`tweet-classifier export --model DIR` where its training data is available."
        )
    try:
        return DriftReference.load(path), ""
    except DriftReferenceError as error:
        logger.warning("%s", error)
        return None, f"Drift is off: {error}"


class DriftTracker:
    """Live distributions over the last ``window`` texts vs a reference; PSI per feature."""

    def __init__(self, window: int, min_samples: int, psi_threshold: float) -> None:
        self.window = window
        self.min_samples = min_samples
        self.psi_threshold = psi_threshold
        self.reference: DriftReference | None = None
        # Why there is no reference, once that is known (an older or third-party model folder).
        self.unavailable_reason: str | None = None
        self._recent: deque[dict[str, str]] = deque(maxlen=window)
        self._counts: dict[str, Counter[str]] = {}

    def set_reference(self, reference: DriftReference) -> None:
        self.reference = reference

    def observe(self, traits: TextTraits, unk_share: float, predicted_label: str) -> None:
        bins = drift_bins(traits, unk_share)
        bins[PREDICTED_LABEL] = predicted_label
        if len(self._recent) == self._recent.maxlen:
            for feature, bin_name in self._recent[0].items():
                self._counts[feature][bin_name] -= 1
        self._recent.append(bins)
        for feature, bin_name in bins.items():
            self._counts.setdefault(feature, Counter())[bin_name] += 1

    def livebin_shares(self, feature: str) -> dict[str, float]:
        """Shares of each bin of ``feature`` over the recent window (``predicted_label``: the label mix)."""
        return bin_shares(+self._counts.get(feature, Counter()))

    def summary(self) -> dict[str, Any]:
        live = {feature: bin_shares(+counter) for feature, counter in self._counts.items()}
        n = len(self._recent)
        result: dict[str, Any] = {
            "n": n,
            "window": self.window,
            "threshold": self.psi_threshold,
            "reference": None if self.reference is None else {"n": self.reference.n, "source": self.reference.source},
            "live": live,
            "psi": {},
            "drifted": [],
            "status": "waiting",
            "message": "",
        }
        if self.reference is None:
            result["status"] = "unavailable" if self.unavailable_reason else "waiting"
            result["message"] = self.unavailable_reason or "Loading the training reference; drift is not measured yet."
            return result
        result["psi"] = {
            feature: population_stability_index(self.reference.distributions[feature], live.get(feature, {}))
            for feature in self.reference.distributions
        }
        if n < self.min_samples:
            result["message"] = f"Collecting inputs: {n} of {self.min_samples} needed before drift is scored."
            return result
        drifted = sorted(
            (feature for feature, psi in result["psi"].items() if psi > self.psi_threshold),
            key=lambda feature: -result["psi"][feature],
        )
        result["drifted"] = drifted
        if drifted:
            result["status"] = "drift"
            worst = drifted[0]
            result["message"] = (
                f"Warning: recent inputs differ from the training data in {', '.join(drifted)} "
                f"(PSI {result['psi'][worst]:.2f} > {self.psi_threshold:g} for {worst}). "
                "Predictions may be less accurate than the test metrics say; check the new inputs and "
                "consider retraining on them."
            )
        else:
            result["status"] = "ok"
            result["message"] = (
                f"No drift: every feature's PSI is at most {self.psi_threshold:g} over the last {n} inputs."
            )
        return result
