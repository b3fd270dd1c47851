"""W&B: the online/offline decision, secrets never logged, failures never fatal, and what was logged read back."""

from __future__ import annotations

import http.server
import socket
import threading
from types import SimpleNamespace

import pytest

from tests import wandb_log
from tests.training_helpers import FAST_OVERRIDES, write_synthetic_config
from tweet_classifier.config import TrackingConfig, load_config
from tweet_classifier.training import tracking, train

METRICS = {
    "validation": {"macro_f1": 0.81, "accuracy": 0.85},
    "test": {
        "macro_f1": 0.8,
        "accuracy": 0.84,
        "ece": 0.05,
        "per_class": {
            "negative": {"precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10},
            "positive": {"precision": 0.7, "recall": 0.7, "f1": 0.7, "support": 5},
        },
        "confusion_matrix": {"labels": ["negative", "positive"], "matrix": [[9, 1], [1, 4]]},
        "slices": {"has_url": {"n": 4, "macro_f1": 0.5, "accuracy": 0.75, "small": True}},
    },
    "baseline": {"test": {"macro_f1": 0.7}},
}
REPORT = {
    "steps": [{"name": "drop_empty", "rows_in": 10, "rows_removed": 1, "examples": [{"text": "x"}]}],
    "label_noise": {"examples": [{"text": "great flight", "given": "negative", "suggested": "positive"}]},
}
WORST = [{"text": "so great", "label": "negative", "predicted": "positive", "confidence": 0.97}]


def closed_loopback_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The socket is closed again: nothing listens on this port.
    return f"http://127.0.0.1:{port}"


def test_mode_decision_table():
    never_called = pytest.fail
    offline_env = {"WANDB_MODE": "offline", "WANDB_API_KEY": "k"}
    assert tracking.resolve_mode(TrackingConfig(enabled=False), {}, never_called) == "disabled"
    assert tracking.resolve_mode(TrackingConfig(mode="disabled"), {}, never_called) == "disabled"
    assert tracking.resolve_mode(TrackingConfig(), {"WANDB_MODE": "disabled"}, never_called) == "disabled"
    assert tracking.resolve_mode(TrackingConfig(mode="offline"), {"WANDB_API_KEY": "k"}, never_called) == "offline"
    assert tracking.resolve_mode(TrackingConfig(), offline_env, never_called) == "offline"
    assert tracking.resolve_mode(TrackingConfig(), {}, never_called) == "offline", "auto without a key"
    assert tracking.resolve_mode(TrackingConfig(mode="online"), {}, never_called) == "offline"
    online_env = {"WANDB_MODE": "online", "WANDB_API_KEY": "k", "WANDB_BASE_URL": "http://wandb.local/"}
    seen = []

    def reachable(url, timeout):
        seen.append((url, timeout))
        return True

    assert tracking.resolve_mode(TrackingConfig(), online_env, reachable) == "online"
    assert seen == [("http://wandb.local", 3.0)]
    assert tracking.resolve_mode(TrackingConfig(), online_env, lambda url, timeout: False) == "offline"


def test_reachability_check_is_bounded_and_treats_http_errors_as_reachable():
    assert tracking.server_reachable(closed_loopback_url(), timeout_s=1.0) is False
    assert tracking.server_reachable("not a url", timeout_s=1.0) is False

    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        assert tracking.server_reachable(f"http://127.0.0.1:{server.server_port}", timeout_s=3.0) is True
    finally:
        thread.join(timeout=5)
        server.server_close()


def test_redact_secrets():
    values = {
        "hub": {"token": "abc", "repo_id": "me/model"},
        "WANDB_API_KEY": "xyz",
        "notes": ["pushed with hf_abcdefghijklmnopqrstuvwxyz"],
        "train": {"learning_rate": 1e-4, "base_revision": "0" * 40},
    }
    redacted = tracking.redact_secrets(values)
    assert redacted["hub"] == {"token": tracking.REDACTED, "repo_id": "me/model"}
    assert redacted["WANDB_API_KEY"] == tracking.REDACTED
    assert redacted["notes"] == [f"pushed with {tracking.REDACTED}"]
    assert redacted["train"] == values["train"]


def test_offline_run_logs_results_that_read_back(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_canaryDoNotLeak0123456789")
    config = load_config([write_synthetic_config(tmp_path / "data", rows=30)], ["tracking.mode=offline"])
    run = tracking.start_run(config, run_name="read-back")
    assert run.active
    assert run.mode == "offline"
    assert run.url is None
    assert tracking.report_to(run) == ["wandb"]
    tracking.log_final_results(run, METRICS, REPORT, WORST)
    run_dir = run.run_dir
    run.finish()
    assert not run.active

    record = wandb_log.read_offline_run(run_dir)
    assert record.config["name"] == config.name
    assert record.config["train"]["learning_rate"] == config.train.learning_rate
    assert record.summary["test/macro_f1"] == 0.8
    assert record.summary["test/f1_negative"] == 0.9
    assert record.summary["validation/macro_f1"] == 0.81
    assert record.summary["baseline/test_macro_f1"] == 0.7
    assert record.summary["test/macro_f1_minus_baseline"] == pytest.approx(0.1)
    assert record.tables["test/confusion_matrix"]["data"] == [["negative", 9, 1], ["positive", 1, 4]]
    assert record.tables["test/worst_misclassified"]["data"] == [["so great", "negative", "positive", 0.97]]
    assert record.tables["test/slices"]["data"][0][0] == "has_url"
    assert record.tables["test/model_vs_baseline"]["data"] == [["tfidf_baseline", 0.7], ["model", 0.8]]
    assert record.tables["data/label_noise"]["columns"] == ["given", "suggested", "text"]
    assert "examples" not in record.tables["data/cleaning_steps"]["columns"]
    for path in run_dir.rglob("*"):
        if path.is_file():
            assert b"hf_canaryDoNotLeak" not in path.read_bytes(), path


def _finished_run_with_a_flat_report(tmp_path):
    config = load_config([write_synthetic_config(tmp_path / "data", rows=30)], ["tracking.mode=offline"])
    run = tracking.start_run(config)
    tracking.log_final_results(run, {"test": {"macro_f1": 0.5}}, {"rows": 10, "source": "x.csv"})
    run_dir = run.run_dir
    run.finish()
    return run_dir


def test_flat_cleaning_reports_are_logged_too(tmp_path):
    run_dir = _finished_run_with_a_flat_report(tmp_path)
    record = wandb_log.read_offline_run(run_dir)
    assert record.tables["data/cleaning_report"]["data"] == [["rows", "10"], ["source", "x.csv"]]


def test_disabled_tracking_is_a_silent_no_op(tmp_path):
    config = load_config([write_synthetic_config(tmp_path / "data", rows=30)], ["tracking.enabled=false"])
    run = tracking.start_run(config)
    assert not run.active
    assert run.url is None
    assert run.run_dir is None
    assert tracking.report_to(run) == []
    tracking.log_final_results(run, METRICS, REPORT, WORST)
    run.finish()


def test_wandb_failures_become_warnings(tmp_path, monkeypatch, caplog):
    import wandb

    def broken_init(**kwargs):
        raise RuntimeError("wandb is broken today")

    monkeypatch.setattr(wandb, "init", broken_init)
    config = load_config([write_synthetic_config(tmp_path / "data", rows=30)], ["tracking.mode=offline"])
    run = tracking.start_run(config)
    assert not run.active
    assert "wandb is broken today" in caplog.text

    class ExplodingRun:
        @property
        def summary(self):
            raise ConnectionError("server went away")

        def log(self, values):
            raise ConnectionError("server went away")

        def finish(self):
            raise ConnectionError("server went away")

    failing = tracking.TrackingRun(ExplodingRun(), "online")
    assert failing.url is None, "a run without a readable URL is not an error"
    tracking.log_final_results(failing, METRICS, REPORT, WORST)
    failing.finish()
    assert caplog.text.count("server went away") >= 3


def test_guarded_callback_swallows_errors(caplog):
    callback = tracking.GuardedWandbCallback()

    class Boom:
        def __getattr__(self, name):
            raise ConnectionError("wandb backend crashed")

    callback._wandb = Boom()
    callback._initialized = True
    state = SimpleNamespace(is_world_process_zero=True, global_step=3)
    assert callback.on_log(None, state, None, logs={"loss": 1.0}) is None
    assert callback.failed
    assert "wandb backend crashed" in caplog.text
    # After the first failure the callback stays quiet instead of failing every step.
    caplog.clear()
    assert callback.on_log(None, state, None, logs={"loss": 1.0}) is None
    assert caplog.text == ""


def test_training_completes_when_wandb_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("WANDB_API_KEY", "local-" + "0" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", closed_loopback_url())
    config_path = write_synthetic_config(tmp_path / "data", rows=150)
    config = load_config(
        [config_path], [*FAST_OVERRIDES, "tracking.enabled=true", "tracking.mode=auto", "train.max_steps=2"]
    )
    result = train.train_model(config, output_dir=tmp_path / "model")
    assert (result.model_dir / "model.safetensors").is_file()
    assert result.manifest.wandb_run_url is None
    assert result.wandb_run_dir is not None
    assert result.wandb_run_dir.name.startswith("offline-run-")
    record = wandb_log.read_offline_run(result.wandb_run_dir)
    assert "test/macro_f1" in record.summary


def test_reading_an_unfinished_run_waits_then_warns(tmp_path, caplog):
    with pytest.raises(FileNotFoundError):
        wandb_log.read_offline_run(tmp_path)
    # What a run folder holds right after start: wandb's file header and no records yet.
    (tmp_path / "run-abc.wandb").write_bytes(b":W&B\xe1\xbe\x00")
    record = wandb_log.read_offline_run(tmp_path, wait_s=0.2)
    assert (record.config, record.summary, record.history, record.tables) == ({}, {}, [], {})
    assert "is incomplete after 0 s" in caplog.text


def test_a_record_still_being_written_is_read_again(tmp_path, monkeypatch, caplog):
    run_dir = _finished_run_with_a_flat_report(tmp_path)
    complete = wandb_log.read_offline_run(run_dir)
    real_records = wandb_log._iter_log_records
    calls = []

    def half_written_at_first(data):
        records = list(real_records(data))
        calls.append(len(records))
        # The first read meets a truncated last record, as when wandb's writer is mid-write.
        return [*records[:-1], b"\xff\xff\xff"] if len(calls) == 1 else records

    monkeypatch.setattr(wandb_log, "_iter_log_records", half_written_at_first)
    assert wandb_log.read_offline_run(run_dir).tables == complete.tables
    assert len(calls) == 2
    monkeypatch.setattr(wandb_log, "_iter_log_records", lambda data: [*real_records(data), b"\xff\xff\xff"])
    with caplog.at_level("WARNING"):
        partial = wandb_log.read_offline_run(run_dir, wait_s=0.2)
    assert partial.tables == complete.tables
    assert "is incomplete after 0 s: reading a partial run" in caplog.text
