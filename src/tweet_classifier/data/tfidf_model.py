"""TF-IDF word + character n-grams and a class-weighted logistic regression: the one model definition.

The baseline stage (``training/baseline.py``) trains it on the train split, picks ``C`` on validation and
scores test; the label-noise audit (``audit.py``) gets its out-of-fold probabilities from
``label_noise_model``; the cleaning ablation retrains it once per cleaning step. It lives in the data layer
because the data stage's audit needs it and the data stage never imports training.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import FeatureUnion, Pipeline
from threadpoolctl import threadpool_limits

from tweet_classifier.config import BaselineConfig, RunConfig
from tweet_classifier.errors import TweetClassifierError

if TYPE_CHECKING:
    from tweet_classifier.data.audit import OutOfFoldModel

logger = logging.getLogger(__name__)


class BaselineError(TweetClassifierError):
    """The baseline cannot be trained on the given data; the message says what to change."""


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


def classifier(config: BaselineConfig, c_value: float) -> LogisticRegression:
    return LogisticRegression(
        C=c_value,
        solver="lbfgs",  # measured fastest on the airline train split; saga needs far more iterations at large C
        max_iter=config.max_iter,
        class_weight="balanced" if config.class_weight == "balanced" else None,
    )


def fit_classifier(
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
        return classifier(config, c_value).fit(matrix, list(train_labels), sample_weight=sample_weight)


def check_training_labels(train_labels: Sequence[str], labels: Sequence[str]) -> None:
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


def fit_features(train_texts: Sequence[str], config: BaselineConfig) -> tuple[FeatureUnion, sparse.csr_matrix]:
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
    check_training_labels(train_labels, labels)
    features, matrix = fit_features(train_texts, config)
    classifier = fit_classifier(config, C, matrix, train_labels, as_weights(sample_weight))
    return Pipeline([("features", features), ("classifier", classifier)])


def as_weights(sample_weight: Sequence[float] | np.ndarray | None) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=float)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise BaselineError("sample weights must be finite and non-negative: check the 'weight' column")
    return weights


def align_probabilities(raw: np.ndarray, model_classes: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Columns in ``labels`` order; a class the model never saw in training gets probability 0."""
    aligned = np.zeros((raw.shape[0], len(labels)), dtype=float)
    position = {label: index for index, label in enumerate(labels)}
    for column, label in enumerate(model_classes):
        aligned[:, position[label]] = raw[:, column]
    return aligned


def predict_probabilities(model: Pipeline, texts: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Class probabilities with columns in ``labels`` order."""
    return align_probabilities(model.predict_proba(list(texts)), list(model.classes_), labels)


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
    check_training_labels(labels_list, labels)
    # Only classes present count: a label with no training rows at all gets probability 0 everywhere.
    rarest_label, rarest_count = min(Counter(labels_list).items(), key=lambda item: item[1])
    if rarest_count < folds:
        raise BaselineError(
            f"class {rarest_label!r} has {rarest_count} examples, fewer than the {folds} folds of the out-of-fold "
            "estimate: lower cleaning.label_noise.folds or use more data"
        )
    _, matrix = fit_features(texts, config)
    label_array = np.asarray(list(labels_list), dtype=object)
    weights = as_weights(sample_weight)
    probabilities = np.zeros((len(label_array), len(labels)), dtype=float)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (fit_rows, held_out_rows) in enumerate(splitter.split(np.zeros(len(label_array)), label_array)):
        classifier = fit_classifier(
            config, C, matrix[fit_rows], label_array[fit_rows], None if weights is None else weights[fit_rows]
        )
        probabilities[held_out_rows] = align_probabilities(
            classifier.predict_proba(matrix[held_out_rows]), classifier.classes_, labels
        )
        logger.debug("out-of-fold: fold %d/%d scored %d rows", fold + 1, folds, len(held_out_rows))
    return probabilities


def label_noise_model(config: RunConfig) -> OutOfFoldModel:
    """The model the label-noise audit scores with: this TF-IDF model, ``cleaning.label_noise.folds`` folds.

    Lighter features than the baseline (``oof_max_features``, ``oof_char_ngram_max``, ``oof_c``): k fits
    instead of one, and the audit needs a ranking, not the last F1 point.
    """
    settings = config.cleaning.label_noise
    features = config.baseline.model_copy(
        update={
            "max_features": min(config.baseline.max_features, settings.oof_max_features),
            "char_ngram_max": max(config.baseline.char_ngram_min, settings.oof_char_ngram_max),
        }
    )

    def probabilities(
        texts: Sequence[str], given: Sequence[str], labels: Sequence[str], sample_weight: np.ndarray | None
    ) -> np.ndarray:
        return out_of_fold_probabilities(
            texts, given, labels, features, settings.folds, config.seed, C=settings.oof_c, sample_weight=sample_weight
        )

    return probabilities
