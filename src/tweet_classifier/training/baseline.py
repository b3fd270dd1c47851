"""The baseline stage: the TF-IDF + logistic regression model trained, selected and scored.

It is the yardstick every fine-tuned model is compared with. The model itself (features, classifier,
probabilities, out-of-fold scores) is defined in ``data/tfidf_model.py``, where the label-noise audit and
the cleaning ablation use it too. This stage trains it on the train split (with the cleaning pipeline's
sample weights), picks ``C`` on validation macro-F1 and scores the test split once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from tweet_classifier import metrics
from tweet_classifier.arguments import add_config_arguments
from tweet_classifier.artifact import METRICS_NAME, write_json_atomic
from tweet_classifier.config import BaselineConfig, RunConfig, load_config, save_config
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.tfidf_model import (
    BaselineError,
    align_probabilities,
    as_weights,
    check_training_labels,
    fit_classifier,
    fit_features,
    predict_probabilities,
)
from tweet_classifier.training.evaluate import build_slices

if TYPE_CHECKING:
    from tweet_classifier.data.prepared import PreparedData

logger = logging.getLogger(__name__)

METRICS_FILE = METRICS_NAME
MODEL_FILE = "baseline.joblib"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class BaselineResult:
    model: Pipeline
    metrics: dict[str, Any]
    selected_c: float


def _predict_labels(probabilities: np.ndarray, labels: Sequence[str]) -> list[str]:
    return [labels[index] for index in probabilities.argmax(axis=1)]


def _weights_of(frame: Any) -> np.ndarray | None:
    return frame["weight"].to_numpy(dtype=float) if "weight" in frame.columns else None


def train_and_select(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    validation_texts: Sequence[str],
    validation_labels: Sequence[str],
    labels: Sequence[str],
    config: BaselineConfig,
    sample_weight: Sequence[float] | np.ndarray | None = None,
) -> tuple[Pipeline, float, dict[str, Any], dict[str, float]]:
    """Fit the features once, one classifier per ``C`` in the grid, keep the best on validation macro-F1.

    Returns the fitted pipeline, the chosen ``C``, the chosen model's validation report and
    ``{"C=<value>": validation macro-F1}`` for every candidate.
    """
    check_training_labels(train_labels, labels)
    if len(validation_texts) == 0:
        raise BaselineError("the validation split is empty: raise data.split.validation_fraction or use more data")
    if not config.c_grid:
        raise BaselineError("baseline.c_grid is empty: list at least one value, e.g. [1.0]")
    features, train_matrix = fit_features(train_texts, config)
    validation_matrix = features.transform(list(validation_texts))
    weights = as_weights(sample_weight)
    candidates: list[tuple[float, float, LogisticRegression, dict[str, Any]]] = []
    grid_scores: dict[str, float] = {}
    for c_value in config.c_grid:
        classifier = fit_classifier(config, c_value, train_matrix, train_labels, weights)
        probabilities = align_probabilities(classifier.predict_proba(validation_matrix), classifier.classes_, labels)
        report = metrics.classification_report_dict(
            list(validation_labels), _predict_labels(probabilities, labels), labels, probabilities=probabilities
        )
        grid_scores[f"C={c_value:g}"] = report["macro_f1"]
        logger.info("baseline C=%g: validation macro-F1 %.4f", c_value, report["macro_f1"])
        candidates.append((report["macro_f1"], c_value, classifier, report))
    # max keeps the first of equal scores: on a tie the earlier (by convention more regularised) C wins.
    _, chosen_c, chosen_classifier, validation_report = max(candidates, key=lambda candidate: candidate[0])
    return (
        Pipeline([("features", features), ("classifier", chosen_classifier)]),
        chosen_c,
        validation_report,
        grid_scores,
    )


def evaluate_baseline(
    model: Pipeline, texts: Sequence[str], true_labels: Sequence[str], labels: Sequence[str]
) -> dict[str, Any]:
    """``metrics.classification_report_dict`` of the model on one split, with ECE."""
    probabilities = predict_probabilities(model, texts, labels)
    return metrics.classification_report_dict(
        list(true_labels), _predict_labels(probabilities, labels), labels, probabilities=probabilities
    )


def run_baseline(prepared: PreparedData, config: RunConfig) -> BaselineResult:
    """Train on ``prepared.train``, select ``C`` on validation, score test once."""
    labels = list(prepared.labels)
    started = time.perf_counter()
    model, chosen_c, validation_report, grid_scores = train_and_select(
        prepared.train["text"].tolist(),
        prepared.train["label"].tolist(),
        prepared.validation["text"].tolist(),
        prepared.validation["label"].tolist(),
        labels,
        config.baseline,
        sample_weight=_weights_of(prepared.train),
    )
    fit_seconds = time.perf_counter() - started
    scoring_started = time.perf_counter()
    if len(prepared.test) == 0:
        raise BaselineError("the test split is empty: raise data.split.test_fraction or use more data")
    test_probabilities = predict_probabilities(model, prepared.test["text"].tolist(), labels)
    test_seconds = time.perf_counter() - scoring_started
    test_truth, test_predicted = prepared.test["label"].tolist(), _predict_labels(test_probabilities, labels)
    test_report = metrics.classification_report_dict(
        test_truth, test_predicted, labels, probabilities=test_probabilities, ece_bins=config.evaluate.ece_bins
    )
    if "raw_text" in prepared.test.columns:
        # The same slices as evaluate.py, so the fine-tuned model and the baseline compare slice by slice.
        slices = build_slices(prepared.test, config.evaluate.short_text_words)
        test_report["slices"] = metrics.slice_metrics(test_truth, test_predicted, labels, slices)
    result_metrics = {
        "validation": validation_report,
        "test": test_report,
        "selected": {"C": chosen_c, "validation_macro_f1_by_C": grid_scores},
        "data": {"train": len(prepared.train), "validation": len(prepared.validation), "test": len(prepared.test)},
        "timing_s": {
            "fit_and_select": round(fit_seconds, 3),
            "test_scoring": round(test_seconds, 3),
            "test_ms_per_text": round(1000 * test_seconds / len(prepared.test), 4),
        },
    }
    logger.info(
        "baseline: C=%g, validation macro-F1 %.4f, test macro-F1 %.4f (fit+select %.1fs)",
        chosen_c,
        validation_report["macro_f1"],
        test_report["macro_f1"],
        fit_seconds,
    )
    return BaselineResult(model=model, metrics=result_metrics, selected_c=chosen_c)


def write_baseline(result: BaselineResult, config: RunConfig, out_dir: str | Path) -> Path:
    """Write ``metrics.json``, ``baseline.joblib`` and the resolved ``config.yaml`` into ``out_dir``."""
    target = Path(out_dir)
    target.mkdir(parents=True, exist_ok=True)
    write_json_atomic(target / METRICS_FILE, result.metrics)
    joblib.dump(result.model, target / MODEL_FILE)
    save_config(config, target / CONFIG_FILE)
    return target


def format_table(result_metrics: dict[str, Any]) -> str:
    """A short markdown table: macro-F1, accuracy and per-class F1 on validation and test."""
    labels = list(result_metrics["test"]["per_class"])
    header = "| split | macro-F1 | accuracy | " + " | ".join(f"F1 {label}" for label in labels) + " |"
    rule = "|---|---|---|" + "---|" * len(labels)
    rows = [header, rule]
    for split in ("validation", "test"):
        report = result_metrics[split]
        per_class = " | ".join(f"{report['per_class'][label]['f1']:.4f}" for label in labels)
        rows.append(f"| {split} | {report['macro_f1']:.4f} | {report['accuracy']:.4f} | {per_class} |")
    return "\n".join(rows)


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    add_config_arguments(parser)
    parser.add_argument("--out", default=None, help="output folder (default: outputs/baseline/<config name>)")


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    out_dir = Path(args.out) if args.out else Path("outputs") / "baseline" / config.name
    started = time.perf_counter()
    prepared = prepare_data(config)
    data_seconds = time.perf_counter() - started
    result = run_baseline(prepared, config)
    result.metrics["timing_s"]["prepare_data"] = round(data_seconds, 3)
    result.metrics["timing_s"]["total"] = round(time.perf_counter() - started, 3)
    write_baseline(result, config, out_dir)
    logger.info("baseline outputs written to %s", out_dir)
    # The table is this command's product, so it goes to stdout; logs go to stderr.
    sys.stdout.write(format_table(result.metrics) + "\n")
    return 0
