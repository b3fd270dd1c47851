"""TF-IDF word + character n-grams and a class-weighted logistic regression: the baseline.

It is the yardstick every fine-tuned model is compared with, the model behind the label-noise audit's
out-of-fold probabilities (``audit.py``) and the model the cleaning ablation retrains (``ablation.py``).
It trains on the train split (with the cleaning pipeline's sample weights), picks ``C`` on validation
macro-F1 and scores the test split once.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import joblib
import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from tweet_classifier import metrics
from tweet_classifier.artifact import METRICS_NAME
from tweet_classifier.config import BaselineConfig, RunConfig
from tweet_classifier.errors import TweetClassifierError

if TYPE_CHECKING:
    from tweet_classifier.data.prepare import PreparedData

logger = logging.getLogger(__name__)

METRICS_FILE = METRICS_NAME
MODEL_FILE = "baseline.joblib"
CONFIG_FILE = "config.yaml"


class BaselineError(TweetClassifierError):
    """The baseline cannot be trained on the given data; the message says what to change."""


@dataclass(frozen=True)
class BaselineResult:
    model: Pipeline
    metrics: dict[str, Any]
    selected_c: float


def build_features(config: BaselineConfig) -> FeatureUnion:
    """Word n-grams catch topical words ("delayed", "thanks"); char_wb n-grams catch misspellings,
    elongations and hashtags glued to words, which tweets are full of."""
    if config.char_ngram_min > config.char_ngram_max:
        raise BaselineError(
            f"baseline.char_ngram_min ({config.char_ngram_min}) is above baseline.char_ngram_max "
            f"({config.char_ngram_max}): set char_ngram_min <= char_ngram_max"
        )
    # Each block gets half the feature budget so neither crowds the other out.
    per_block = max(1, config.max_features // 2)
    shared = {"sublinear_tf": True, "min_df": config.min_df, "max_features": per_block, "dtype": np.float32}
    return FeatureUnion(
        [
            ("word", TfidfVectorizer(analyzer="word", ngram_range=(1, config.word_ngram_max), **shared)),
            (
                "char",
                TfidfVectorizer(
                    analyzer="char_wb", ngram_range=(config.char_ngram_min, config.char_ngram_max), **shared
                ),
            ),
        ]
    )


def _classifier(config: BaselineConfig, c_value: float) -> LogisticRegression:
    return LogisticRegression(
        C=c_value,
        solver="lbfgs",  # measured fastest on the airline train split; saga needs far more iterations at large C
        max_iter=config.max_iter,
        class_weight="balanced" if config.class_weight == "balanced" else None,
    )


def _fit_classifier(
    config: BaselineConfig,
    c_value: float,
    matrix: sparse.csr_matrix,
    train_labels: Sequence[str],
    sample_weight: np.ndarray | None,
) -> LogisticRegression:
    # L-BFGS-B spends its time in many tiny BLAS calls on weight-sized vectors; threading them only
    # adds synchronisation. Measured on airline train word n-grams (2 cores shared with other jobs):
    # 0.7 s with one BLAS thread against 3 s (float32) to 20 s (float64) with two.
    with threadpool_limits(limits=1, user_api="blas"):
        return _classifier(config, c_value).fit(matrix, list(train_labels), sample_weight=sample_weight)


def _check_training_labels(train_labels: Sequence[str], labels: Sequence[str]) -> None:
    if len(train_labels) == 0:
        raise BaselineError("the baseline got zero training examples: check data.source and the cleaning settings")
    unknown = sorted({str(label) for label in train_labels} - set(labels))
    if unknown:
        raise BaselineError(f"training labels {unknown[:5]} are not in the label list {list(labels)}: fix data.labels")
    if len(set(train_labels)) < 2:
        raise BaselineError(
            f"the training split holds only the class {next(iter(set(train_labels)))!r}: a classifier needs at least "
            "two classes (raise data.max_rows or check the cleaning settings)"
        )


def _fit_features(train_texts: Sequence[str], config: BaselineConfig) -> tuple[FeatureUnion, sparse.csr_matrix]:
    features = build_features(config)
    try:
        matrix = features.fit_transform(list(train_texts))
    except ValueError as error:
        # TfidfVectorizer raises "empty vocabulary" / "max_df < min_df" on tiny or blank inputs.
        raise BaselineError(
            f"could not build TF-IDF features from {len(train_texts)} training texts ({error}): "
            "use more data or lower baseline.min_df"
        ) from None
    return features, matrix


def fit_baseline(
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    labels: Sequence[str],
    config: BaselineConfig,
    C: float,  # noqa: N803 - scikit-learn's name for the inverse regularisation strength
    sample_weight: Sequence[float] | np.ndarray | None = None,
) -> Pipeline:
    """Fit features and a logistic regression with inverse regularisation ``C`` on the train split."""
    _check_training_labels(train_labels, labels)
    features, matrix = _fit_features(train_texts, config)
    classifier = _fit_classifier(config, C, matrix, train_labels, _as_weights(sample_weight))
    return Pipeline([("features", features), ("classifier", classifier)])


def _as_weights(sample_weight: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=float)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise BaselineError("sample weights must be finite and non-negative: check the 'weight' column")
    return weights


def _align_probabilities(raw: np.ndarray, model_classes: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Columns in ``labels`` order; a class the model never saw in training gets probability 0."""
    aligned = np.zeros((raw.shape[0], len(labels)), dtype=float)
    position = {label: index for index, label in enumerate(labels)}
    for column, label in enumerate(model_classes):
        aligned[:, position[label]] = raw[:, column]
    return aligned


def predict_probabilities(model: Pipeline, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Class probabilities with columns in ``labels`` order."""
    return _align_probabilities(model.predict_proba(list(texts)), list(model.classes_), labels)


def _predict_labels(probabilities: np.ndarray, labels: Sequence[str]) -> list[str]:
    return [labels[index] for index in probabilities.argmax(axis=1)]


def out_of_fold_probabilities(
    texts: Sequence[str],
    labels_list: Sequence[str],
    labels: Sequence[str],
    config: BaselineConfig,
    folds: int,
    seed: int,
    C: float = 1.0,  # noqa: N803 - scikit-learn's name
    sample_weight: Sequence[float] | np.ndarray | None = None,
) -> np.ndarray:
    """Stratified k-fold probabilities: each row is scored by a classifier that never saw its label.

    The TF-IDF vocabulary and IDF are fitted once on all ``texts``: they use no labels, so no label
    information leaks into a held-out row's score, and k feature fits are saved. Returns an array of
    shape ``(len(texts), len(labels))`` with columns in ``labels`` order, the ``pred_probs`` input
    confident learning needs.
    """
    if len(texts) != len(labels_list):
        raise ValueError(f"got {len(texts)} texts but {len(labels_list)} labels")
    _check_training_labels(labels_list, labels)
    # Only classes present count: a label with no training rows at all gets probability 0 everywhere.
    rarest_label, rarest_count = min(Counter(labels_list).items(), key=lambda item: item[1])
    if rarest_count < folds:
        raise BaselineError(
            f"class {rarest_label!r} has {rarest_count} examples, fewer than the {folds} folds of the out-of-fold "
            "estimate: lower cleaning.label_noise.folds or use more data"
        )
    _, matrix = _fit_features(texts, config)
    label_array = np.asarray(list(labels_list), dtype=object)
    weights = _as_weights(sample_weight)
    probabilities = np.zeros((len(label_array), len(labels)), dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (fit_rows, held_out_rows) in enumerate(splitter.split(np.zeros(len(label_array)), label_array)):
        classifier = _fit_classifier(
            config, C, matrix[fit_rows], label_array[fit_rows], None if weights is None else weights[fit_rows]
        )
        probabilities[held_out_rows] = _align_probabilities(
            classifier.predict_proba(matrix[held_out_rows]), classifier.classes_, labels
        )
        logger.debug("out-of-fold: fold %d/%d scored %d rows", fold + 1, folds, len(held_out_rows))
    return probabilities


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
    _check_training_labels(train_labels, labels)
    if len(validation_texts) == 0:
        raise BaselineError("the validation split is empty: raise data.split.validation_fraction or use more data")
    if not config.c_grid:
        raise BaselineError("baseline.c_grid is empty: list at least one value, e.g. [1.0]")
    features, train_matrix = _fit_features(train_texts, config)
    validation_matrix = features.transform(list(validation_texts))
    weights = _as_weights(sample_weight)
    candidates: list[tuple[float, float, LogisticRegression, dict[str, Any]]] = []
    grid_scores: dict[str, float] = {}
    for c_value in config.c_grid:
        classifier = _fit_classifier(config, c_value, train_matrix, train_labels, weights)
        probabilities = _align_probabilities(classifier.predict_proba(validation_matrix), classifier.classes_, labels)
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
        from tweet_classifier.training.evaluate import build_slices

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
    from tweet_classifier.artifact import write_json_atomic
    from tweet_classifier.config import save_config

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
    from tweet_classifier.arguments import add_config_arguments

    add_config_arguments(parser)
    parser.add_argument("--out", default=None, help="output folder (default: outputs/baseline/<config name>)")


def run(args: argparse.Namespace, command: str) -> int:
    from tweet_classifier.config import load_config
    from tweet_classifier.data.prepare import prepare_data

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
