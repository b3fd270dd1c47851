"""needs_review and explanations through the service, /v1, the CSV batch and /v1/metrics; explain.py itself."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.serving.test_serve import ready_service
from tests.serving_helpers import KeywordPredictor
from tweet_classifier.inference.explain import explain_text, highlighted_segments, without_span, word_spans
from tweet_classifier.serving.http import create_app


def test_v1_predict_carries_needs_review_and_explains_on_request(tmp_path: Path) -> None:
    service = ready_service(tmp_path)
    with TestClient(create_app(service, with_ui=False)) as client:
        sure = client.post("/v1/predict", json={"text": "@united thanks, great crew!"}).json()
        unsure = client.post("/v1/predict", json={"text": "what time is boarding"}).json()
        assert sure["needs_review"] is False
        assert unsure["needs_review"] is True
        assert sure["explanation"] is None
        explained = client.post("/v1/predict", json={"text": "the crew was great today", "explain": True}).json()
        batch = client.post("/v1/predict_batch", json={"texts": ["lost my bag", "which gate"]}).json()["results"]
        bad = client.post("/v1/predict", json={"text": "hi", "explain": "maybe"})
        metrics = client.get("/v1/metrics").json()
    assert explained["label"] == "positive"
    words = {item["word"]: item["attribution"] for item in explained["explanation"]}
    assert list(words) == ["the", "crew", "was", "great", "today"]
    # Without "great" the keyword rules fall back to neutral: 0.8 -> 0.2 for positive; other words change nothing.
    assert words["great"] == pytest.approx(0.6)
    assert all(words[word] == 0 for word in words if word != "great")
    assert [result["needs_review"] for result in batch] == [False, True]
    assert bad.status_code == 422
    review = metrics["review"]
    assert review["texts"] == 5
    assert review["needs_review"] == 2
    assert review["share"] == pytest.approx(0.4)
    assert metrics["review_threshold"] == 0.7


def test_csv_batch_has_a_needs_review_column(tmp_path: Path) -> None:
    service = ready_service(tmp_path)
    source = tmp_path / "upload.csv"
    pd.DataFrame({"text": ["worst delay ever", "what time is boarding", ""]}).to_csv(source, index=False)
    written = pd.read_csv(service.classify_csv(source).output_path, dtype=str, keep_default_na=False)
    assert written["needs_review"].tolist() == ["False", "True", ""]


def test_canary_reports_the_macro_f1_of_the_kept_predictions(tmp_path: Path) -> None:
    service = ready_service(tmp_path)
    # Two sure and right, one sure and wrong, two unsure (neutral fallback): one right, one wrong.
    texts = ["worst delay", "thanks a lot", "love the delay", "what time", "which gate"]
    labels = ["negative", "positive", "positive", "neutral", "negative"]
    service.run_canary(texts, labels)
    review = service.metrics()["review"]["canary"]
    assert review["total"] == 5
    assert review["share"] == pytest.approx(0.4)
    assert review["n"] == 3
    assert review["accuracy"] == pytest.approx(2 / 3)


def test_explanations_run_in_one_batch_and_cap_the_words() -> None:
    batches: list[int] = []

    class CountingPredictor(KeywordPredictor):
        def predict_batch(self, texts):
            batches.append(len(texts))
            return super().predict_batch(texts)

    predictor = CountingPredictor()
    text = "great  crew, lost bag\tand more"
    explanation = explain_text(predictor, text, max_words=3)
    assert batches == [4]
    assert [word.word for word in explanation.words] == ["great", "crew,", "lost", "bag", "and", "more"]
    assert [word.attribution is None for word in explanation.words] == [False] * 3 + [True] * 3
    assert all(text[word.start : word.end] == word.word for word in explanation.words)
    segments = highlighted_segments(text, explanation.words)
    assert "".join(segment for segment, _ in segments) == text
    # One word: its variant is empty, scored against the uniform distribution.
    single = explain_text(KeywordPredictor(), "thanks", max_words=10)
    assert single.words[0].attribution == pytest.approx(0.8 - 1 / 3, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "index", "expected"),
    [("a b c", 0, "b c"), ("a b c", 1, "a c"), ("a b c", 2, "a b"), ("a\tb", 1, "a"), (" a ", 0, " ")],
)
def test_without_span_removes_one_word_and_one_separator(text: str, index: int, expected: str) -> None:
    assert without_span(text, word_spans(text)[index]) == expected


def _trained_tiny_model(tmp_path: Path) -> Path:
    """The synthetic data's tiny model, trained for 150 steps at learning rate 0.003 (each class has its own
    words; 60 steps at 0.01 did not always learn the neutral words, depending on the split and the run)."""
    from tests.training_helpers import FAST_OVERRIDES, SMOKE_CONFIG, write_synthetic_config
    from tweet_classifier import cli

    config = write_synthetic_config(tmp_path / "data")
    model_dir = tmp_path / "model"
    overrides = [*FAST_OVERRIDES, "train.max_steps=150", "train.eval_steps=150", "train.learning_rate=0.003"]
    arguments = ["train", "--config", str(config), "--config", str(SMOKE_CONFIG), "--output-dir", str(model_dir)]
    assert cli.main([*arguments, *[item for override in overrides for item in ("--set", override)]]) == 0
    shutil.rmtree(model_dir.parent / f"{model_dir.name}-checkpoints", ignore_errors=True)
    return model_dir


# Clear tweets of the synthetic task: the class word must get the largest attribution. Negative tweets are
# left out: with these few steps the tiny model answers "negative" for any text without a positive or neutral word,
# so a negative word changes nothing (its attribution is 0, like every filler's).
CLEAR_TWEETS = [
    ("thanks the flight", "thanks"),
    ("amazing crew on my flight", "amazing"),
    ("my seat was perfect today", "perfect"),
    ("which seat on the plane", "which"),
    ("the schedule for my flight", "schedule"),
    ("a question about the crew", "question"),
]


def test_the_sentiment_word_gets_the_largest_attribution(tmp_path: Path) -> None:
    from tweet_classifier.inference.predictor import Predictor

    predictor = Predictor.load(_trained_tiny_model(tmp_path), backend="torch-fp32")
    for text, word in CLEAR_TWEETS:
        explanation = explain_text(predictor, text, max_words=64)
        ranked = sorted(explanation.words, key=lambda item: -item.attribution)
        assert ranked[0].word == word, (text, [(item.word, item.attribution) for item in explanation.words])
        assert ranked[0].attribution > 0.3
        assert ranked[1].attribution < ranked[0].attribution / 2
