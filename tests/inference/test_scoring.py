"""Scoring many texts through the Predictor's batch path: order kept, batches equal singles, raw softmax."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests.training_helpers import LABELS
from tweet_classifier.artifact import ModelManifest
from tweet_classifier.inference.predictor import ModelLoadError
from tweet_classifier.inference.scoring import load_scorer, score_texts


def test_scores_keep_input_order_and_match_one_by_one(tiny_model_dir):
    scorer = load_scorer(tiny_model_dir, batch_size=3)
    texts = ["a much longer tweet about the lost luggage and the delay", "ok", "thanks @user", "worst flight ever"]
    batched = score_texts(scorer, texts)
    singles = np.vstack([score_texts(scorer, [text]) for text in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    np.testing.assert_allclose(batched.sum(axis=1), 1.0, atol=1e-5)
    assert batched.dtype == np.float32
    assert score_texts(scorer, []).shape == (0, len(LABELS))
    bf16 = score_texts(load_scorer(tiny_model_dir, bf16=True), texts)
    np.testing.assert_allclose(bf16, batched, atol=0.05)


def test_every_row_is_scored_however_long(tiny_model_dir):
    scorer = load_scorer(tiny_model_dir)
    long_text = "delayed " * (ModelManifest.load(tiny_model_dir).max_chars // 4)
    assert score_texts(scorer, [long_text]).shape == (1, len(LABELS))


def test_labels_that_disagree_with_the_weights_are_refused(tiny_model_dir, tmp_path):
    relabeled = shutil.copytree(tiny_model_dir, tmp_path / "relabeled")
    manifest = ModelManifest.load(relabeled)
    manifest.labels = list(reversed(manifest.labels))
    manifest.save(relabeled)
    with pytest.raises(ModelLoadError, match="disagree with the manifest labels"):
        load_scorer(relabeled)
