"""The TF-IDF + logistic regression model: features, weights, label order, out-of-fold probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.synthetic_tweets import SYNTHETIC_LABELS, synthetic_frame
from tweet_classifier.config import BaselineConfig, build_config
from tweet_classifier.data.tfidf_model import (
    BaselineError,
    build_features,
    fit_baseline,
    label_noise_model,
    out_of_fold_probabilities,
    predict_probabilities,
)

FAST = BaselineConfig(max_features=5_000, c_grid=[0.5, 4.0], char_ngram_max=4)


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return {"train": synthetic_frame(rows_per_class=60, seed=0)}


@pytest.fixture(scope="module")
def fitted(splits: dict[str, pd.DataFrame]):
    train = splits["train"]
    return fit_baseline(train["text"].tolist(), train["label"].tolist(), SYNTHETIC_LABELS, FAST, C=1.0)


def test_features_hold_word_and_char_blocks_within_the_budget(fitted) -> None:
    word, char = (transformer for _, transformer in fitted.named_steps["features"].transformer_list)

    assert word.analyzer == "word"
    assert word.ngram_range == (1, FAST.word_ngram_max)
    assert char.analyzer == "char_wb"
    assert char.ngram_range == (FAST.char_ngram_min, FAST.char_ngram_max)
    assert word.sublinear_tf
    assert char.sublinear_tf
    assert len(word.vocabulary_) + len(char.vocabulary_) <= FAST.max_features
    # "delayed" is a cue word; "xyzzy" never occurs.
    assert "delayed" in word.vocabulary_
    assert "xyzzy" not in word.vocabulary_


def test_predict_probabilities_follow_the_given_label_order(fitted) -> None:
    texts = ["awful delayed rude", "thanks great love"]
    reversed_labels = list(reversed(SYNTHETIC_LABELS))

    in_order = predict_probabilities(fitted, texts, SYNTHETIC_LABELS)
    in_reverse = predict_probabilities(fitted, texts, reversed_labels)

    np.testing.assert_allclose(in_order.sum(axis=1), 1.0)
    np.testing.assert_allclose(in_order, in_reverse[:, ::-1])
    assert [SYNTHETIC_LABELS[index] for index in in_order.argmax(axis=1)] == ["negative", "positive"]


def test_a_label_missing_from_training_gets_probability_zero() -> None:
    train = synthetic_frame(rows_per_class=20)
    train = train[train["label"] != "neutral"]
    model = fit_baseline(train["text"].tolist(), train["label"].tolist(), SYNTHETIC_LABELS, FAST, C=1.0)

    probabilities = predict_probabilities(model, ["gate schedule tomorrow", "lost refund"], SYNTHETIC_LABELS)

    assert probabilities.shape == (2, 3)
    np.testing.assert_array_equal(probabilities[:, SYNTHETIC_LABELS.index("neutral")], 0.0)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_sample_weights_change_what_the_model_learns() -> None:
    # "gate" appears only in rows whose label is contradicted: weight them to zero and the model ignores them.
    train = synthetic_frame(rows_per_class=30)
    contradicting = pd.DataFrame({"text": ["gate gate gate"] * 40, "label": ["positive"] * 40, "weight": 1.0})
    frame = pd.concat([train, contradicting], ignore_index=True)
    texts, labels = frame["text"].tolist(), frame["label"].tolist()

    trusting = fit_baseline(texts, labels, SYNTHETIC_LABELS, FAST, C=4.0)
    weights = np.where(np.arange(len(frame)) >= len(train), 0.0, 1.0)
    ignoring = fit_baseline(texts, labels, SYNTHETIC_LABELS, FAST, C=4.0, sample_weight=weights)

    positive = SYNTHETIC_LABELS.index("positive")
    assert predict_probabilities(trusting, ["gate gate gate"], SYNTHETIC_LABELS)[0, positive] > 0.8
    assert predict_probabilities(ignoring, ["gate gate gate"], SYNTHETIC_LABELS)[0, positive] < 0.6


@pytest.mark.parametrize(
    ("texts", "labels", "config", "message"),
    [
        ([], [], FAST, "zero training examples"),
        (["a b", "c d"], ["negative", "negative"], FAST, "only the class 'negative'"),
        (["a b", "c d"], ["negative", "angry"], FAST, r"training labels \['angry'\] are not in the label list"),
        (["  ", "   "], ["negative", "positive"], FAST, "could not build TF-IDF features from 2 training texts"),
        (
            ["x y", "y z"],
            ["negative", "positive"],
            FAST.model_copy(update={"char_ngram_min": 5, "char_ngram_max": 3}),
            r"char_ngram_min \(5\) is above baseline.char_ngram_max \(3\)",
        ),
    ],
)
def test_fit_baseline_rejects_unusable_training_data(
    texts: list[str], labels: list[str], config: BaselineConfig, message: str
) -> None:
    with pytest.raises(BaselineError, match=message):
        fit_baseline(texts, labels, SYNTHETIC_LABELS, config, C=1.0)


@pytest.mark.parametrize("weights", [[1.0, -1.0, 1.0, 1.0], [1.0, float("nan"), 1.0, 1.0]])
def test_fit_baseline_rejects_bad_weights(weights: list[float]) -> None:
    texts = ["late late", "lost bag", "thanks a lot", "great crew"]
    labels = ["negative", "negative", "positive", "positive"]
    config = FAST.model_copy(update={"min_df": 1})
    with pytest.raises(BaselineError, match="sample weights must be finite and non-negative"):
        fit_baseline(texts, labels, SYNTHETIC_LABELS, config, C=1.0, sample_weight=weights)


def test_build_features_splits_the_budget_between_blocks() -> None:
    union = build_features(BaselineConfig(max_features=1_000))
    assert [transformer.max_features for _, transformer in union.transformer_list] == [500, 500]


def test_out_of_fold_probabilities_never_score_a_row_with_its_own_label() -> None:
    # Random labels on unique nonsense texts: a model that saw a row memorises it (high confidence in the
    # given label); a model that did not can only guess (about 1/3).
    rng = np.random.default_rng(0)
    texts = [f"tok{index}a tok{index}b tok{index}c" for index in range(150)]
    labels = rng.choice(SYNTHETIC_LABELS, len(texts)).tolist()
    memorising = FAST.model_copy(update={"min_df": 1})
    positions = [SYNTHETIC_LABELS.index(label) for label in labels]

    out_of_fold = out_of_fold_probabilities(texts, labels, SYNTHETIC_LABELS, memorising, folds=3, seed=0, C=100.0)
    in_sample_model = fit_baseline(texts, labels, SYNTHETIC_LABELS, memorising, C=100.0)
    in_sample = predict_probabilities(in_sample_model, texts, SYNTHETIC_LABELS)

    assert out_of_fold.shape == (150, 3)
    np.testing.assert_allclose(out_of_fold.sum(axis=1), 1.0)
    assert in_sample[np.arange(150), positions].mean() > 0.9
    assert out_of_fold[np.arange(150), positions].mean() < 0.5


def test_out_of_fold_probabilities_are_seeded(splits: dict[str, pd.DataFrame]) -> None:
    train = splits["train"]
    arguments = (train["text"].tolist(), train["label"].tolist(), SYNTHETIC_LABELS, FAST)

    first = out_of_fold_probabilities(*arguments, folds=3, seed=7)
    again = out_of_fold_probabilities(*arguments, folds=3, seed=7)
    other_seed = out_of_fold_probabilities(*arguments, folds=3, seed=8)

    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other_seed)


def test_out_of_fold_probabilities_reject_too_few_rows_per_fold_and_misaligned_input() -> None:
    texts = ["late again", "lost bag", "rude crew", "thanks", "great"]
    labels = ["negative", "negative", "negative", "positive", "positive"]
    with pytest.raises(BaselineError, match="class 'positive' has 2 examples, fewer than the 3 folds"):
        out_of_fold_probabilities(texts, labels, SYNTHETIC_LABELS, FAST, folds=3, seed=0)
    with pytest.raises(ValueError, match="got 5 texts but 4 labels"):
        out_of_fold_probabilities(texts, labels[:4], SYNTHETIC_LABELS, FAST, folds=2, seed=0)


def test_label_noise_model_uses_the_audit_settings_and_lighter_features() -> None:
    config = build_config(
        {
            "name": "audit-model",
            "seed": 3,
            "data": {"source": "unused.csv"},
            "baseline": {"max_features": 50_000, "char_ngram_max": 5, "min_df": 1},
            "cleaning": {"label_noise": {"folds": 3, "oof_max_features": 2_000, "oof_char_ngram_max": 4, "oof_c": 0.5}},
        }
    )
    train = synthetic_frame(rows_per_class=20, seed=0)
    texts, given = train["text"].tolist(), train["label"].tolist()
    lighter = config.baseline.model_copy(update={"max_features": 2_000, "char_ngram_max": 4})

    model = label_noise_model(config)

    np.testing.assert_array_equal(
        model(texts, given, SYNTHETIC_LABELS, None),
        out_of_fold_probabilities(texts, given, SYNTHETIC_LABELS, lighter, folds=3, seed=3, C=0.5),
    )
