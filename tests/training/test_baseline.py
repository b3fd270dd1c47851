"""The baseline stage: learning, C selection, scoring, outputs, CLI (the model: tests/data/test_tfidf_model.py)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.synthetic_tweets import SYNTHETIC_LABELS, synthetic_frame
from tweet_classifier import cli
from tweet_classifier.config import BaselineConfig, build_config
from tweet_classifier.data.tfidf_model import fit_baseline
from tweet_classifier.training.baseline import (
    BaselineError,
    evaluate_baseline,
    format_table,
    run_baseline,
    train_and_select,
    write_baseline,
)

FAST = BaselineConfig(max_features=5_000, c_grid=[0.5, 4.0], char_ngram_max=4)


@pytest.fixture(scope="module")
def splits() -> dict[str, pd.DataFrame]:
    return {
        "train": synthetic_frame(rows_per_class=60, seed=0),
        "validation": synthetic_frame(rows_per_class=20, seed=1),
        "test": synthetic_frame(rows_per_class=20, seed=2),
    }


@pytest.fixture(scope="module")
def fitted(splits: dict[str, pd.DataFrame]):
    train = splits["train"]
    return fit_baseline(train["text"].tolist(), train["label"].tolist(), SYNTHETIC_LABELS, FAST, C=1.0)


def test_fit_baseline_learns_the_cue_words(fitted, splits: dict[str, pd.DataFrame]) -> None:
    test = splits["test"]
    report = evaluate_baseline(fitted, test["text"].tolist(), test["label"].tolist(), SYNTHETIC_LABELS)

    assert report["macro_f1"] > 0.9
    assert report["n"] == len(test)
    assert 0.0 <= report["ece"] <= 1.0


def test_train_and_select_scores_every_c_and_keeps_the_best() -> None:
    # One cue word among six fillers: hard enough that heavy regularisation (C=0.001) costs F1.
    train = synthetic_frame(rows_per_class=60, seed=0, cue_words=1, filler_words=6)
    validation = synthetic_frame(rows_per_class=20, seed=1, cue_words=1, filler_words=6)
    config = FAST.model_copy(update={"c_grid": [0.001, 1.0]})

    model, chosen_c, validation_report, grid = train_and_select(
        train["text"].tolist(),
        train["label"].tolist(),
        validation["text"].tolist(),
        validation["label"].tolist(),
        SYNTHETIC_LABELS,
        config,
    )

    assert set(grid) == {"C=0.001", "C=1"}
    assert grid["C=1"] > grid["C=0.001"]
    assert chosen_c == 1.0
    assert grid["C=1"] == validation_report["macro_f1"]
    assert model.named_steps["classifier"].C == 1.0


def test_train_and_select_keeps_the_first_c_on_a_tie(splits: dict[str, pd.DataFrame]) -> None:
    train, validation = splits["train"], splits["validation"]
    # The same C twice under two spellings ties exactly; the first listed must win.
    config = FAST.model_copy(update={"c_grid": [2.0, 2.0000000001]})

    _, chosen_c, _, grid = train_and_select(
        train["text"].tolist(),
        train["label"].tolist(),
        validation["text"].tolist(),
        validation["label"].tolist(),
        SYNTHETIC_LABELS,
        config,
    )

    assert len(set(grid.values())) == 1
    assert chosen_c == 2.0


def test_train_and_select_rejects_empty_validation_and_empty_grid(splits: dict[str, pd.DataFrame]) -> None:
    train = splits["train"]
    arguments = (train["text"].tolist(), train["label"].tolist())
    with pytest.raises(BaselineError, match="validation split is empty"):
        train_and_select(*arguments, [], [], SYNTHETIC_LABELS, FAST)
    with pytest.raises(BaselineError, match=r"baseline.c_grid is empty: list at least one value"):
        train_and_select(*arguments, ["x"], ["negative"], SYNTHETIC_LABELS, FAST.model_copy(update={"c_grid": []}))


def _prepared(splits: dict[str, pd.DataFrame]) -> SimpleNamespace:
    # The attributes run_baseline reads from data.PreparedData.
    return SimpleNamespace(labels=SYNTHETIC_LABELS, **splits)


def test_run_baseline_reports_validation_test_choice_and_timing(splits: dict[str, pd.DataFrame]) -> None:
    config = build_config({"name": "synthetic", "data": {"source": "unused.csv"}, "baseline": FAST.model_dump()})

    result = run_baseline(_prepared(splits), config)

    metrics = result.metrics
    assert set(metrics) >= {"validation", "test", "selected", "timing_s", "data"}
    assert metrics["selected"]["C"] == result.selected_c in FAST.c_grid
    assert metrics["validation"]["macro_f1"] == max(metrics["selected"]["validation_macro_f1_by_C"].values())
    assert metrics["test"]["macro_f1"] > 0.9
    assert set(metrics["test"]["per_class"]) == set(SYNTHETIC_LABELS)
    assert metrics["test"]["confusion_matrix"]["labels"] == SYNTHETIC_LABELS
    assert "ece" in metrics["test"]
    assert metrics["data"] == {"train": 180, "validation": 60, "test": 60}
    assert metrics["timing_s"]["fit_and_select"] > 0
    assert "slices" not in metrics["test"]  # no raw_text column to slice on


def test_run_baseline_adds_the_evaluation_slices_when_raw_text_is_there(splits: dict[str, pd.DataFrame]) -> None:
    config = build_config({"name": "synthetic", "data": {"source": "unused.csv"}, "baseline": FAST.model_dump()})
    test = splits["test"].copy()
    test["raw_text"] = ["@Delta " + text if index % 2 else text for index, text in enumerate(test["text"])]
    test["group"] = ["Delta" if index % 2 else "United" for index in range(len(test))]

    result = run_baseline(_prepared({**splits, "test": test}), config)

    slices = result.metrics["test"]["slices"]
    assert slices["has_mention"]["n"] == 30
    assert slices["group=Delta"]["n"] == slices["group=United"]["n"] == 30
    assert "has_url" not in slices  # empty slices are skipped


def test_run_baseline_rejects_an_empty_test_split(splits: dict[str, pd.DataFrame]) -> None:
    config = build_config({"name": "synthetic", "data": {"source": "unused.csv"}, "baseline": FAST.model_dump()})
    empty_test = {**splits, "test": splits["test"].iloc[:0]}
    with pytest.raises(BaselineError, match="the test split is empty"):
        run_baseline(_prepared(empty_test), config)


def test_write_baseline_round_trips_model_metrics_and_config(splits: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    config = build_config({"name": "synthetic", "data": {"source": "unused.csv"}, "baseline": FAST.model_dump()})
    result = run_baseline(_prepared(splits), config)

    out_dir = write_baseline(result, config, tmp_path / "out")

    reloaded = joblib.load(out_dir / "baseline.joblib")
    texts = splits["test"]["text"].tolist()
    np.testing.assert_array_equal(reloaded.predict_proba(texts), result.model.predict_proba(texts))
    assert json.loads((out_dir / "metrics.json").read_text())["test"]["macro_f1"] == result.metrics["test"]["macro_f1"]
    assert yaml.safe_load((out_dir / "config.yaml").read_text())["baseline"]["c_grid"] == FAST.c_grid


def test_format_table_has_one_row_per_split_and_a_column_per_class() -> None:
    def report(macro: float) -> dict:
        per_class = {label: {"f1": macro} for label in SYNTHETIC_LABELS}
        return {"macro_f1": macro, "accuracy": 0.5, "per_class": per_class}

    table = format_table({"validation": report(0.25), "test": report(0.75)})

    lines = table.splitlines()
    assert lines[0] == "| split | macro-F1 | accuracy | F1 negative | F1 neutral | F1 positive |"
    assert lines[2] == "| validation | 0.2500 | 0.5000 | 0.2500 | 0.2500 | 0.2500 |"
    assert lines[3] == "| test | 0.7500 | 0.5000 | 0.7500 | 0.7500 | 0.7500 |"


@pytest.fixture
def tiny_run_config(tmp_path: Path) -> Path:
    frame = synthetic_frame(rows_per_class=70, seed=3)
    frame["tweet_id"] = range(len(frame))
    csv_path = tmp_path / "tweets.csv"
    frame[["tweet_id", "text", "label"]].to_csv(csv_path, index=False)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny",
                "data": {"source": str(csv_path), "id_column": "tweet_id", "labels": SYNTHETIC_LABELS},
                "cleaning": {"label_noise": {"policy": "report", "folds": 3}},
                "baseline": FAST.model_dump(),
            }
        )
    )
    return config_path


def test_cli_baseline_writes_outputs_and_prints_the_table(
    tiny_run_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "baseline-out"

    exit_code = cli.main(["baseline", "--config", str(tiny_run_config), "--out", str(out_dir)])

    assert exit_code == 0
    assert {path.name for path in out_dir.iterdir()} == {"metrics.json", "baseline.joblib", "config.yaml"}
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["test"]["macro_f1"] > 0.9
    assert {"prepare_data", "total", "fit_and_select"} <= set(metrics["timing_s"])
    assert metrics["test"]["slices"]["short_text"]["n"] == metrics["test"]["n"]  # every synthetic text is short
    stdout = capsys.readouterr().out
    assert stdout.startswith("| split | macro-F1 |")
    assert f"| test | {metrics['test']['macro_f1']:.4f} |" in stdout


def test_cli_baseline_default_out_dir_uses_the_config_name(
    tiny_run_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli.main(["baseline", "--config", str(tiny_run_config), "--set", "baseline.c_grid=[1.0]"]) == 0
    assert (tmp_path / "outputs" / "baseline" / "tiny" / "metrics.json").is_file()


def test_cli_baseline_user_error_exits_2_with_one_line(
    tiny_run_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    exit_code = cli.main(
        ["baseline", "--config", str(tiny_run_config), "--set", "baseline.c_grid=[]", "--out", str(tmp_path / "o")]
    )

    assert exit_code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert len(errors) == 1
    assert "baseline.c_grid is empty: list at least one value" in errors[0]
    assert not (tmp_path / "o").exists()
