"""FEEDBACK_REPO: corrections committed to a Hub dataset by CommitScheduler and replayed at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hub_stub import CANARY_TOKEN, HubStub, connect_hub_client
from tests.serving_helpers import KeywordPredictor, make_settings
from tweet_classifier.feedback import merge_records
from tweet_classifier.serving.feedback_hub import FeedbackRepoError, HubFeedbackLog
from tweet_classifier.serving.server import main
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings

FEEDBACK_REPO = "tweet-org/tweet-feedback"


@pytest.fixture
def hub_stub(tmp_path, monkeypatch):
    with HubStub() as stub:
        yield connect_hub_client(stub, monkeypatch, tmp_path / "hf-cache")


def start_service(disk: Path, cache: Path, monkeypatch) -> ClassifierService:
    """A server whose disk is ``disk`` and whose HF cache is ``cache`` (a restarted Space gets new, empty ones)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    settings = make_settings(disk, feedback_repo=FEEDBACK_REPO, feedback_push_minutes=60.0)
    settings = ServeSettings(**{**settings.__dict__, "feedback_file": disk / "runs" / "feedback.jsonl"})
    service = ClassifierService(settings, loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    assert service.wait_until_loaded(30)
    return service


def corrections(service: ClassifierService) -> dict:
    return service.metrics()["live_f1"]["corrections"]


def test_corrections_survive_a_restart_with_an_empty_disk(hub_stub, tmp_path, monkeypatch) -> None:
    first = start_service(tmp_path / "disk-1", tmp_path / "cache-1", monkeypatch)
    first.feedback("worst delay", "negative", "negative")
    first.feedback("what time", "neutral", "positive")
    first.close()  # shutdown: the scheduler commits what the dataset does not have yet
    stored = hub_stub.files_at(FEEDBACK_REPO, repo_type="dataset")
    assert [path for path in stored if path.startswith("corrections/")] != []
    assert hub_stub.repo(FEEDBACK_REPO, "dataset").private

    # A Space restart: a new disk and an empty cache; the corrections come back from the dataset.
    second = start_service(tmp_path / "disk-2", tmp_path / "cache-2", monkeypatch)
    assert corrections(second)["n"] == 2
    assert corrections(second)["macro_f1"] == corrections(first)["macro_f1"]
    second.feedback("thanks so much", "positive", "positive")
    second.close()

    # A restart that still has the first disk: its local records are on the Hub too, and count once.
    third = start_service(tmp_path / "disk-1", tmp_path / "cache-3", monkeypatch)
    assert corrections(third)["n"] == 3
    third.close()
    files = hub_stub.files_at(FEEDBACK_REPO, repo_type="dataset")
    lines = [line for path, content in files.items() if path.endswith(".jsonl") for line in content.splitlines()]
    assert len(lines) == 3
    # The token authorised the commits and is in no file, on the Hub or on either disk.
    assert all(CANARY_TOKEN.encode() not in content for content in files.values())
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.suffix == ".jsonl" for path in written)
    for path in written:
        assert CANARY_TOKEN.encode() not in path.read_bytes(), path


def test_merge_counts_each_correction_once_and_keeps_records_without_an_id() -> None:
    hub = [{"id": "a", "correct": "negative"}, {"id": "b", "correct": "neutral"}]
    local = [{"id": "b", "correct": "neutral"}, {"correct": "positive"}, {"correct": "positive"}]
    assert merge_records(hub, local) == [*hub, {"correct": "positive"}, {"correct": "positive"}]


def test_feedback_repo_needs_an_id_a_token_and_the_hub(hub_stub, tmp_path, monkeypatch) -> None:
    with pytest.raises(FeedbackRepoError, match="like ORG/NAME"):
        HubFeedbackLog("not a repo", tmp_path, 1.0)
    with pytest.raises(FeedbackRepoError, match="call start"):
        HubFeedbackLog(FEEDBACK_REPO, tmp_path, 1.0).append({"correct": "negative"})
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(FeedbackRepoError, match="needs a token with write access: set HF_TOKEN"):
        HubFeedbackLog(FEEDBACK_REPO, tmp_path, 1.0)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(FeedbackRepoError, match="HF_HUB_OFFLINE=1 is set"):
        HubFeedbackLog(FEEDBACK_REPO, tmp_path, 1.0)


def test_app_py_with_feedback_repo_and_no_token_exits_2_with_the_fix(tiny_model_dir, capsys, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    env = {"MODEL_ID": str(tiny_model_dir), "FEEDBACK_REPO": FEEDBACK_REPO}
    assert main([], env=env) == 2
    assert "needs a token with write access" in capsys.readouterr().err


def test_an_unreachable_feedback_dataset_keeps_corrections_local(hub_stub, tmp_path, monkeypatch, caplog) -> None:
    hub_stub.fail("GET", f"/api/datasets/{FEEDBACK_REPO}", status=None, times=None)
    hub_stub.fail("POST", "/api/repos/create", status=None, times=None)
    service = start_service(tmp_path / "disk", tmp_path / "cache", monkeypatch)
    assert service.feedback_hub is None
    assert "corrections stay local" in caplog.text
    service.feedback("worst delay", "negative", "negative")
    assert corrections(service)["n"] == 1
    service.close()
