"""serving: settings, model discovery, CSV checks, /healthz + /v1 (FastAPI), canary, feedback, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import f1_score

from tests.serving_helpers import (
    LABELS,
    FakeInvalidInputError,
    FakePrediction,
    KeywordPredictor,
    assert_no_formula_cell,
    free_port,
    make_settings,
    running_server,
    service_with_a_drift_reference,
)
from tweet_classifier.artifact import MANIFEST_NAME
from tweet_classifier.config import ConfigError
from tweet_classifier.drift import DriftReference
from tweet_classifier.serving.canary import read_labelled_file
from tweet_classifier.serving.csv_batch import neutralize_formula, read_upload_csv
from tweet_classifier.serving.errors import (
    BUSY_MESSAGE,
    BadRequestError,
    NoModelError,
    ServiceBusyError,
    ServiceNotReadyError,
)
from tweet_classifier.serving.http import create_app
from tweet_classifier.serving.latency import wait_until_healthy
from tweet_classifier.serving.server import main
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings, newest_local_model
from tweet_classifier.text import normalize_tweet

REPO_ROOT = Path(__file__).resolve().parents[2]


def ready_service(tmp_path: Path, predictor: KeywordPredictor | None = None, **config) -> ClassifierService:
    service = ClassifierService(
        make_settings(tmp_path, **config), loader=lambda model, revision: predictor or KeywordPredictor()
    )
    service.start(background_checks=False)
    assert service.wait_until_loaded(30)
    return service


# ---- settings and model discovery -----------------------------------------------------------------
def test_settings_from_env_read_every_documented_variable(tmp_path) -> None:
    env = {
        "MODEL_ID": "someone/tweet-model",
        "MODEL_REVISION": "abc123",
        "GRADIO_SERVER_NAME": "0.0.0.0",
        "GRADIO_SERVER_PORT": "7999",
        "FEEDBACK_FILE": str(tmp_path / "fb.jsonl"),
        "CANARY_FILE": str(tmp_path / "canary.csv"),
    }
    settings = ServeSettings.from_env(env)
    assert (settings.model, settings.revision, settings.host, settings.port) == (
        "someone/tweet-model",
        "abc123",
        "0.0.0.0",
        7999,
    )
    assert settings.feedback_file == tmp_path / "fb.jsonl"
    assert settings.canary_file == tmp_path / "canary.csv"
    with pytest.raises(BadRequestError, match="GRADIO_SERVER_PORT must be a port number, got 'http'"):
        ServeSettings.from_env({"MODEL_ID": "x", "GRADIO_SERVER_PORT": "http"})
    origins = ServeSettings.from_env({"MODEL_ID": "x", "ALLOWED_ORIGINS": "https://a.example, http://b.example:8080"})
    assert origins.config.allowed_origins == ["https://a.example", "http://b.example:8080"]
    assert ServeSettings.from_env({"MODEL_ID": "x"}).config.allowed_origins == []
    with pytest.raises(
        ConfigError, match=r"environment variable ALLOWED_ORIGINS: .*'https://a.example/app' is not an origin"
    ):
        ServeSettings.from_env({"MODEL_ID": "x", "ALLOWED_ORIGINS": "https://a.example/app"})


def _fake_model_folder(path: Path, mtime: float) -> Path:
    path.mkdir(parents=True)
    (path / MANIFEST_NAME).write_text("{}", encoding="utf-8")
    os.utime(path / MANIFEST_NAME, (mtime, mtime))
    return path


def test_newest_local_model_picks_the_latest_manifest_and_skips_staging_folders(tmp_path) -> None:
    _fake_model_folder(tmp_path / "models" / "airline", 1_000)
    newest = _fake_model_folder(tmp_path / "models" / "runs" / "smoke", 2_000)
    _fake_model_folder(tmp_path / "models" / ".airline.partial-x", 3_000)
    assert newest_local_model(tmp_path / "models") == newest
    assert ServeSettings.from_env({}, models_dir=tmp_path / "models").model == str(newest)


def test_no_model_anywhere_says_how_to_get_one(tmp_path) -> None:
    with pytest.raises(NoModelError, match=r"Run `make demo`.*tweet-classifier train --config configs/airline.yaml"):
        newest_local_model(tmp_path / "models")


def test_app_py_without_a_model_exits_2_with_the_fix(tmp_path) -> None:
    env = {key: value for key, value in os.environ.items() if key != "MODEL_ID"}
    completed = subprocess.run(
        [sys.executable, str(REPO_ROOT / "app.py")], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 2
    assert "make demo" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_without_model_id_or_local_model_the_space_card_names_the_model(tmp_path, monkeypatch) -> None:
    from huggingface_hub import constants

    from tweet_classifier.serving.settings import card_model, default_model

    card = tmp_path / "README.md"
    card.write_text(
        "---\nsdk: gradio\nmodels:\n  - someone/tweet-model\n  - someone/other\n---\n# x\n", encoding="utf-8"
    )
    assert card_model(card) == "someone/tweet-model"
    assert card_model(tmp_path / "missing.md") is None
    (tmp_path / "plain.md").write_text("# no front matter\n", encoding="utf-8")
    assert card_model(tmp_path / "plain.md") is None
    # Offline and not in the cache: the same one-line error as with no model at all, naming the card's model.
    with pytest.raises(NoModelError, match=r"Run `make demo`.*names someone/tweet-model .*HF_HUB_OFFLINE=1"):
        default_model(tmp_path / "models", card)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    assert default_model(tmp_path / "models", card) == "someone/tweet-model"
    local = _fake_model_folder(tmp_path / "models" / "mine", 1_000)
    assert default_model(tmp_path / "models", card) == str(local)  # a local model wins over the card


def test_the_server_honours_the_models_and_the_callers_serving_config(tmp_path, tiny_model_dir) -> None:
    import shutil

    from tweet_classifier.serving.loading import load_real_predictor

    folder = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    (folder / "run_config.yaml").write_text(
        "name: tiny\nserve:\n  concurrency_limit: 3\n  max_batch_texts: 7\ninference:\n  batch_size: 4\n",
        encoding="utf-8",
    )
    caller = tmp_path / "serve.yaml"
    caller.write_text("serve:\n  max_batch_texts: 5\n", encoding="utf-8")
    settings = ServeSettings.from_env(
        {"MODEL_ID": str(folder), "SERVE_CONFIG": "ignored: read by main"},
        config_paths=[caller],
        config_overrides=["inference.max_chars=40", "serve.feedback_file=" + str(tmp_path / "fb.jsonl")],
    )
    assert (settings.config.concurrency_limit, settings.config.max_batch_texts) == (3, 5)
    assert settings.feedback_file == tmp_path / "fb.jsonl"
    service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    assert service.wait_until_loaded(10)
    with pytest.raises(BadRequestError, match="limit is 5"):
        service.predict_batch(["a"] * 6)
    predictor = load_real_predictor(str(folder), None, settings.inference)
    assert (predictor.max_chars, predictor.batch_size) == (40, 4)


def test_app_py_refuses_settings_it_would_not_use(tmp_path, tiny_model_dir, capsys) -> None:
    env = {"MODEL_ID": str(tiny_model_dir)}
    assert main(["--set", "inference.parity_rounds=2"], env=env) == 2
    assert "inference.parity_rounds is used only by `tweet-classifier export`" in capsys.readouterr().err
    serve_config = tmp_path / "serve.yaml"
    serve_config.write_text("serve:\n  concurrency_limit: 0\n", encoding="utf-8")
    assert main([], env={**env, "SERVE_CONFIG": str(serve_config)}) == 2
    assert "config key 'serve.concurrency_limit' has invalid value 0" in capsys.readouterr().err


def test_main_returns_2_when_no_model_is_found(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([], env={}) == 2


# ---- CSV helpers ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1", "'+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("fine text", "fine text"),
        ("", ""),
        (0.5, 0.5),
        # Every line of a cell, after leading whitespace, full-width signs included.
        ("on time\r=cmd|' /C calc'!A0", "on time\r'=cmd|' /C calc'!A0"),
        ("a\n  +1\r\n-2", "a\n'  +1\r\n'-2"),
        ("\u3000=1+1", "'\u3000=1+1"),
        ("\uff1dSUM(A1)", "'\uff1dSUM(A1)"),
        ("x\u2028@cmd", "x\u2028'@cmd"),
        ("email a@b.c or 1-2", "email a@b.c or 1-2"),
    ],
)
def test_neutralize_formula(cell, expected) -> None:
    assert neutralize_formula(cell) == expected


def test_write_safe_csv_neutralizes_every_line_and_quotes_every_field(tmp_path) -> None:
    from tweet_classifier.serving.csv_batch import write_safe_csv

    hostile = ["on time\r=cmd|' /C calc'!A0", " @SUM(1)", "\uff0b1", "ok\n-1", "=1", "fine"]
    path = write_safe_csv(pd.DataFrame({"text": hostile, "=header": range(6)}), tmp_path / "out")
    assert path.parent == tmp_path / "out"
    assert_no_formula_cell(path)
    written = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(written) == 6  # no row was split by a bare carriage return
    assert written["text"][0] == "on time\r'=cmd|' /C calc'!A0"
    assert list(written.columns) == ["text", "'=header"]


def write(path: Path, content: bytes) -> Path:
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "the CSV is empty"),
        ("text\n\u00e9t\u00e9 caf\u00e9\n".encode("latin-1"), "not UTF-8"),
        (b"text\nhello\x00world\n", "NUL bytes"),
        (b"text\n", "no rows"),
        (b'text,label\n"unclosed,quote\n', "not a valid CSV"),
    ],
)
def test_read_upload_csv_rejects_bad_files_with_the_fix(tmp_path, content, message) -> None:
    with pytest.raises(BadRequestError, match=message):
        read_upload_csv(write(tmp_path / "in.csv", content), max_bytes=10_000, max_rows=10)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"text," + b",".join(b"c%d" % index for index in range(70)) + b"\nhi\n", "the header has 71 columns"),
        (b"text\nhi\n" + b",".join([b"x"] * 100) + b"\n", "row 2 has 100 columns; the limit is 64"),
        (b"text,label\nhi,neutral,extra\n", r"row 1 has 3 fields, the header 2"),
        (b"text\n" + b"y" * 20_000 + b"\n", "row 1 has a cell of 20,000 characters"),
        (b"text,text\nhi,ho\n", "names the column 'text' twice"),
    ],
)
def test_read_upload_csv_checks_the_shape_while_parsing(tmp_path, content, message) -> None:
    with pytest.raises(BadRequestError, match=message):
        read_upload_csv(write(tmp_path / "in.csv", content), 10**7, 10, max_columns=64, max_cell_chars=10_000)


def test_read_upload_csv_pads_short_rows_skips_blank_lines_and_names_a_missing_file(tmp_path) -> None:
    frame = read_upload_csv(write(tmp_path / "in.csv", b"text,label\nhi\n\nho,neutral\n"), 10_000, 10)
    assert frame.to_dict("list") == {"text": ["hi", "ho"], "label": ["", "neutral"]}
    with pytest.raises(BadRequestError, match="the uploaded file is gone"):
        read_upload_csv(tmp_path / "missing.csv", 10_000, 10)


def test_read_upload_csv_enforces_size_and_row_limits(tmp_path) -> None:
    big = write(tmp_path / "big.csv", b"text\n" + b"x" * 2_000 + b"\n")
    with pytest.raises(BadRequestError, match=r"the limit is 0\.0 MB"):
        read_upload_csv(big, max_bytes=1_000, max_rows=10)
    rows = write(tmp_path / "rows.csv", b"text\n" + b"hi\n" * 11)
    with pytest.raises(BadRequestError, match="more than 10 rows"):
        read_upload_csv(rows, max_bytes=10_000, max_rows=10)
    bom = write(tmp_path / "bom.csv", "\ufefftext , label\nhi,neutral\n".encode())
    assert list(read_upload_csv(bom, 10_000, 10).columns) == ["text", "label"]


def test_classify_csv_scores_with_sklearn_and_neutralizes_formulas(tmp_path) -> None:
    service = ready_service(tmp_path)
    rows = [
        ("=1+1 worst delay ever", "negative"),
        ("thanks, great crew", "positive"),
        ("what time is boarding", "neutral"),
        ("lost my bag", "neutral"),
        ("", "neutral"),
        ("love it", "angry"),
    ]
    source = tmp_path / "upload.csv"
    pd.DataFrame(rows, columns=["text", "label"]).to_csv(source, index=False)
    result = service.classify_csv(source)
    assert result.n_rows == 6
    assert result.n_invalid == 1
    assert result.n_unknown_labels == 1
    assert result.n_scored == 4
    truth = ["negative", "positive", "neutral", "neutral"]
    guess = ["negative", "positive", "neutral", "negative"]
    assert result.report["macro_f1"] == pytest.approx(f1_score(truth, guess, labels=LABELS, average="macro"))
    written = pd.read_csv(result.output_path, dtype=str, keep_default_na=False)
    assert written["text"][0] == "'=1+1 worst delay ever"
    assert written["predicted_label"].tolist()[:4] == guess
    assert written["error"][4] != ""
    assert {f"score_{label}" for label in LABELS} <= set(written.columns)


class NormalizeInPredictPredictor(KeywordPredictor):
    """Like the real Predictor: ``validate`` checks type and length only; emptiness after normalization is
    found inside ``predict_batch``, which refuses the whole batch."""

    def __init__(self) -> None:
        super().__init__()
        self.normalized = 0

    def validate(self, text: object) -> str:
        if not isinstance(text, str) or len(text) > self.manifest.max_chars:
            raise FakeInvalidInputError("bad text")
        return text

    def predict_batch(self, texts: Sequence[str]) -> list[FakePrediction]:
        self.normalized += len(texts)
        if any(not normalize_tweet(text) for text in texts):
            raise FakeInvalidInputError("text is empty after normalization: send some words")
        return super().predict_batch(texts)


def test_a_batch_text_empty_after_normalization_loses_only_its_own_row(tmp_path) -> None:
    predictor = NormalizeInPredictPredictor()
    service = ClassifierService(make_settings(tmp_path), loader=lambda model, revision: predictor)
    service.start(background_checks=False)
    assert service.wait_until_loaded(10)
    source = tmp_path / "upload.csv"
    pd.DataFrame(
        [("worst delay", "negative"), ("\u200b\u200d", "neutral"), ("thanks", "positive")], columns=["text", "label"]
    ).to_csv(source, index=False)
    result = service.classify_csv(source)
    written = pd.read_csv(result.output_path, dtype=str, keep_default_na=False)
    assert written["predicted_label"].tolist() == ["negative", "", "positive"]
    assert written["error"].tolist() == ["", "row 2: text is empty after normalization: send some words", ""]
    assert (result.n_invalid, result.n_scored) == (1, 2)
    # The service normalizes nothing itself: each text reaches the predictor once, and again only in the
    # rare batch the predictor refused (three texts, then each of the three alone).
    assert predictor.normalized == 6
    service.run_canary(["thanks", "\u200b", "lost my bag"], ["positive", "neutral", "negative"])
    assert service.metrics()["live_f1"]["canary"]["n"] == 2


def test_classify_csv_names_a_missing_text_column(tmp_path) -> None:
    service = ready_service(tmp_path)
    source = write(tmp_path / "upload.csv", b"tweet,label\nhi,neutral\n")
    with pytest.raises(BadRequestError, match=r"no column 'text' \(columns: tweet, label\)"):
        service.classify_csv(source)
    assert service.classify_csv(source, text_column="tweet", label_column="").report is None


# ---- service behaviour ----------------------------------------------------------------------------
def test_requests_before_the_model_is_loaded_get_a_retry_message(tmp_path) -> None:
    gate = threading.Event()

    def slow_loader(model: str, revision: str | None) -> KeywordPredictor:
        gate.wait(10)
        return KeywordPredictor()

    service = ClassifierService(make_settings(tmp_path), loader=slow_loader)
    service.start(background_checks=False)
    assert service.health()[0] == 503
    assert service.metrics()["status"] == "loading"
    with pytest.raises(ServiceNotReadyError, match="still loading"):
        service.predict("hello")
    gate.set()
    assert service.wait_until_loaded(10)
    assert service.health() == (200, {"status": "ready", "model_version": "keyword-rules@test"})


def test_a_failed_load_is_reported_without_internals(tmp_path) -> None:
    def broken_loader(model: str, revision: str | None) -> KeywordPredictor:
        raise RuntimeError("/secret/path/model.safetensors is corrupt")

    service = ClassifierService(make_settings(tmp_path), loader=broken_loader)
    service.start(background_checks=False)
    service.wait_until_loaded(10)
    status, payload = service.health()
    assert status == 503
    assert payload["status"] == "failed"
    assert "secret" not in json.dumps(payload)
    with pytest.raises(ServiceNotReadyError, match="failed to load"):
        service.predict("hi")


def test_batch_validation_names_the_bad_item(tmp_path) -> None:
    service = ready_service(tmp_path, max_batch_texts=3)
    with pytest.raises(BadRequestError, match=r"texts\[1\]: .*empty"):
        service.predict_batch(["fine", "   "])
    with pytest.raises(BadRequestError, match="limit is 3"):
        service.predict_batch(["a"] * 4)
    with pytest.raises(BadRequestError, match="texts is empty"):
        service.predict_batch([])
    with pytest.raises(BadRequestError, match="must be a list"):
        service.predict_batch("not a list")
    assert service.metrics()["requests_failed"] == 4


def test_feedback_persists_across_a_restart(tmp_path) -> None:
    first = ready_service(tmp_path)
    first.feedback("worst delay", "negative", "negative")
    outcome = first.feedback("what time", "neutral", "positive")
    assert outcome == {"stored": True, "corrections": 2, "macro_f1": pytest.approx(1 / 3)}
    with pytest.raises(BadRequestError, match="unknown: choose one of negative, neutral, positive"):
        first.feedback("hi", "neutral", "<b>bold</b>")
    restarted = ready_service(tmp_path)
    corrections = restarted.metrics()["live_f1"]["corrections"]
    assert corrections["n"] == 2
    assert corrections["macro_f1"] == pytest.approx(
        f1_score(["negative", "positive"], ["negative", "neutral"], labels=LABELS, average="macro")
    )
    lines = (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["correct"] for line in lines] == ["negative", "positive"]


def test_canary_file_streams_through_the_predictor_and_f1_equals_sklearn(tmp_path) -> None:
    rng = np.random.default_rng(3)
    words = {"negative": "worst delay", "neutral": "what time", "positive": "thanks so much"}
    truth = list(rng.choice(LABELS, size=60))
    texts = [words[label] if rng.random() < 0.7 else words[str(rng.choice(LABELS))] for label in truth]
    canary = tmp_path / "canary.jsonl"
    records = [{"text": text, "label": label} for text, label in zip(texts, truth, strict=True)]
    records.append({"text": "unknown label row", "label": "angry"})
    canary.write_text("\n".join(json.dumps(record) for record in records), encoding="utf-8")
    settings = make_settings(tmp_path, canary_batch_size=7)
    settings = ServeSettings(**{**settings.__dict__, "canary_file": canary})
    predictor = KeywordPredictor()
    service = ClassifierService(settings, loader=lambda model, revision: predictor)
    service.start(background_checks=True)
    service.wait_until_loaded(10)
    deadline = time.monotonic() + 30
    while not service.metrics()["live_f1"]["canary"]["status"].startswith("done"):
        assert time.monotonic() < deadline, service.metrics()["live_f1"]["canary"]
        time.sleep(0.05)
    canary_numbers = service.metrics()["live_f1"]["canary"]
    predicted = [predictor._one(text).label for text in texts]
    assert canary_numbers["n"] == canary_numbers["total"] == 60
    assert canary_numbers["macro_f1"] == pytest.approx(f1_score(truth, predicted, labels=LABELS, average="macro"))
    # Small batches: ceil(60 / 7) model calls, not one big one.
    assert predictor.calls == 9


def test_canary_pauses_while_users_are_in_flight(tmp_path) -> None:
    service = ready_service(tmp_path)
    monitor = service.monitor
    finished = threading.Event()

    def run() -> None:
        service.run_canary(["thanks"] * 4, ["positive"] * 4)
        finished.set()

    with monitor.track("predict"):
        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.3)
        assert monitor.snapshot()["live_f1"]["canary"]["n"] == 0
    thread.join(5)
    assert finished.is_set()
    assert monitor.snapshot()["live_f1"]["canary"]["n"] == 4


def test_read_labelled_file_checks_columns(tmp_path) -> None:
    bad = write(tmp_path / "canary.csv", b"tweet,label\nhi,neutral\n")
    with pytest.raises(BadRequestError, match="lacks columns \\['text'\\]"):
        read_labelled_file(bad, LABELS)
    with pytest.raises(BadRequestError, match="does not exist"):
        read_labelled_file(tmp_path / "missing.csv", LABELS)
    good = write(tmp_path / "ok.csv", b"text,label\nhi,neutral\nyo,angry\n")
    assert read_labelled_file(good, LABELS) == (["hi"], ["neutral"])


def test_reference_json_in_the_model_folder_is_used_for_drift(tmp_path) -> None:
    service = service_with_a_drift_reference(tmp_path)
    for _ in range(6):
        service.predict("@united worst delay ever, lost my bag http://t.co/x 😡")
    drift = service.metrics()["drift"]
    assert drift["status"] == "drift"
    assert "predicted_label" in drift["drifted"]
    assert service.metrics()["live_f1"]["canary"]["status"].startswith("unavailable")


def _wait_for(service: ClassifierService, done, timeout_s: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while not done(metrics := service.metrics()):
        assert time.monotonic() < deadline, metrics
        time.sleep(0.05)
    return metrics


def _folder_service(tmp_path: Path, folder: Path, predictor: KeywordPredictor, **settings_changes) -> ClassifierService:
    settings = ServeSettings(**{**make_settings(tmp_path).__dict__, "model": str(folder), **settings_changes})
    service = ClassifierService(settings, loader=lambda model, revision: predictor)
    service.start(background_checks=True)
    assert service.wait_until_loaded(10)
    return service


def test_canary_and_drift_reference_come_from_the_model_folder_alone(tmp_path, monkeypatch) -> None:
    from tweet_classifier.artifact import write_canary
    from tweet_classifier.text import text_traits

    monkeypatch.setenv("DATA_DIR", str(tmp_path / "no-data-here"))
    folder = tmp_path / "model"
    folder.mkdir()
    texts = ["worst delay ever", "thanks so much", "what time is boarding", "lost my bag", "great crew"] * 4
    truth = ["negative", "positive", "neutral", "neutral", "positive"] * 4
    predictor = KeywordPredictor()
    predicted = [predictor._one(text).label for text in texts]
    expected = f1_score(truth, predicted, labels=LABELS, average="macro")
    write_canary(
        folder, texts, truth, {"split": "test", "sampling": "the whole test split", "expected_macro_f1": expected}
    )
    DriftReference.from_observations(
        [(text_traits(text), 0.0, label) for text, label in zip(texts, truth, strict=True)]
    ).save(folder / "reference.json")
    service = _folder_service(tmp_path, folder, predictor)
    metrics = _wait_for(service, lambda m: m["live_f1"]["canary"]["status"].startswith("done"))
    canary = metrics["live_f1"]["canary"]
    assert canary["n"] == canary["total"] == 20
    assert canary["macro_f1"] == pytest.approx(expected, abs=1e-12)
    assert canary["source"]["expected_macro_f1"] == pytest.approx(expected)
    assert canary["source"]["sampling"] == "the whole test split"
    assert metrics["drift"]["reference"] == {"n": 20, "source": "training split"}


def test_a_folder_without_canary_or_reference_still_serves_and_says_why(tmp_path) -> None:
    folder = tmp_path / "third-party-model"
    folder.mkdir()
    service = _folder_service(tmp_path, folder, KeywordPredictor())
    metrics = _wait_for(service, lambda m: m["live_f1"]["canary"]["status"] != "not started")
    assert metrics["live_f1"]["canary"]["status"].startswith("unavailable: this model folder has no labelled canary")
    assert "set CANARY_FILE" in metrics["live_f1"]["canary"]["status"]
    assert metrics["drift"]["status"] == "unavailable"
    assert "has no reference.json" in metrics["drift"]["message"]
    assert service.predict("thanks so much")["label"] == "positive"
    from tweet_classifier.serving.ui_render import render_live_panel, render_stats

    assert "Live canary F1 is off: this model folder has no labelled canary rows" in render_live_panel(metrics)
    assert "no training reference in the model" in render_stats(metrics)


def test_canary_file_overrides_the_folders_canary(tmp_path) -> None:
    from tweet_classifier.artifact import write_canary

    folder = tmp_path / "model"
    folder.mkdir()
    write_canary(folder, ["worst delay"] * 5, ["negative"] * 5, {"split": "test"})
    override = write(tmp_path / "canary.csv", b"text,label\nthanks,positive\nwhat time,neutral\nhi,angry\n")
    service = _folder_service(tmp_path, folder, KeywordPredictor(), canary_file=override)
    canary = _wait_for(service, lambda m: m["live_f1"]["canary"]["status"].startswith("done"))["live_f1"]["canary"]
    assert canary["n"] == 2
    assert canary["source"] == {"file": str(override), "sampling": "CANARY_FILE"}


def test_a_damaged_folder_canary_or_a_missing_canary_file_is_reported(tmp_path) -> None:
    from tweet_classifier.artifact import CANARY_NAME, write_canary

    folder = tmp_path / "model"
    folder.mkdir()
    write_canary(folder, ["worst delay"], ["negative"], {})
    (folder / CANARY_NAME).write_text('{"text": "edited", "label": "positive"}\n', encoding="utf-8")
    (folder / "reference.json").write_text("{broken", encoding="utf-8")
    service = _folder_service(tmp_path, folder, KeywordPredictor())
    metrics = _wait_for(service, lambda m: m["live_f1"]["canary"]["status"] != "not started")
    assert "does not match" in metrics["live_f1"]["canary"]["status"]
    assert metrics["drift"]["message"].startswith("Drift is off: drift reference")
    missing = _folder_service(tmp_path, folder, KeywordPredictor(), canary_file=tmp_path / "nope.csv")
    status = _wait_for(missing, lambda m: m["live_f1"]["canary"]["status"] != "not started")["live_f1"]["canary"]
    assert "CANARY_FILE" in status["status"]
    assert "does not exist" in status["status"]


def test_the_server_never_imports_the_data_pipeline() -> None:
    code = (
        "import sys, tweet_classifier.serving.server, tweet_classifier.serving.ui\n"
        "import tweet_classifier.inference.predictor\n"
        "print(sorted(name for name in sys.modules if name.startswith('tweet_classifier.')))"
    )
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded = set(json.loads(completed.stdout.replace("'", '"')))
    assert "tweet_classifier.serving.service" in loaded
    # At run time as well as in the import graph (the layer contract): no module of these stages loads.
    stages = ("tweet_classifier.data", "tweet_classifier.training", "tweet_classifier.hub")
    assert not [name for name in loaded if name in stages or name.startswith(tuple(f"{s}." for s in stages))]


# ---- FastAPI surface ------------------------------------------------------------------------------
@pytest.fixture
def v1_client(tmp_path):
    service = ready_service(tmp_path)
    with TestClient(create_app(service, with_ui=False)) as client:
        yield client, service


def test_v1_predict_and_batch_share_the_service(v1_client) -> None:
    client, _service = v1_client
    response = client.post("/v1/predict", json={"text": "@united thanks, great crew!"})
    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "positive"
    assert set(body["scores"]) == set(LABELS)
    assert body["normalized_text"] == "@user thanks, great crew!"
    batch = client.post("/v1/predict_batch", json={"texts": ["worst delay", "what time"]})
    assert [item["label"] for item in batch.json()["results"]] == ["negative", "neutral"]
    metrics = client.get("/v1/metrics").json()
    assert metrics["requests_served"] == 2
    assert metrics["texts_served"] == 3
    assert client.get("/healthz").json() == {"status": "ready", "model_version": "keyword-rules@test"}


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"text": ""}, 422),
        ({"text": " \t\n "}, 422),
        ({"text": None}, 422),
        ({}, 422),
        ({"text": "x" * 2001}, 422),
        ({"text": "\u202e\u2066\u200b"}, 422),
    ],
)
def test_v1_rejects_bad_input_with_a_json_error(v1_client, payload, status) -> None:
    client, _ = v1_client
    response = client.post("/v1/predict", json=payload)
    assert response.status_code == status
    assert "Traceback" not in response.text


def test_v1_body_limit_answers_413_before_parsing(tmp_path) -> None:
    service = ready_service(tmp_path, max_body_bytes=1_000)
    with TestClient(create_app(service, with_ui=False)) as client:
        response = client.post("/v1/predict", content=b'{"text": "' + b"x" * 2_000 + b'"}')
    assert response.status_code == 413
    assert "send less" in response.json()["error"]


def test_v1_internal_errors_are_generic_and_logged(v1_client, caplog) -> None:
    client, service = v1_client

    def explode(text: str) -> None:
        raise RuntimeError("/srv/secret/weights.bin exploded")

    service.predictor.predict = explode
    response = client.post("/v1/predict", json={"text": "hello"})
    assert response.status_code == 500
    assert "secret" not in response.text
    assert "logged as" in response.json()["error"]
    assert "exploded" in caplog.text


def test_v1_openapi_schema_has_the_pydantic_models(v1_client) -> None:
    client, _ = v1_client
    schema = client.get("/v1/openapi.json").json()
    assert {"/v1/predict", "/v1/predict_batch", "/healthz", "/v1/metrics"} <= set(schema["paths"])
    assert set(schema["components"]["schemas"]["PredictResponse"]["properties"]) >= {
        "label",
        "scores",
        "latency_ms",
        "model_version",
    }


def test_v1_overload_is_answered_busy_never_a_hang(tmp_path) -> None:
    service = ready_service(tmp_path, predictor=KeywordPredictor(delay_s=0.4), concurrency_limit=1, queue_max_size=2)
    results: list[httpx.Response] = []
    with running_server(service, with_ui=False) as base_url:

        def call() -> None:
            results.append(httpx.post(f"{base_url}/v1/predict", json={"text": "hello"}, timeout=30))

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert service.metrics()["requests_rejected"] == sum(1 for r in results if r.status_code == 503)
    statuses = sorted(response.status_code for response in results)
    assert len(statuses) == 8
    assert set(statuses) == {200, 503}, statuses
    assert statuses.count(200) >= 2
    for response in results:
        if response.status_code == 503:
            assert response.json() == {"error": BUSY_MESSAGE}
            assert response.headers["retry-after"] == "5"


SLOW_SERVER = """
import sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from tests.serving_helpers import KeywordPredictor
from tweet_classifier.config import ServeConfig
from tweet_classifier.serving.http import create_app
from tweet_classifier.serving.server import run_server
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings
settings = ServeSettings(model="rules", host="127.0.0.1", port={port}, feedback_file=Path({feedback!r}),
                         config=ServeConfig(graceful_shutdown_s=20))
service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor(delay_s=2.0))
service.start(background_checks=False)
run_server(create_app(service), settings)
"""


def test_sigterm_lets_in_flight_requests_finish(tmp_path) -> None:
    from gradio_client import Client

    port = free_port()
    code = SLOW_SERVER.format(repo=str(REPO_ROOT), port=port, feedback=str(tmp_path / "fb.jsonl"))
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO_ROOT
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, 90, process=process)
        client = Client(base_url, verbose=False)
        outcomes: dict[str, object] = {}

        def via_http() -> None:
            outcomes["http"] = httpx.post(f"{base_url}/v1/predict", json={"text": "thanks"}, timeout=30).json()

        def via_gradio() -> None:
            outcomes["gradio"] = client.predict("worst delay", api_name="/predict")

        threads = [threading.Thread(target=via_http), threading.Thread(target=via_gradio)]
        for thread in threads:
            thread.start()
        time.sleep(0.8)  # both requests are now inside the 2 s model call
        process.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(30)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert outcomes["http"]["label"] == "positive", output
    assert outcomes["gradio"]["label"] == "negative", output
    # uvicorn re-raises the captured SIGTERM after its graceful shutdown, so the exit status is -SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in output


# ---- /v1 error bodies, limits and waiting -----------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "headers", "status", "message"),
    [
        (b'{"text": NaN}', {}, 422, "text: Input should be a valid string"),
        (b'{"text": Infinity}', {}, 422, "text: Input should be a valid string"),
        (b'{"text": [1, 2, 3]}', {}, 422, "text: Input should be a valid string"),
        (b"{}", {}, 422, "text is missing"),
        (b'{"text": "hi"', {}, 422, "the body is not valid JSON"),
        (b'{"text": "hi"}', {"content-type": "text/plain"}, 422, "content-type: application/json"),
        (b"[" * 100_000 + b"]" * 100_000, {}, 400, "error parsing the body"),
    ],
    ids=["nan", "infinity", "list", "missing", "truncated", "text-plain", "deep-nesting"],
)
def test_v1_errors_are_one_short_line_without_the_input(v1_client, body, headers, status, message) -> None:
    client, _ = v1_client
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"} | headers)
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]
    assert len(response.text) < 400


def test_v1_a_huge_wrong_typed_batch_fails_fast_with_one_error(v1_client) -> None:
    client, _ = v1_client
    body = b'{"texts": [' + b",".join([b"1"] * 1_000_000) + b"]}"  # 2 MB: under the body limit
    started = time.perf_counter()
    response = client.post("/v1/predict_batch", content=body, headers={"content-type": "application/json"})
    elapsed = time.perf_counter() - started
    assert response.status_code == 422
    assert response.json() == {"error": "texts: List should have at most 256 items after validation, not 1000000"}
    assert elapsed < 5  # FastAPI's default built a 100 MB error echoing every item
    few = client.post("/v1/predict_batch", json={"texts": ["ok", 1, None]})
    assert few.json() == {"error": "texts[1]: Input should be a valid string (and 1 more problems)"}


def test_v1_unknown_routes_and_methods_answer_json_errors(v1_client) -> None:
    client, _ = v1_client
    assert client.get("/v1/predict").json() == {"error": "Method Not Allowed"}
    assert client.get("/v1/nothing-here").json() == {"error": "Not Found"}


def test_v1_feedback_updates_the_live_corrections(v1_client) -> None:
    client, service = v1_client
    response = client.post("/v1/feedback", json={"text": "lost my bag", "predicted": "neutral", "correct": "negative"})
    assert response.json() == {"stored": True, "corrections": 1, "macro_f1": 0.0}
    bad = client.post("/v1/feedback", json={"text": "x", "predicted": "neutral", "correct": "furious"})
    assert bad.status_code == 422
    assert "unknown: choose one of" in bad.json()["error"]
    assert service.metrics()["live_f1"]["corrections"]["n"] == 1


def test_a_request_whose_client_left_is_dropped_before_compute(tmp_path) -> None:
    predictor = KeywordPredictor(delay_s=1.5)
    service = ready_service(tmp_path, predictor=predictor, concurrency_limit=1)
    with running_server(service, with_ui=False) as base_url:
        holder = threading.Thread(
            target=lambda: httpx.post(f"{base_url}/v1/predict", json={"text": "first"}, timeout=30)
        )
        holder.start()
        time.sleep(0.2)  # the first request holds the only slot
        for _ in range(4):
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(f"{base_url}/v1/predict", json={"text": "gave up"}, timeout=0.1)
        holder.join(10)
        deadline = time.monotonic() + 5
        while service.metrics()["requests_abandoned"] < 4:
            assert time.monotonic() < deadline, service.metrics()
            time.sleep(0.05)
        assert predictor.calls == 1  # the four abandoned requests never reached the model
        # Nothing left behind: the next request is served at once, not answered busy.
        assert httpx.post(f"{base_url}/v1/predict", json={"text": "next"}, timeout=30).status_code == 200
    assert service.metrics()["requests_failed"] == 0


def test_a_request_that_waits_too_long_for_a_slot_is_answered_busy(tmp_path) -> None:
    service = ready_service(
        tmp_path, predictor=KeywordPredictor(delay_s=1.0), concurrency_limit=1, max_queue_wait_s=0.2
    )
    first = threading.Thread(target=service.predict, args=("holds the slot",))
    first.start()
    time.sleep(0.1)
    with pytest.raises(ServiceBusyError, match="busy"):
        service.predict("waits")
    first.join()
    assert service.metrics()["requests_rejected"] == 1


def test_at_shutdown_running_requests_finish_and_late_waiters_are_answered_busy(tmp_path) -> None:
    service = ready_service(
        tmp_path,
        predictor=KeywordPredictor(delay_s=0.8),
        concurrency_limit=1,
        graceful_shutdown_s=0.4,
        max_queue_wait_s=0.3,
    )
    outcomes: dict[str, object] = {}

    def call(name: str) -> None:
        try:
            outcomes[name] = service.predict("thanks")["label"]
        except ServiceBusyError as error:
            outcomes[name] = str(error)

    running = threading.Thread(target=call, args=("running",))
    running.start()
    time.sleep(0.1)
    waiting = threading.Thread(target=call, args=("waiting",))
    waiting.start()
    service.stop()  # SIGTERM: admission stays open for half the 0.4 s grace, the slot frees at 0.8 s
    running.join(5)
    waiting.join(5)
    assert outcomes == {"running": "positive", "waiting": "The server is restarting. Please retry in a few seconds."}


def test_idle_and_partial_connections_are_closed_at_their_deadline(tmp_path) -> None:
    import socket

    service = ready_service(tmp_path, header_timeout_s=0.5, body_timeout_s=1.0)
    with running_server(service, with_ui=False) as base_url:
        host, port = base_url.removeprefix("http://").split(":")

        def seconds_until_closed(payload: bytes, trickle: bytes = b"") -> float:
            with socket.create_connection((host, int(port)), timeout=10) as connection:
                connection.sendall(payload)
                started = time.perf_counter()
                while True:
                    try:
                        if trickle:
                            connection.sendall(trickle)
                            time.sleep(0.1)
                            connection.setblocking(False)
                            try:
                                if connection.recv(1024) == b"":
                                    break
                            except BlockingIOError:
                                continue
                            finally:
                                connection.setblocking(True)
                        elif connection.recv(1024) == b"":
                            break
                    except (ConnectionResetError, BrokenPipeError):
                        break
                    assert time.perf_counter() - started < 8, "the connection was never closed"
                return time.perf_counter() - started

        assert seconds_until_closed(b"") < 2  # opened, nothing sent
        assert seconds_until_closed(b"GET /healthz HTTP/1.1\r\n", trickle=b"X") < 2  # a slow head
        partial_body = b'POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"text"'
        assert seconds_until_closed(partial_body) < 3
        # A complete request is unaffected.
        assert httpx.get(f"{base_url}/healthz").status_code == 200


def test_load_with_corrections_measures_three_phases_and_stores_the_corrections(tmp_path) -> None:
    from tweet_classifier.serving.corrections_load import (
        format_load_with_corrections,
        load_with_corrections,
        wait_for_start_up_work,
        write_stored_corrections,
    )

    write_stored_corrections(tmp_path / "feedback.jsonl", 8)
    service = ready_service(tmp_path, feedback_max_records=10)
    assert service.metrics()["live_f1"]["corrections"]["n"] == 8  # replayed at start
    with running_server(service, with_ui=False) as base_url:
        assert wait_for_start_up_work(base_url, timeout_s=0.1, interval_s=0.01) == "not started"  # no canary here
        results = load_with_corrections(
            base_url, clients=3, duration_s=2.0, rounds=1, interval_s=0.05, corrections_per_s=20, texts=["thanks", ""]
        )
    phases = results["phases"]
    assert [phases[name]["clients"] for name in ("single", "clients", "clients_corrections")] == [1, 3, 3]
    assert phases["clients"]["client_ms"]["n"] > phases["single"]["client_ms"]["n"] > 0
    assert phases["clients"]["failed"] > 0  # the empty text is refused, and counted
    assert phases["clients_corrections"]["corrections_per_s"] > 0
    assert phases["single"]["corrections_per_s"] == 0
    assert 0 < service.metrics()["live_f1"]["corrections"]["n"] <= 10  # the window kept its bound
    assert results["p95_ratio_vs_single"] == pytest.approx(
        phases["clients_corrections"]["client_ms"]["p95"] / phases["single"]["client_ms"]["p95"]
    )
    table = format_load_with_corrections(results)
    assert "3 clients + corrections" in table
    assert "p95 with corrections / 1-client p95" in table
