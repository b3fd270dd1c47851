"""Cleaning ablation: steps from the config, a fixed test set, leak-free partitions, bootstrap, the script."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.synthetic_tweets import SYNTHETIC_LABELS, synthetic_frame
from tweet_classifier.config import load_config
from tweet_classifier.data.model_text import model_texts
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.training.ablation import (
    FULL_PIPELINE,
    NO_CLEANING,
    AblationError,
    AblationStep,
    _partition,
    apply_overlay,
    cleaning_steps,
    format_ablation_table,
    macro_f1_bootstrap,
    paired_bootstrap_interval,
    run_cleaning_ablation,
    select_steps,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def _noisy_tweets(seed: int = 0) -> pd.DataFrame:
    """Synthetic tweets carrying every kind of mess the cleaning steps handle."""
    rng = np.random.default_rng(seed)
    frame = synthetic_frame(rows_per_class=60, seed=seed)
    texts = frame["text"].tolist()
    for position in range(len(texts)):
        decoration = position % 6
        if decoration == 0:
            texts[position] = f"@Delta{position} {texts[position]} https://t.co/x{position}"
        elif decoration == 1:
            texts[position] = texts[position].replace(" ", " &amp; ", 1) + " 😡"
        elif decoration == 2:
            texts[position] = texts[position] + " sooooo Late Flightr"
    frame["text"] = texts
    frame["tweet_id"] = np.arange(len(frame)) + 1000
    frame["confidence"] = rng.uniform(0.4, 1.0, len(frame)).round(3)
    # Copies under new ids that differ only in spacing (equal after normalization), and an id repeating
    # with another label.
    # (Not of repaired rows: the repair regex would not match "Late   Flight", a different text.)
    originals = frame[~frame["text"].str.contains("Late Flight")].head(10)
    extra = originals.assign(tweet_id=originals["tweet_id"] + 5000, text=originals["text"].str.replace(" ", "   "))
    conflict = frame.iloc[[20]].assign(label="neutral" if frame.at[20, "label"] != "neutral" else "positive")
    return pd.concat([frame, extra, conflict], ignore_index=True)[["tweet_id", "text", "label", "confidence"]]


@pytest.fixture
def tiny_config_path(tmp_path: Path) -> Path:
    csv_path = tmp_path / "noisy.csv"
    _noisy_tweets().to_csv(csv_path, index=False)
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(
        yaml.safe_dump(
            {
                "name": "tiny-ablation",
                "data": {
                    "source": str(csv_path),
                    "id_column": "tweet_id",
                    "confidence_column": "confidence",
                    "labels": SYNTHETIC_LABELS,
                    "split": {"validation_fraction": 0.2, "test_fraction": 0.25},
                },
                "cleaning": {
                    "repairs": [{"name": "undo_late_flight", "pattern": "Late Flight", "replacement": "late"}],
                    "label_noise": {"policy": "report", "folds": 3},
                },
                "baseline": {"max_features": 4000, "c_grid": [1.0], "char_ngram_max": 4},
            },
            allow_unicode=True,
        )
    )
    return config_path


def test_steps_of_the_airline_config_cover_every_enabled_cleaning_step() -> None:
    config = load_config([REPO_ROOT / "configs" / "airline.yaml"])

    names = [step.name for step in cleaning_steps(config)]

    # Pipeline order: the switches of data.clean.CLEANING_STEPS as the cleaner meets them.
    assert names == [
        "dedupe",
        "id conflicts",
        "text repairs",
        "HTML + mojibake",
        "Unicode normal form",
        "URL/handle placeholders",
        "demojize",
        "elongation cap",
        "text conflicts",
        "low-confidence labels",
        NO_CLEANING,
        "+ label noise: downweight",
        "+ label noise: drop",
    ]


def test_each_overlay_is_a_valid_config_that_switches_its_step_off() -> None:
    config = load_config([REPO_ROOT / "configs" / "airline.yaml"])
    steps = {step.name: step for step in cleaning_steps(config)}

    assert apply_overlay(config, steps["text repairs"].overlay).cleaning.repairs == []
    assert apply_overlay(config, steps["demojize"].overlay).normalize.demojize is False
    assert apply_overlay(config, steps["id conflicts"].overlay).cleaning.id_conflicts == "off"
    assert apply_overlay(config, steps["low-confidence labels"].overlay).cleaning.low_confidence.policy == "keep"
    everything = apply_overlay(config, steps[NO_CLEANING].overlay)
    assert everything.cleaning.repairs == []
    assert everything.normalize.replace_urls is False
    assert everything.cleaning.text_conflicts == "off"
    assert everything.cleaning.dedupe_normalized is False
    # Only the overlay's keys change.
    assert apply_overlay(config, steps["demojize"].overlay).cleaning == config.cleaning


def test_steps_skip_what_a_config_does_not_do() -> None:
    config = load_config([REPO_ROOT / "configs" / "tweet_eval_hate.yaml"])

    names = [step.name for step in cleaning_steps(config)]

    assert "text repairs" not in names  # no repairs configured
    assert "id conflicts" not in names  # no id column
    assert "low-confidence labels" not in names  # policy keep, no confidence column
    assert "dedupe" in names


def test_a_config_that_drops_label_noise_gets_a_removal_row_instead_of_additions() -> None:
    config = load_config([REPO_ROOT / "configs" / "airline.yaml"], ["cleaning.label_noise.policy=drop"])

    steps = {step.name: step for step in cleaning_steps(config)}

    assert steps["label noise"].overlay == {"cleaning": {"label_noise": {"policy": "off"}}}
    assert not any(name.startswith("+ label noise") for name in steps)
    assert steps[NO_CLEANING].overlay["cleaning"]["label_noise"] == {"policy": "off"}


def test_model_text_reproduces_prepare_data(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path], ["cleaning.label_noise.policy=off"])
    prepared = prepare_data(config)

    for frame in (prepared.train, prepared.test):
        assert model_texts(frame["raw_text"].tolist(), config.cleaning, config.normalize) == frame["text"].tolist()
    # A variant reads the same raw tweets its own way.
    no_repairs = apply_overlay(config, {"cleaning": {"repairs": []}})
    repaired_rows = prepared.train[prepared.train["raw_text"].str.contains("Late Flight")]
    assert not repaired_rows.empty
    assert all(
        "Late Flight" in text
        for text in model_texts(repaired_rows["raw_text"].tolist(), no_repairs.cleaning, no_repairs.normalize)
    )


def test_partition_keeps_test_tweets_and_their_duplicates_out_of_training(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path], ["cleaning.label_noise.policy=off"])
    full = prepare_data(config)
    no_dedupe = prepare_data(apply_overlay(config, {"cleaning": {"drop_exact_duplicates": False}}))
    test_keys, validation_keys = set(full.test["text"]), set(full.validation["text"])

    train, validation = _partition(
        [no_dedupe.train, no_dedupe.validation, no_dedupe.test], config, test_keys, validation_keys
    )

    train_keys = set(model_texts(train["raw_text"].tolist(), config.cleaning, config.normalize))
    assert not train_keys & test_keys
    assert not train_keys & validation_keys
    assert set(model_texts(validation["raw_text"].tolist(), config.cleaning, config.normalize)) <= validation_keys
    # The extra duplicates stay in the pool: more rows than the deduplicated pipeline kept.
    assert len(train) + len(validation) > len(full.train) + len(full.validation) - len(full.test)


def test_macro_f1_bootstrap_matches_metrics_on_the_identity_resample() -> None:
    rng = np.random.default_rng(3)
    truth = rng.integers(0, 3, 50)
    predicted = np.where(rng.random(50) < 0.7, truth, rng.integers(0, 3, 50))
    predicted[predicted == 2] = 1  # class 2 is never predicted: its F1 is 0
    identity = np.arange(50)[None, :]

    bootstrapped = macro_f1_bootstrap(truth, predicted, 4, identity)

    labels = ["a", "b", "c", "d"]  # "d" has no rows at all: F1 0, as in metrics
    expected = classification_report_dict([labels[i] for i in truth], [labels[i] for i in predicted], labels)
    assert bootstrapped.shape == (1,)
    assert bootstrapped[0] == pytest.approx(expected["macro_f1"])


def test_paired_bootstrap_interval_brackets_the_delta() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 400)
    good = np.where(rng.random(400) < 0.9, truth, 1 - truth)
    worse = np.where(rng.random(400) < 0.7, truth, 1 - truth)

    assert paired_bootstrap_interval(truth, good, good, 2, 200, seed=0) == (0.0, 0.0)
    low, high = paired_bootstrap_interval(truth, good, worse, 2, 300, seed=0)
    assert low < high < 0
    assert paired_bootstrap_interval(truth, good, worse, 2, 300, seed=0) == (low, high)
    assert all(np.isnan(paired_bootstrap_interval(truth, good, worse, 2, 0, seed=0)))


def test_run_cleaning_ablation_scores_every_row_on_one_test_set(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path])
    steps = select_steps(config, ["text repairs", "dedupe", "+ label noise: drop"])

    result = run_cleaning_ablation(config, steps, bootstrap_rounds=50)

    assert [row.step for row in result.rows] == [FULL_PIPELINE, "text repairs", "dedupe", "+ label noise: drop"]
    full, no_repairs, no_dedupe, noise_drop = result.rows
    assert full.delta_macro_f1 == 0.0
    assert full.test_macro_f1 > 0.8
    for row in result.rows[1:]:
        assert row.delta_macro_f1 == pytest.approx(row.test_macro_f1 - full.test_macro_f1, abs=1e-4)
        assert row.delta_ci95[0] <= row.delta_ci95[1]
    assert no_dedupe.train_rows > full.train_rows  # the duplicates are back
    assert noise_drop.train_rows <= full.train_rows
    assert no_repairs.train_rows == full.train_rows
    assert result.test_rows == len(prepare_data(config).test)


def test_max_rows_caps_train_validation_and_test(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path], ["data.max_rows=30"])

    result = run_cleaning_ablation(config, select_steps(config, ["demojize"]), bootstrap_rounds=0)

    assert result.test_rows == 30
    assert all(row.train_rows == 30 and row.validation_rows <= 30 for row in result.rows)
    table = format_ablation_table(result)
    assert "| demojize |" in table
    assert "[+nan, +nan]" in table or "[nan, nan]" in table


def test_select_steps_rejects_unknown_names(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path])
    with pytest.raises(AblationError, match=r"unknown ablation step\(s\) \['spellcheck'\]: choose from"):
        select_steps(config, ["spellcheck"])


def test_format_table_marks_the_full_row_and_signs_deltas(tiny_config_path: Path) -> None:
    config = load_config([tiny_config_path])
    steps = [AblationStep("demojize", "emoji spelled out as words", {"normalize": {"demojize": False}})]

    table = format_ablation_table(run_cleaning_ablation(config, steps, bootstrap_rounds=20))

    lines = table.splitlines()
    assert lines[2].startswith("| step switched off |")
    assert lines[4].startswith(f"| {FULL_PIPELINE} |")
    assert lines[4].endswith("| — | — |")
    assert lines[5].startswith("| demojize | emoji spelled out as words |")
    assert lines[5].split("|")[6].strip()[0] in "+-"


def test_script_writes_json_and_prints_the_table(
    tiny_config_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "ablation.py"))
    out_json = tmp_path / "ablation.json"

    exit_code = script["main"](
        ["--config", str(tiny_config_path), "--step", "demojize", "--bootstrap", "20", "--json", str(out_json)]
    )

    assert exit_code == 0
    saved = json.loads(out_json.read_text())
    assert [row["step"] for row in saved["rows"]] == [FULL_PIPELINE, "demojize"]
    assert saved["rows"][1]["overlay"] == {"normalize": {"demojize": False}}
    assert "| demojize |" in capsys.readouterr().out


def test_script_user_error_exits_2(tiny_config_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = runpy.run_path(str(REPO_ROOT / "scripts" / "ablation.py"))

    assert script["main"](["--config", str(tiny_config_path), "--step", "nope"]) == 2
    assert "unknown ablation step(s) ['nope']" in capsys.readouterr().err


def test_ablation_refuses_to_run_when_its_normalization_drifts_from_data_py(
    tiny_config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # If the cleaner and data/model_text.py ever disagreed on a text, test keys would silently stop
    # matching; the run must stop instead.
    monkeypatch.setattr(
        "tweet_classifier.training.ablation.model_texts",
        lambda raw_texts, cleaning, normalize: [text.upper() for text in raw_texts],
    )
    config = load_config([tiny_config_path])

    with pytest.raises(AblationError, match=r"does not reproduce data\.prepare_data's text"):
        run_cleaning_ablation(config, [], bootstrap_rounds=0)
