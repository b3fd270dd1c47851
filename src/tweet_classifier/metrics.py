"""Classification metrics on label names, computed with scikit-learn, and latency percentiles.

Pure functions: no I/O, no model. Every stage (baseline, training, evaluation, the app's live F1,
the promotion gate) computes its numbers here so they agree to the last digit. scikit-learn rather
than the ``evaluate`` package: ``evaluate.load`` downloads metric scripts from the Hub at run time
and fails offline. The percentiles (benchmark, export's parity timings, the explanation latency, the
server's live latency, the promotion gate) are numpy's linear interpolation, computed here once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

# Below this many examples a slice's macro-F1 is too noisy to read; it is reported but flagged.
MIN_SLICE_SUPPORT = 30
# The latency percentiles every table and live view reports.
LATENCY_PERCENTILES = (50, 95, 99)


def _check_inputs(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> None:
    if len(y_true) != len(y_pred):
        raise ValueError(f"y_true has {len(y_true)} items but y_pred has {len(y_pred)}")
    if not labels:
        raise ValueError("labels must name at least one class")
    known = set(labels)
    unknown = sorted({str(value) for value in (*y_true, *y_pred) if value not in known})
    if unknown:
        raise ValueError(f"labels {unknown[:5]} are not among the known labels {list(labels)}")


def expected_calibration_error(
    y_true: Sequence[str], probabilities: np.ndarray, labels: Sequence[str], bins: int = 10
) -> float:
    """ECE of the top-1 probability (Guo et al., 2017): the support-weighted gap between
    confidence and accuracy over equal-width confidence bins."""
    probs = np.asarray(probabilities, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(y_true), len(labels)):
        raise ValueError(f"probabilities must have shape ({len(y_true)}, {len(labels)}), got {probs.shape}")
    if len(y_true) == 0:
        return 0.0
    label_index = {label: index for index, label in enumerate(labels)}
    unknown = sorted({str(label) for label in y_true if label not in label_index})
    if unknown:
        # A bare KeyError deep in a list comprehension would not say which labels or what to fix.
        raise ValueError(f"labels {unknown[:5]} are not among the known labels {list(labels)}")
    truth = np.array([label_index[label] for label in y_true])
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == truth
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Right-closed bins so a confidence of exactly 1.0 lands in the last one.
    bin_ids = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    error = 0.0
    for bin_id in range(bins):
        in_bin = bin_ids == bin_id
        if in_bin.any():
            error += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(error)


def _per_class(
    labels: Sequence[str], precision: np.ndarray, recall: np.ndarray, f1: np.ndarray, support: np.ndarray
) -> dict[str, dict[str, Any]]:
    return {
        label: {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, label in enumerate(labels)
    }


def classification_report_dict(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    probabilities: np.ndarray | None = None,
    ece_bins: int = 10,
) -> dict[str, Any]:
    """Macro-F1 (primary), accuracy, per-class precision/recall/F1/support, confusion matrix
    (rows true, columns predicted) and, given probabilities in ``labels`` order, the ECE."""
    _check_inputs(y_true, y_pred, labels)
    label_list = list(labels)
    y_true_list, y_pred_list = list(y_true), list(y_pred)
    if not y_true_list:
        raise ValueError("cannot compute metrics on zero examples")
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true_list, y_pred_list, labels=label_list, zero_division=0
    )
    report: dict[str, Any] = {
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(accuracy_score(y_true_list, y_pred_list)),
        "n": len(y_true_list),
        "per_class": _per_class(label_list, precision, recall, f1, support),
        "confusion_matrix": {
            "labels": label_list,
            "matrix": confusion_matrix(y_true_list, y_pred_list, labels=label_list).tolist(),
        },
    }
    if probabilities is not None:
        report["ece"] = expected_calibration_error(y_true_list, probabilities, label_list, bins=ece_bins)
    return report


def confusion_report_dict(matrix: Sequence[Sequence[int]], labels: Sequence[str]) -> dict[str, Any]:
    """``classification_report_dict``'s numbers (no ECE) from a confusion matrix (rows true, columns
    predicted) in O(labels^2): for a stream scored after every update, where re-scoring every pair
    would cost O(n). Same definitions as scikit-learn with ``zero_division=0``."""
    counts = np.asarray(matrix, dtype=np.int64)
    label_list = list(labels)
    if counts.shape != (len(label_list), len(label_list)):
        raise ValueError(f"matrix must be {len(label_list)}x{len(label_list)} for labels {label_list}")
    total = int(counts.sum())
    if total == 0:
        raise ValueError("cannot compute metrics on zero examples")
    true_positive = np.diag(counts).astype(float)
    support = counts.sum(axis=1)
    predicted = counts.sum(axis=0)

    def share(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
        return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)

    precision = share(true_positive, predicted.astype(float))
    recall = share(true_positive, support.astype(float))
    # F1 as scikit-learn computes it: 2tp / (2tp + fp + fn), zero when a class is never true nor predicted.
    f1 = share(2 * true_positive, (support + predicted).astype(float))
    return {
        "macro_f1": float(np.mean(f1)),
        "accuracy": float(true_positive.sum() / total),
        "n": total,
        "per_class": _per_class(label_list, precision, recall, f1, support),
        "confusion_matrix": {"labels": label_list, "matrix": counts.tolist()},
    }


def slice_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    slices: Mapping[str, Sequence[bool]],
) -> dict[str, dict[str, Any]]:
    """Macro-F1, accuracy and size of each named boolean mask (e.g. ``has_url``, ``group=Delta``).

    Empty slices are skipped; slices under ``MIN_SLICE_SUPPORT`` rows carry ``"small": True``.
    """
    _check_inputs(y_true, y_pred, labels)
    truth, predicted = np.asarray(list(y_true), dtype=object), np.asarray(list(y_pred), dtype=object)
    results: dict[str, dict[str, Any]] = {}
    for name, mask_values in slices.items():
        mask = np.asarray(list(mask_values), dtype=bool)
        if mask.shape != truth.shape:
            raise ValueError(f"slice {name!r} has {mask.size} flags for {truth.size} examples")
        count = int(mask.sum())
        if count == 0:
            continue
        _, _, f1, _ = precision_recall_fscore_support(
            truth[mask], predicted[mask], labels=list(labels), zero_division=0
        )
        present = [index for index, label in enumerate(labels) if label in set(truth[mask])]
        results[name] = {
            "n": count,
            # Macro over the classes present in the slice: absent classes would add spurious zeros.
            "macro_f1": float(np.mean(f1[present])) if present else 0.0,
            "accuracy": float(np.mean(truth[mask] == predicted[mask])),
            "small": count < MIN_SLICE_SUPPORT,
        }
    return results


def percentile(values: Sequence[float], percent: float) -> float:
    """The ``percent`` (0-100) percentile of ``values`` by linear interpolation between the two nearest
    ranks (numpy's default); raises ``ValueError`` on no values, where there is no percentile to report."""
    if len(values) == 0:
        raise ValueError("cannot take a percentile of zero values")
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be between 0 and 100, got {percent}")
    return float(np.percentile(np.asarray(values, dtype=float), percent))


def percentile_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/mean/max of ``values`` (numpy's linear interpolation); ``None`` each when empty."""
    if len(values) == 0:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    array = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(array, LATENCY_PERCENTILES)
    return {
        "n": int(array.size),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(array.mean()),
        "max": float(array.max()),
    }
