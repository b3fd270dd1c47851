"""Shared by the serving tests: a predictor with the DESIGN.md interface and a loopback server runner."""

from __future__ import annotations

import contextlib
import csv
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import ModelManifest
from tweet_classifier.config import NormalizeConfig, ServeConfig
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.serving.csv_batch import FORMULA_SIGNS
from tweet_classifier.serving.http import create_app
from tweet_classifier.serving.latency import wait_until_healthy
from tweet_classifier.serving.server import build_server
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings
from tweet_classifier.text import NORMALIZER_VERSION, normalize_tweet

LABELS = ["negative", "neutral", "positive"]
NEGATIVE_WORDS = ("delay", "lost", "worst", "ridiculous", "cancel", "rude", "never")
POSITIVE_WORDS = ("thanks", "thank", "amazing", "great", "love", "good", "best")


class FakeInvalidInputError(TweetClassifierError):
    pass


@dataclass(frozen=True)
class FakePrediction:
    label: str
    scores: dict[str, float]
    normalized_text: str
    compute_ms: float
    needs_review: bool = False
    unk_share: float = 0.0


class KeywordPredictor:
    """Deterministic keyword rules behind the Predictor interface; ``delay_s`` makes each call slow."""

    def __init__(self, delay_s: float = 0.0, max_chars: int = 2000) -> None:
        self.labels = list(LABELS)
        self.model_version = "keyword-rules@test"
        self.backend_single = self.backend_batch = "rules"
        # Keyword hits score 0.8, the neutral fallback 0.6: only the fallback needs review.
        self.review_threshold = 0.7
        self.delay_s = delay_s
        self.manifest = ModelManifest(
            labels=self.labels,
            base_model="rules",
            normalizer=NormalizeConfig().model_dump(),
            normalizer_version=NORMALIZER_VERSION,
            max_length=64,
            max_chars=max_chars,
        )
        self.calls = 0

    def validate(self, text: object) -> str:
        if not isinstance(text, str):
            raise FakeInvalidInputError(f"text must be a string, got {type(text).__name__}")
        if len(text) > self.manifest.max_chars:
            raise FakeInvalidInputError(
                f"text has {len(text):,} characters, over the limit of {self.manifest.max_chars:,}: "
                "shorten it or split it"
            )
        normalized = normalize_tweet(text)
        if not normalized.strip():
            raise FakeInvalidInputError("text is empty after normalization: send some words")
        return normalized

    def _one(self, text: str) -> FakePrediction:
        started = time.perf_counter()
        normalized = self.validate(text)
        lowered = normalized.lower()
        if any(word in lowered for word in NEGATIVE_WORDS):
            scores = [0.8, 0.15, 0.05]
        elif any(word in lowered for word in POSITIVE_WORDS):
            scores = [0.05, 0.15, 0.8]
        else:
            scores = [0.2, 0.6, 0.2]
        label = self.labels[scores.index(max(scores))]
        return FakePrediction(
            label,
            dict(zip(self.labels, scores, strict=True)),
            normalized,
            (time.perf_counter() - started) * 1000,
            needs_review=max(scores) < self.review_threshold,
        )

    def predict(self, text: str) -> FakePrediction:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return self._one(text)

    def predict_batch(self, texts: Sequence[str]) -> list[FakePrediction]:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._one(text) for text in texts]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_settings(tmp_path: Path, model: str = "keyword-rules", **config_overrides: Any) -> ServeSettings:
    config = ServeConfig(**({"cold_requests": 2, "drift_min_samples": 5, "metrics_refresh_s": 1.0} | config_overrides))
    return ServeSettings(
        model=model,
        host="127.0.0.1",
        port=free_port(),
        feedback_file=tmp_path / "feedback.jsonl",
        config=config,
        latency_probe=True,
    )


def service_with_a_drift_reference(tmp_path: Path, timeout_s: float = 10.0) -> ClassifierService:
    """A ready keyword-rules service whose model folder holds a reference.json (one 'hello there' trait
    profile), returned once the drift reference is loaded."""
    from tweet_classifier.drift import DriftReference
    from tweet_classifier.text import text_traits

    folder = tmp_path / "model"
    folder.mkdir()
    DriftReference.from_observations([(text_traits("hello there"), 0.0, "neutral")] * 10).save(
        folder / "reference.json"
    )
    settings = ServeSettings(**{**make_settings(tmp_path).__dict__, "model": str(folder)})
    service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=True)
    assert service.wait_until_loaded(timeout_s)
    deadline = time.monotonic() + timeout_s
    while service.metrics()["drift"]["reference"] is None:
        assert time.monotonic() < deadline, "the drift reference never loaded"
        time.sleep(0.05)
    return service


@contextlib.contextmanager
def running_server(service: ClassifierService, with_ui: bool = True, timeout_s: float = 60.0) -> Iterator[str]:
    """Serve ``service`` with uvicorn in a thread on loopback; yield the base URL once /healthz says 200."""
    settings = service.settings
    app = create_app(service, with_ui=with_ui)
    server = build_server(app, settings, log_level="warning")
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://{settings.host}:{settings.port}"
    try:
        wait_until_healthy(base_url, timeout_s, interval_s=0.05)
    except TimeoutError:
        server.should_exit = True
        raise
    try:
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def assert_no_formula_cell(path: Path) -> None:
    """Re-read ``path`` with ``csv`` and as plain lines: nothing starts with a formula character."""
    with path.open(encoding="utf-8", newline="") as stream:
        cells = [cell for row in csv.reader(stream) for cell in row]
    lines = [line for cell in cells for line in cell.splitlines()]
    # A reader that splits rows on any line break sees these as the cells that start a row.
    raw_lines = path.read_text(encoding="utf-8").splitlines()
    for text in [*cells, *lines, *(line.lstrip('"') for line in raw_lines)]:
        assert not text.lstrip().startswith(FORMULA_SIGNS), text
        assert not text.startswith(("\t", "\r")), text
