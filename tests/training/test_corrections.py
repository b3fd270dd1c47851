"""retrain --corrections: users' corrections join the train split only, de-duplicated against the frozen
test set, and the decision report shows what was used and both models' F1 on them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import build_tiny_model_folder
from tests.hub.test_promote import read_decision, smoke_config
from tests.hub_stub import HubStub, connect_hub_client
from tweet_classifier import cli
from tweet_classifier.data.split_groups import coarse_key
from tweet_classifier.hub import promote
from tweet_classifier.training.corrections import CorrectionsError, add_corrections, read_correction_records


@pytest.fixture(scope="module")
def prepared():
    from tweet_classifier.data.prepare import prepare_data

    return prepare_data(smoke_config())


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


def _records(prepared) -> list[dict]:
    test_raw = prepared.test["raw_text"].iloc[0]
    validation_raw = prepared.validation["raw_text"].iloc[0]
    train_row = prepared.train.iloc[0]
    other = next(label for label in prepared.labels if label != train_row["label"])
    return [
        {"id": "1", "time": "2026-11-01T10:00:00", "text": "@united the seat was broken AGAIN", "correct": "negative"},
        {"id": "2", "time": "2026-11-01T10:05:00", "text": "@united The seat was broken again!", "correct": "neutral"},
        {"id": "3", "time": "2026-11-01T10:06:00", "text": test_raw.upper(), "correct": "positive"},
        {"id": "4", "time": "2026-11-01T10:07:00", "text": validation_raw, "correct": "positive"},
        {"id": "5", "time": "2026-11-01T10:08:00", "text": train_row["raw_text"], "correct": other},
        {"id": "6", "time": "2026-11-01T10:09:00", "text": "what time is boarding", "correct": "not-a-label"},
        {"id": "7", "time": "2026-11-01T10:10:00", "text": "\u200b \t", "correct": "neutral"},
    ]


def test_corrections_join_train_only_newest_wins_and_counts_add_up(prepared) -> None:
    config = smoke_config("promotion.corrections_weight=2.5")
    updated, scored, used = add_corrections(prepared, _records(prepared), config, "feedback.jsonl")
    assert updated.test is prepared.test
    assert updated.validation is prepared.validation
    assert (used.records, used.unknown_label, used.empty) == (7, 1, 1)
    assert (used.superseded, used.in_test, used.in_validation) == (1, 1, 1)
    assert used.added == 2
    assert used.relabelled_train_rows == 1
    assert len(updated.train) == len(prepared.train) - 1 + 2
    added = updated.train.tail(2)
    assert set(added["weight"]) == {2.5}
    # The newer of the two "seat was broken" corrections wins; the train row took its corrected label.
    seat = added[added["raw_text"].str.contains("seat")]
    assert seat["label"].tolist() == ["neutral"]
    assert list(scored["label"]) == added["label"].tolist()
    test_keys = {coarse_key(text, config.normalize) for text in prepared.test["text"]}
    assert not {coarse_key(text, config.normalize) for text in updated.train["text"]} & test_keys - {
        coarse_key(text, config.normalize) for text in prepared.train["text"]
    }


def test_no_usable_correction_is_an_error_that_says_why(prepared) -> None:
    records = [r for r in _records(prepared) if r["id"] in {"3", "6", "7"}]
    with pytest.raises(
        CorrectionsError, match=r"none of its 3 records is usable \(1 with an unknown label, 1 empty, 1"
    ):
        add_corrections(prepared, records, smoke_config(), "feedback.jsonl")


def test_reading_a_file_skips_a_torn_line_and_a_bad_source_names_the_fix(tmp_path, caplog) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text(json.dumps({"text": "late", "correct": "negative"}) + '\n{"text": "cut of', encoding="utf-8")
    assert read_correction_records(str(path)) == [{"text": "late", "correct": "negative"}]
    assert "line 2 is not JSON" in caplog.text
    with pytest.raises(CorrectionsError, match="not a file; give the app's FEEDBACK_FILE"):
        read_correction_records(str(tmp_path / "missing.jsonl"))


def test_corrections_are_read_from_the_feedback_dataset_on_the_hub(tmp_path, monkeypatch) -> None:
    with HubStub() as stub:
        connect_hub_client(stub, monkeypatch, tmp_path / "cache")
        from huggingface_hub import HfApi

        api = HfApi(endpoint=stub.endpoint)
        api.create_repo("me/feedback", repo_type="dataset", private=True)
        for name, records in (
            ("a", [{"id": "1", "text": "x", "correct": "neutral"}]),
            ("b", [{"id": "1"}, {"id": "2"}]),
        ):
            content = "".join(json.dumps(record) + "\n" for record in records).encode()
            api.upload_file(
                path_or_fileobj=content,
                path_in_repo=f"corrections/{name}.jsonl",
                repo_id="me/feedback",
                repo_type="dataset",
            )
        records = read_correction_records("me/feedback")
    assert [record["id"] for record in records] == ["1", "2"]  # each id once


def test_retrain_with_corrections_reports_them_and_both_models_f1(prepared, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr("tweet_classifier.data.prepare.prepare_data", lambda config: prepared)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    champion = build_tiny_model_folder(tmp_path / "champion")
    seen = {}

    def trainer(config, output_dir, training_data):
        seen["train"] = training_data.train
        shutil.copytree(champion, output_dir)
        return output_dir

    feedback = _write(tmp_path / "feedback.jsonl", _records(prepared))
    out = tmp_path / "retrain"
    config = smoke_config("promotion.min_improvement=0.0", "promotion.max_class_drop=0.0")
    result = promote.retrain(config, str(champion), out, trainer=trainer, corrections=str(feedback))
    assert result.verdict == "promoted", result.error
    assert len(seen["train"]) == len(prepared.train) + 1
    decision = read_decision(out)
    used = decision["corrections"]
    assert used["added"] == 2
    assert used["champion_macro_f1"] == used["challenger_macro_f1"]  # the challenger is the champion's copy
    assert decision["test_set"]["n"] == len(prepared.test)
    markdown = (out / promote.REPORT_MARKDOWN).read_text(encoding="utf-8")
    assert "## Users' corrections" in markdown
    assert "2 of 7 corrections" in markdown
    assert "1 in the frozen test set" in markdown


def test_retrain_cli_fails_cleanly_on_a_bad_corrections_source(prepared, tmp_path, monkeypatch):
    from tests.hub.test_promote import CONFIGS

    monkeypatch.setattr("tweet_classifier.data.prepare.prepare_data", lambda config: prepared)
    monkeypatch.setattr(cli, "configure_logging", lambda level: None)
    champion = build_tiny_model_folder(tmp_path / "champion")
    arguments = ["retrain", "--champion", str(champion), "--out", str(tmp_path / "r")]
    arguments += [option for path in CONFIGS for option in ("--config", path)]
    arguments += ["--set", "tracking.mode=disabled", "--corrections", str(tmp_path / "missing.jsonl")]
    assert cli.main(arguments) == promote.EXIT_FAILED
    decision = read_decision(tmp_path / "r")
    assert decision["error"].startswith("add the corrections: CorrectionsError")
    assert "model" not in decision["challenger"]  # nothing was trained
