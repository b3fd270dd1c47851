"""Calibration and selective prediction: how far to trust each probability, and when to ask a person.

Two things are fitted on the validation split, stored in the model folder as ``calibration.json`` and
applied by ``Predictor`` to every backend's logits (one place: ``Predictor._probabilities``):

* **Temperature scaling** (Guo et al., 2017): one scalar ``T`` dividing the logits, chosen to minimise the
  validation negative log-likelihood. It never changes a label (the argmax is the same), so macro-F1,
  the parity gate's label agreement and the cascade's decisions are untouched; only the confidences move.
  The NLL of ``softmax(z / T)`` is convex in ``1 / T``, so a bounded 1-D Brent search on ``1 / T``
  (``scipy.optimize.minimize_scalar``) finds the global minimum; an L-BFGS over one parameter, or a
  library for it, would add nothing but a dependency.
* **The review threshold**: from the calibrated validation probabilities, the risk-coverage curve
  (predictions sorted by confidence; the metric of the ``k`` most confident ones, for every ``k``) and
  the lowest confidence at which the kept predictions still reach ``review.target`` on ``review.metric``.
  A prediction under it carries ``needs_review: true``. Only cuts whose kept set is big enough to measure
  the metric count (``review.min_coverage``, ``review.min_kept``, ``review.min_per_class``): the few most
  confident rows reach almost any target by chance, or miss it because a class is absent. Where no such cut
  reaches the target, the threshold is the one with the best metric among them and calibration.json says
  ``target_reached: false`` (see ``choose_threshold``).

ECE and the reliability diagram use ``evaluate.ece_bins`` equal-width confidence bins (10 by default),
the same definition as ``metrics.expected_calibration_error``. Temperature scaling is fitted on
log-probabilities where only probabilities are at hand (``evaluate.predict_probabilities``):
``softmax(log p / T) == softmax(z / T)`` because ``log p`` differs from the logits ``z`` by a per-row
constant.

Command: ``tweet-classifier calibrate --model DIR`` fits both for a folder trained before this existed,
reading the validation and test splits through the data pipeline with the folder's own run config.

``Predictor`` imports this module to read ``calibration.json``: scikit-learn and scipy are imported only
inside the fitting functions, so an ONNX-only start stays fast.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tweet_classifier.artifact import CALIBRATION_NAME, file_sha256, read_json, write_json_atomic
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

CALIBRATION_FORMAT_VERSION = 1
# 1/T is searched in this range: T from 0.02 to 50 covers any model a softmax head trains into.
_INVERSE_TEMPERATURE_BOUNDS = (0.02, 50.0)
# Log-probabilities are clipped here: a float32 probability that underflowed to 0 would be -inf.
_MIN_PROBABILITY = 1e-30
# Validation coverages the card's coverage table reads its thresholds at (applied to the test split).
COVERAGE_LEVELS = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)
# Points of the risk-coverage curve kept in calibration.json (for the Model tab's plot).
CURVE_POINTS = 50


class CalibrationError(TweetClassifierError):
    """Calibration cannot be fitted or read; the message says what to change."""


@dataclass(frozen=True)
class Calibration:
    """What ``Predictor`` applies: the temperature and the review threshold (``None``: nothing is flagged)."""

    temperature: float
    review_threshold: float | None
    weights_sha256: str | None = None


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    """Logits up to a per-row constant, from probabilities (what temperature scaling needs)."""
    return np.log(np.clip(np.asarray(probabilities, dtype=np.float64), _MIN_PROBABILITY, 1.0))


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(logits / temperature)`` along the last axis, in float64."""
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    scaled -= scaled.max(axis=-1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def negative_log_likelihood(logits: np.ndarray, truth_index: np.ndarray, temperature: float = 1.0) -> float:
    from scipy.special import log_softmax

    scores = log_softmax(np.asarray(logits, dtype=np.float64) / temperature, axis=-1)
    return float(-scores[np.arange(len(truth_index)), truth_index].mean())


def fit_temperature(logits: np.ndarray, truth_index: Sequence[int]) -> float:
    """The temperature minimising the NLL of ``softmax(logits / T)`` on these rows (1 when every row is
    classified correctly: the NLL then has no minimum)."""
    from scipy.optimize import minimize_scalar

    values = np.asarray(logits, dtype=np.float64)
    truth = np.asarray(truth_index, dtype=np.int64)
    if values.ndim != 2 or len(values) != len(truth) or len(truth) == 0:
        raise CalibrationError(
            f"temperature scaling needs one row of logits per label and at least one row: got logits of "
            f"shape {values.shape} and {len(truth)} labels (is the validation split empty?)"
        )
    if np.all(values.argmax(axis=1) == truth):
        # Without a single error the NLL keeps falling as T -> 0: there is nothing to fit, so T stays 1.
        logger.warning(
            "temperature scaling skipped: all %d rows are classified correctly, so the likelihood has no "
            "minimum (T would go to 0 and every probability to 1); keeping T = 1",
            len(truth),
        )
        return 1.0
    result = minimize_scalar(
        lambda inverse: negative_log_likelihood(values * inverse, truth),
        bounds=_INVERSE_TEMPERATURE_BOUNDS,
        method="bounded",
        options={"xatol": 1e-5},
    )
    return float(1.0 / result.x)


def reliability_bins(
    y_true: Sequence[str], probabilities: np.ndarray, labels: Sequence[str], bins: int
) -> list[dict[str, Any]]:
    """Reliability diagram data: per equal-width confidence bin, its edges, size, mean confidence and
    accuracy (empty bins have ``n == 0`` and ``None`` for both); same bins as the ECE."""
    probs = np.asarray(probabilities, dtype=float)
    label_index = {label: index for index, label in enumerate(labels)}
    truth = np.array([label_index[label] for label in y_true])
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    bin_ids = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows = []
    for bin_id in range(bins):
        in_bin = bin_ids == bin_id
        count = int(in_bin.sum())
        rows.append(
            {
                "lower": float(edges[bin_id]),
                "upper": float(edges[bin_id + 1]),
                "n": count,
                "confidence": float(confidence[in_bin].mean()) if count else None,
                "accuracy": float(correct[in_bin].mean()) if count else None,
            }
        )
    return rows


REVIEW_METRICS = ("macro_f1", "accuracy", "macro_precision")


def risk_coverage(
    y_true: Sequence[str], probabilities: np.ndarray, labels: Sequence[str], metric: str = "macro_f1"
) -> dict[str, np.ndarray]:
    """The metric of the kept predictions at every confidence threshold, in O(n x labels^2).

    Predictions are sorted by top-1 probability, most confident first; a threshold keeps every prediction
    whose confidence is at least it, so only cuts between distinct confidences are listed. Returns arrays
    ``threshold``, ``coverage`` (kept share), ``n_kept``, ``min_class_rows`` (true rows of the rarest
    label among the kept) and ``value`` (the metric on the kept ones), by increasing coverage. Definitions
    as ``metrics.confusion_report_dict`` (every label counts in the macro average, zero when a class is
    neither true nor predicted among the kept).
    """
    if metric not in REVIEW_METRICS:
        raise CalibrationError(f"unknown review metric {metric!r}: choose one of {', '.join(REVIEW_METRICS)}")
    probs = np.asarray(probabilities, dtype=np.float64)
    label_index = {label: index for index, label in enumerate(labels)}
    truth = np.array([label_index[label] for label in y_true], dtype=np.int64)
    if len(truth) == 0:
        raise CalibrationError("the risk-coverage curve needs at least one labelled prediction")
    confidence = probs.max(axis=1)
    order = np.argsort(-confidence, kind="stable")
    truth, predicted, confidence = truth[order], probs.argmax(axis=1)[order], confidence[order]
    n_labels = len(labels)
    true_counts = np.cumsum(np.eye(n_labels)[truth], axis=0)
    predicted_counts = np.cumsum(np.eye(n_labels)[predicted], axis=0)
    hits = np.cumsum(np.eye(n_labels)[truth] * (truth == predicted)[:, None], axis=0)
    # The last row of each run of equal confidences: a threshold cannot split ties.
    cuts = np.flatnonzero(np.append(confidence[1:] < confidence[:-1], True))
    true_counts, predicted_counts, hits = true_counts[cuts], predicted_counts[cuts], hits[cuts]
    n_kept = cuts + 1
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            value = hits.sum(axis=1) / n_kept
        elif metric == "macro_precision":
            value = np.where(predicted_counts > 0, hits / predicted_counts, 0.0).mean(axis=1)
        else:
            denominator = true_counts + predicted_counts
            value = np.where(denominator > 0, 2 * hits / denominator, 0.0).mean(axis=1)
    return {
        "threshold": confidence[cuts],
        "coverage": n_kept / len(truth),
        "n_kept": n_kept,
        "min_class_rows": true_counts.min(axis=1).astype(np.int64),
        "value": value,
    }


def choose_threshold(
    curve: Mapping[str, np.ndarray],
    target: float,
    *,
    min_coverage: float = 0.0,
    min_kept: int = 1,
    min_per_class: int = 0,
) -> dict[str, Any]:
    """The threshold keeping the most predictions whose metric still reaches ``target``, among the cuts
    whose kept set is big enough to measure it: coverage >= ``min_coverage``, >= ``min_kept`` rows and
    >= ``min_per_class`` true rows of every label (pass 0 for accuracy, where the class mix does not
    enter the metric).

    When none of those cuts reaches ``target``, the threshold is the one with the best metric among them
    (the larger coverage on ties): the best the model delivers on enough rows, which is the cut at
    ``min_coverage`` when the curve rises as coverage falls. ``target_reached`` is then false; the target is
    never silently reported as met. When no cut passes the guard at all (validation smaller than
    ``min_kept``, or a class rarer than ``min_per_class``), the whole validation split is the only cut
    judged and ``guard_met`` is false.
    """
    eligible = (
        (curve["coverage"] >= min_coverage - 1e-12)
        & (curve["n_kept"] >= min_kept)
        & (curve["min_class_rows"] >= min_per_class)
    )
    guard_met = bool(eligible.any())
    if not guard_met:
        eligible = np.arange(len(eligible)) == len(eligible) - 1
    reaching = np.flatnonzero(eligible & (curve["value"] >= target))
    if len(reaching):
        best = int(reaching[-1])
    else:
        candidates = np.flatnonzero(eligible)[::-1]  # by decreasing coverage: argmax keeps the largest on ties
        best = int(candidates[np.argmax(curve["value"][candidates])])
    return {
        "threshold": float(curve["threshold"][best]),
        "target_reached": bool(len(reaching)),
        "guard_met": guard_met,
        "coverage": float(curve["coverage"][best]),
        "n_kept": int(curve["n_kept"][best]),
        "value": float(curve["value"][best]),
    }


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


def _kept_report(
    y_true: Sequence[str], probabilities: np.ndarray, labels: Sequence[str], threshold: float
) -> dict[str, Any]:
    """Coverage and the metrics of the predictions a threshold keeps."""
    from tweet_classifier.metrics import classification_report_dict

    probs = np.asarray(probabilities, dtype=np.float64)
    kept = probs.max(axis=1) >= threshold
    row: dict[str, Any] = {"threshold": round(threshold, 6), "coverage": float(kept.mean()), "n_kept": int(kept.sum())}
    if kept.any():
        truth = [label for label, keep in zip(y_true, kept, strict=True) if keep]
        predicted = [labels[index] for index in probs[kept].argmax(axis=1)]
        report = classification_report_dict(truth, predicted, labels)
        row |= {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}
    else:
        row |= {"macro_f1": None, "accuracy": None}
    return row


def coverage_table(
    validation_curve: Mapping[str, np.ndarray],
    y_test: Sequence[str],
    test_probabilities: np.ndarray,
    labels: Sequence[str],
    levels: Sequence[float] = COVERAGE_LEVELS,
) -> list[dict[str, Any]]:
    """For each validation coverage level, the threshold reaching it on validation and what that threshold
    keeps on test (coverage, macro-F1, accuracy): thresholds are never chosen on test. Level 1.0 is
    threshold 0: every prediction acted on, the baseline the other rows improve on."""
    rows = []
    for level in levels:
        index = int(np.searchsorted(validation_curve["coverage"], level - 1e-9))
        index = min(index, len(validation_curve["coverage"]) - 1)
        # Full coverage means no review at all (threshold 0), not "at least the lowest validation confidence".
        threshold = 0.0 if level >= 1.0 else float(validation_curve["threshold"][index])
        row = _kept_report(y_test, test_probabilities, labels, threshold)
        rows.append({"validation_coverage": float(validation_curve["coverage"][index])} | row)
    return rows


def _sampled_curve(curve: Mapping[str, np.ndarray], points: int = CURVE_POINTS) -> list[dict[str, float]]:
    indices = np.unique(np.linspace(0, len(curve["coverage"]) - 1, min(points, len(curve["coverage"]))).astype(int))
    return [
        {
            "coverage": float(curve["coverage"][index]),
            "threshold": float(curve["threshold"][index]),
            "value": float(curve["value"][index]),
        }
        for index in indices
    ]


def fit_calibration(
    validation_truth: Sequence[str],
    validation_probabilities: np.ndarray,
    test_truth: Sequence[str],
    test_probabilities: np.ndarray,
    labels: Sequence[str],
    review_metric: str,
    review_target: float,
    ece_bins: int,
    min_coverage: float = 0.0,
    min_kept: int = 1,
    min_per_class: int = 0,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(calibration.json payload without the weights hash, metrics.json additions)`` from the torch fp32
    (uncalibrated) probabilities of the validation and test splits. The ``min_*`` guard the threshold
    search (``choose_threshold``; ``min_per_class`` applies to the macro metrics only)."""
    from tweet_classifier.metrics import expected_calibration_error

    label_index = {label: index for index, label in enumerate(labels)}
    validation_logits = log_probabilities(validation_probabilities)
    test_logits = log_probabilities(test_probabilities)
    validation_index = np.array([label_index[label] for label in validation_truth])
    temperature = fit_temperature(validation_logits, validation_index)
    validation_calibrated = apply_temperature(validation_logits, temperature)
    test_calibrated = apply_temperature(test_logits, temperature)
    curve = risk_coverage(validation_truth, validation_calibrated, labels, review_metric)
    per_class = min_per_class if review_metric.startswith("macro_") else 0
    chosen = choose_threshold(
        curve, review_target, min_coverage=min_coverage, min_kept=min_kept, min_per_class=per_class
    )
    if not chosen["guard_met"]:
        logger.warning(
            "validation has %d rows (rarest label: %d): no threshold keeps review.min_coverage=%s, "
            "review.min_kept=%d and review.min_per_class=%d of it, so the review threshold is judged on the "
            "whole split; lower those keys or give validation more rows (data.split)",
            len(validation_truth),
            int(curve["min_class_rows"][-1]),
            min_coverage,
            min_kept,
            per_class,
        )
    if not chosen["target_reached"]:
        logger.warning(
            "review.target %s >= %.3f is not reachable on validation with >= %.0f%% of it (review.min_coverage) "
            "and >= %d rows (review.min_kept) kept: threshold set at %.4f, the best there (%s %.3f on %.1f%% of "
            "validation); lower review.target, or review.min_coverage / review.min_kept for a noisier estimate, "
            "and re-run `tweet-classifier calibrate`",
            review_metric,
            review_target,
            100 * min_coverage,
            min_kept,
            chosen["threshold"],
            review_metric,
            chosen["value"],
            100 * chosen["coverage"],
        )
    test_index = np.array([label_index[label] for label in test_truth])

    def ece(truth: Sequence[str], probabilities: np.ndarray) -> float:
        return expected_calibration_error(list(truth), probabilities, labels, bins=ece_bins)

    validation_numbers = {
        "n": len(validation_index),
        "nll_before": negative_log_likelihood(validation_logits, validation_index),
        "nll_after": negative_log_likelihood(validation_logits, validation_index, temperature),
        "ece_before": ece(validation_truth, validation_probabilities),
        "ece_after": ece(validation_truth, validation_calibrated),
    }
    test_numbers = {
        "n": len(test_index),
        "nll_before": negative_log_likelihood(test_logits, test_index),
        "nll_after": negative_log_likelihood(test_logits, test_index, temperature),
        "ece_before": ece(test_truth, test_probabilities),
        "ece_after": ece(test_truth, test_calibrated),
        "reliability_before": reliability_bins(test_truth, test_probabilities, labels, ece_bins),
        "reliability_after": reliability_bins(test_truth, test_calibrated, labels, ece_bins),
    }
    guard = {"min_coverage": min_coverage, "min_kept": min_kept, "min_per_class": per_class}
    review = {"metric": review_metric, "target": review_target} | guard | chosen
    payload = {
        "format_version": CALIBRATION_FORMAT_VERSION,
        "temperature": temperature,
        "fitted_on": "validation",
        "ece_bins": ece_bins,
        "validation": validation_numbers,
        "review": review,
        "risk_coverage": _sampled_curve(curve),
    }
    kept = _kept_report(test_truth, test_calibrated, labels, chosen["threshold"])
    metrics = {
        "calibration": {"temperature": temperature, "ece_bins": ece_bins, "validation": validation_numbers}
        | {"test": test_numbers},
        "selective": review
        | {
            "test": kept,
            "coverage_table": coverage_table(curve, test_truth, test_calibrated, labels),
        },
    }
    return payload, metrics


def write_calibration(
    model_dir: Path,
    validation_truth: Sequence[str],
    validation_probabilities: np.ndarray,
    test_truth: Sequence[str],
    test_probabilities: np.ndarray,
    labels: Sequence[str],
    config: Any,
) -> dict[str, Any]:
    """Fit, write ``calibration.json`` (with the weights' hash) into ``model_dir`` and return the
    ``metrics.json`` additions (``calibration`` and ``selective``). ``config`` is the ``RunConfig``."""
    payload, metrics = fit_calibration(
        validation_truth,
        validation_probabilities,
        test_truth,
        test_probabilities,
        labels,
        review_metric=config.review.metric,
        review_target=config.review.target,
        ece_bins=config.evaluate.ece_bins,
        min_coverage=config.review.min_coverage,
        min_kept=config.review.min_kept,
        min_per_class=config.review.min_per_class,
    )
    payload["weights_sha256"] = file_sha256(model_dir / "model.safetensors")
    write_json_atomic(model_dir / CALIBRATION_NAME, payload)
    numbers = metrics["calibration"]["test"]
    logger.info(
        "temperature %.3f: test ECE %.4f -> %.4f; review threshold %.4f keeps %.1f%% of test at macro-F1 %s",
        payload["temperature"],
        numbers["ece_before"],
        numbers["ece_after"],
        payload["review"]["threshold"],
        100 * metrics["selective"]["test"]["coverage"],
        metrics["selective"]["test"]["macro_f1"],
    )
    return metrics


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


# ---- command ------------------------------------------------------------------------------------------
def calibrate_model_folder(model_dir: Path, config: Any) -> dict[str, Any]:
    """Fit calibration for an existing folder: score its validation and test splits with torch fp32 (the
    training path), write ``calibration.json``, merge the numbers into ``metrics.json``, rewrite the card."""
    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.inference.portable import write_portable_pipeline
    from tweet_classifier.training import card
    from tweet_classifier.training.evaluate import load_model, split_probabilities

    loaded = load_model(model_dir)
    prepared = prepare_data(config)
    if list(prepared.labels) != list(loaded.manifest.labels):
        raise CalibrationError(
            f"model labels {loaded.manifest.labels} differ from the data's {prepared.labels}: "
            "pass the --config the model was trained with"
        )
    probabilities = {}
    for split in ("validation", "test"):
        frame = getattr(prepared, split)
        if len(frame) == 0:
            raise CalibrationError(f"the {split} split is empty: check data.split in the config")
        probabilities[split] = split_probabilities(loaded, frame, config)
    additions = write_calibration(
        model_dir,
        prepared.validation["label"].astype(str).tolist(),
        probabilities["validation"],
        prepared.test["label"].astype(str).tolist(),
        probabilities["test"],
        loaded.manifest.labels,
        config,
    )
    metrics_path = model_dir / "metrics.json"
    metrics = read_json(metrics_path) if metrics_path.is_file() else {}
    write_json_atomic(metrics_path, metrics | additions)
    write_portable_pipeline(model_dir)  # the transformers pipeline divides by the new temperature too
    if "test" in metrics:
        card.write_model_card(model_dir)
    return additions


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    from tweet_classifier.arguments import add_model_folder_arguments

    add_model_folder_arguments(parser)


def run(args: argparse.Namespace, command: str) -> int:
    from tweet_classifier.inference.export import resolve_run_config

    model_dir: Path = args.model
    config = resolve_run_config(model_dir, args.config, args.overrides)
    calibrate_model_folder(model_dir, config)
    return 0
