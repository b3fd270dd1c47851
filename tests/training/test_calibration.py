"""Temperature scaling, the risk-coverage curve and the review threshold; how Predictor applies them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tweet_classifier.artifact import CALIBRATION_NAME, file_sha256
from tweet_classifier.metrics import classification_report_dict, expected_calibration_error
from tweet_classifier.training.calibration import (
    CalibrationError,
    apply_temperature,
    choose_threshold,
    fit_calibration,
    fit_temperature,
    read_calibration,
    review_outcome,
    risk_coverage,
)

LABELS = ["negative", "neutral", "positive"]


def overconfident_split(rows: int, seed: int, sharpen: float = 3.0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Labels drawn from softmax(z), and the logits of a model that is ``sharpen`` times too sure (sharpen * z)."""
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, size=(rows, len(LABELS)))
    true_probabilities = apply_temperature(true_logits, 1.0)
    truth_index = np.array([rng.choice(len(LABELS), p=row) for row in true_probabilities])
    return [LABELS[index] for index in truth_index], truth_index, sharpen * true_logits


def test_temperature_recovers_the_overconfidence_and_lowers_held_out_ece() -> None:
    _, fit_index, fit_logits = overconfident_split(4000, seed=0)
    held_out_labels, _, held_out_logits = overconfident_split(4000, seed=1)
    temperature = fit_temperature(fit_logits, fit_index)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(held_out_labels, apply_temperature(held_out_logits, 1.0), LABELS)
    after = expected_calibration_error(held_out_labels, apply_temperature(held_out_logits, temperature), LABELS)
    assert after < before / 3
    assert after < 0.03


def test_no_errors_on_validation_keeps_the_temperature_at_one() -> None:
    logits = np.array([[4.0, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, 5.0]])
    assert fit_temperature(logits, [0, 1, 2]) == 1.0
    assert fit_temperature(logits, [0, 1, 0]) > 1.0


def test_fit_refuses_an_empty_split() -> None:
    with pytest.raises(CalibrationError, match="validation split empty"):
        fit_temperature(np.zeros((0, 3)), [])


def test_risk_coverage_matches_the_metrics_module_at_every_cut() -> None:
    labels, _, logits = overconfident_split(300, seed=2)
    probabilities = apply_temperature(logits, 2.0)
    curve = risk_coverage(labels, probabilities, LABELS, "macro_f1")
    confidence = probabilities.max(axis=1)
    assert np.all(np.diff(curve["coverage"]) > 0)
    assert curve["coverage"][-1] == 1.0
    for index in (0, 10, 150, len(curve["threshold"]) - 1):
        kept = confidence >= curve["threshold"][index]
        assert kept.sum() == curve["n_kept"][index]
        truth = [label for label, keep in zip(labels, kept, strict=True) if keep]
        predicted = [LABELS[column] for column in probabilities[kept].argmax(axis=1)]
        assert curve["value"][index] == pytest.approx(classification_report_dict(truth, predicted, LABELS)["macro_f1"])
    accuracy = risk_coverage(labels, probabilities, LABELS, "accuracy")
    truth_index = [LABELS.index(label) for label in labels]
    assert accuracy["value"][-1] == pytest.approx(np.mean(probabilities.argmax(axis=1) == truth_index))
    with pytest.raises(CalibrationError, match="choose one of macro_f1, accuracy, macro_precision"):
        risk_coverage(labels, probabilities, LABELS, "recall")


def test_ties_are_never_split_by_the_threshold() -> None:
    probabilities = np.array([[0.9, 0.05, 0.05], [0.9, 0.05, 0.05], [0.6, 0.3, 0.1]])
    curve = risk_coverage(["negative", "neutral", "negative"], probabilities, LABELS, "accuracy")
    assert curve["n_kept"].tolist() == [2, 3]
    assert curve["min_class_rows"].tolist() == [0, 0]  # no "positive" among the kept
    assert curve["value"].tolist() == pytest.approx([0.5, 2 / 3])


# The defaults of ReviewConfig: what calibration applies at the end of training.
GUARD = {"min_coverage": 0.2, "min_kept": 200, "min_per_class": 20}


@pytest.mark.parametrize("metric", ["macro_f1", "accuracy", "macro_precision"])
@pytest.mark.parametrize("target", [0.75, 0.8, 0.9])
def test_the_threshold_reproduces_its_target_on_validation(metric: str, target: float) -> None:
    labels, _, logits = overconfident_split(1500, seed=3)
    probabilities = apply_temperature(logits, 3.0)
    curve = risk_coverage(labels, probabilities, LABELS, metric)
    chosen = choose_threshold(curve, target, **GUARD)
    assert chosen["target_reached"]
    assert chosen["guard_met"]
    kept = probabilities.max(axis=1) >= chosen["threshold"]
    truth = [label for label, keep in zip(labels, kept, strict=True) if keep]
    predicted = [LABELS[column] for column in probabilities[kept].argmax(axis=1)]
    report = classification_report_dict(truth, predicted, LABELS)
    precision = np.mean([values["precision"] for values in report["per_class"].values()])
    value = {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"], "macro_precision": precision}[metric]
    assert value >= target
    assert value == pytest.approx(chosen["value"])
    assert kept.mean() == pytest.approx(chosen["coverage"])
    assert chosen["coverage"] >= GUARD["min_coverage"]
    assert kept.sum() == chosen["n_kept"] >= GUARD["min_kept"]
    assert min(truth.count(label) for label in LABELS) >= GUARD["min_per_class"]
    # Keeping one more confidence level would miss the target: the threshold is the lowest that reaches it.
    lower = curve["threshold"][curve["threshold"] < chosen["threshold"]]
    assert all(curve["value"][curve["threshold"] == below][0] < target for below in lower[:1])


def only_a_sliver_reaches(rows: int = 1000, sliver: int = 12) -> tuple[list[str], np.ndarray]:
    """``sliver`` very confident, correct predictions (every class among them) above ``rows - sliver``
    predictions that are right about 60% of the time: only the sliver has macro-F1 >= 0.95."""
    rng = np.random.default_rng(5)
    truth = [LABELS[index % len(LABELS)] for index in range(rows)]
    probabilities = np.empty((rows, len(LABELS)))
    for row, label in enumerate(truth):
        right = row < sliver or rng.random() < 0.6
        top = 0.99 if row < sliver else rng.uniform(0.4, 0.9)
        column = LABELS.index(label) if right else (LABELS.index(label) + 1) % len(LABELS)
        probabilities[row] = (1 - top) / 2
        probabilities[row, column] = top
    return truth, probabilities


def test_a_target_only_a_sliver_reaches_gives_the_guarded_threshold() -> None:
    truth, probabilities = only_a_sliver_reaches()
    curve = risk_coverage(truth, probabilities, LABELS)
    # Without the guard the search accepts the sliver (and a few lucky rows under it): a measurement on
    # barely more than 12 rows.
    unguarded = choose_threshold(curve, 0.95)
    assert unguarded["target_reached"]
    assert unguarded["n_kept"] < 20
    chosen = choose_threshold(curve, 0.95, **GUARD)
    assert chosen["target_reached"] is False
    assert chosen["guard_met"] is True
    assert chosen["coverage"] >= 0.2
    assert chosen["n_kept"] >= 200
    # The best macro-F1 among the cuts that keep enough rows, and its threshold really keeps that much.
    eligible = (curve["coverage"] >= 0.2) & (curve["n_kept"] >= 200)
    assert chosen["value"] == pytest.approx(curve["value"][eligible].max())
    assert chosen["value"] < 0.95
    assert np.mean(probabilities.max(axis=1) >= chosen["threshold"]) == pytest.approx(chosen["coverage"])


def test_every_class_must_be_among_the_kept_for_a_macro_metric() -> None:
    # The 252 most confident predictions are right: 250 "negative", one "neutral", one "positive" (macro-F1
    # 1.0 on 42% of the rows, two of its three classes measured on one row each); below them 348 rows of all
    # three classes, right 85% of the time.
    rng = np.random.default_rng(6)
    truth = ["neutral", "positive"] + ["negative"] * 250 + [LABELS[index % 3] for index in range(348)]
    probabilities = np.full((600, 3), 0.005)
    for row, label in enumerate(truth):
        column = LABELS.index(label) if row < 252 or rng.random() < 0.85 else (LABELS.index(label) + 1) % 3
        probabilities[row, column] = 0.99 - row / 1000
    curve = risk_coverage(truth, probabilities, LABELS)
    lucky = choose_threshold(curve, 0.95, min_coverage=0.2, min_kept=200, min_per_class=0)
    assert lucky["target_reached"]
    assert lucky["value"] == 1.0
    assert lucky["n_kept"] < 252 + 10  # the lucky slice and a few right rows under it
    chosen = choose_threshold(curve, 0.95, min_coverage=0.2, min_kept=200, min_per_class=20)
    index = int(np.flatnonzero(curve["threshold"] == chosen["threshold"])[0])
    assert curve["min_class_rows"][index] >= 20
    assert chosen["n_kept"] >= 252 + 2 * 19
    assert chosen["value"] < 1.0


def test_a_validation_split_smaller_than_the_guard_is_judged_whole() -> None:
    probabilities = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1], [0.2, 0.7, 0.1]])
    curve = risk_coverage(["neutral", "negative", "neutral"], probabilities, LABELS)
    chosen = choose_threshold(curve, 0.5, **GUARD)
    assert chosen == {
        "threshold": pytest.approx(0.7),
        "target_reached": False,
        "guard_met": False,
        "coverage": 1.0,
        "n_kept": 3,
        "value": pytest.approx(curve["value"][-1]),
    }


def test_fit_calibration_warns_with_the_keys_to_change_and_records_the_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    truth, probabilities = only_a_sliver_reaches()
    with caplog.at_level("WARNING", logger="tweet_classifier.training.calibration"):
        payload, metrics = fit_calibration(
            truth, probabilities, truth, probabilities, LABELS, "macro_f1", 0.95, 10, **GUARD
        )
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "review.target macro_f1 >= 0.950 is not reachable" in warning
    assert "review.min_coverage" in warning
    assert "review.min_kept" in warning
    review = payload["review"]
    assert review["target_reached"] is False
    assert review | metrics["selective"] == metrics["selective"] | review  # the same record in both files
    assert {key: review[key] for key in GUARD} == GUARD
    assert metrics["selective"]["test"]["coverage"] == pytest.approx(review["coverage"])
    sentence = review_outcome(review)
    assert sentence.startswith("Target macro_f1 >= 0.95 is not reachable on validation at >= 20% coverage")
    assert f"threshold set at {review['threshold']:.3f}" in sentence


@pytest.mark.parametrize(
    ("review", "expected"),
    [
        (  # written before the coverage guard, target missed: the threshold flagged everything
            {"metric": "macro_f1", "target": 0.9, "threshold": 0.953, "reached": False, "coverage": 0.0, "value": None},
            "is not reached on validation at any coverage",
        ),
        (
            {"metric": "macro_f1", "target": 0.8, "threshold": 0.7, "reached": True, "coverage": 0.6, "value": 0.81},
            "Threshold 0.700 is the lowest keeping macro_f1 >= 0.8 on validation: 0.810 on 60.0% of validation.",
        ),
        (
            {"metric": "accuracy", "target": 0.8, "threshold": 0.7} | GUARD | {"coverage": 0.6, "value": 0.81},
            "Threshold 0.700 is the lowest keeping accuracy >= 0.8 on validation at >= 20% coverage",
        ),
    ],
)
def test_review_outcome_reads_old_and_new_records(review: dict, expected: str) -> None:
    assert expected in review_outcome(review)


def test_an_old_calibration_file_without_the_outcome_still_loads(tmp_path: Path) -> None:
    payload = {
        "format_version": 1,
        "temperature": 1.5,
        "review": {"metric": "macro_f1", "target": 0.9, "threshold": 0.95, "reached": False, "value": None},
    }
    (tmp_path / CALIBRATION_NAME).write_text(json.dumps(payload), encoding="utf-8")
    assert read_calibration(tmp_path).review_threshold == 0.95


def synthetic_calibration(rows: int, seed: int) -> tuple[dict, dict]:
    """``fit_calibration`` on overconfident validation (``seed``) and test (``seed + 1``) splits."""
    validation_labels, _, validation_logits = overconfident_split(rows, seed=seed)
    test_labels, _, test_logits = overconfident_split(rows, seed=seed + 1)
    return fit_calibration(
        validation_labels,
        apply_temperature(validation_logits, 1.0),
        test_labels,
        apply_temperature(test_logits, 1.0),
        LABELS,
        review_metric="macro_f1",
        review_target=0.9,
        ece_bins=10,
    )


def test_fit_calibration_reports_ece_before_and_after_and_a_coverage_table() -> None:
    payload, metrics = synthetic_calibration(1500, seed=4)
    test = metrics["calibration"]["test"]
    assert test["ece_after"] < test["ece_before"]
    assert test["nll_after"] < test["nll_before"]
    assert len(test["reliability_after"]) == 10
    assert sum(row["n"] for row in test["reliability_after"]) == 1500
    table = metrics["selective"]["coverage_table"]
    assert [round(row["validation_coverage"], 2) for row in table][:3] == [1.0, 0.95, 0.9]
    # Fewer tweets kept, better macro-F1 on them (on test, thresholds chosen on validation).
    assert table[0]["macro_f1"] < table[-1]["macro_f1"]
    assert payload["review"]["threshold"] == metrics["selective"]["threshold"]
    assert 0 < metrics["selective"]["test"]["coverage"] < 1


def write_calibration_file(folder: Path, temperature: float, threshold: float, digest: str | None = None) -> None:
    payload = {
        "format_version": 1,
        "temperature": temperature,
        "review": {"threshold": threshold},
        "weights_sha256": digest or file_sha256(folder / "model.safetensors"),
    }
    (folder / CALIBRATION_NAME).write_text(json.dumps(payload), encoding="utf-8")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is unreadable"),
        ('{"format_version": 2}', "format_version 2"),
        ('{"format_version": 1, "temperature": -1, "review": {"threshold": 0.5}}', "temperature is -1"),
        ('{"format_version": 1, "temperature": 1.5, "review": {"threshold": true}}', "review.threshold is True"),
    ],
)
def test_a_bad_calibration_file_says_how_to_fix_it(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / CALIBRATION_NAME).write_text(content, encoding="utf-8")
    with pytest.raises(CalibrationError, match=message) as caught:
        read_calibration(tmp_path)
    assert "tweet-classifier calibrate --model" in str(caught.value)


def test_predictor_applies_the_temperature_and_flags_unsure_predictions(tiny_model_dir: Path, tmp_path: Path) -> None:
    from tweet_classifier.inference.predictor import ModelLoadError, Predictor

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    texts = ["thanks for the great flight", "my bag is lost", "which gate is it"]
    raw = Predictor.load(folder, backend="torch-fp32").predict_batch(texts)
    assert not any(prediction.needs_review for prediction in raw)
    write_calibration_file(folder, temperature=0.05, threshold=0.999)
    calibrated = Predictor.load(folder, backend="torch-fp32")
    for before, after, text in zip(raw, calibrated.predict_batch(texts), texts, strict=True):
        logits = np.log([before.scores[label] for label in LABELS])
        expected = apply_temperature(logits[None, :], 0.05)[0]
        assert [after.scores[label] for label in LABELS] == pytest.approx(expected.tolist(), abs=1e-5)
        assert after.label == before.label
        assert after.needs_review == (max(expected) < 0.999)
        assert calibrated.predict(text).needs_review == after.needs_review
    write_calibration_file(folder, temperature=1.0, threshold=0.0001)
    assert not any(prediction.needs_review for prediction in Predictor.load(folder).predict_batch(texts))
    uncalibrated = Predictor.load(folder, calibrated=False)
    assert uncalibrated.temperature == 1.0
    assert uncalibrated.review_threshold is None
    write_calibration_file(folder, temperature=1.0, threshold=0.5, digest="0" * 64)
    with pytest.raises(ModelLoadError, match="fitted for other weights: re-run `tweet-classifier calibrate"):
        Predictor.load(folder)


def test_calibrate_command_gives_an_existing_folder_its_calibration(
    tiny_model_dir: Path, run_config: Path, tmp_path: Path
) -> None:
    from tweet_classifier import cli
    from tweet_classifier.inference.predictor import Predictor

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "metrics.json").write_text(json.dumps({"validation": {"macro_f1": 0.3}}), encoding="utf-8")
    assert cli.main(["calibrate", "--model", str(folder), "--config", str(run_config)]) == 0
    calibration = read_calibration(folder)
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["validation"] == {"macro_f1": 0.3}
    assert metrics["calibration"]["temperature"] == pytest.approx(calibration.temperature)
    assert metrics["selective"]["threshold"] == pytest.approx(calibration.review_threshold)
    predictor = Predictor.load(folder, backend="torch-fp32")
    assert predictor.temperature == pytest.approx(calibration.temperature)
    assert cli.main(["calibrate", "--model", str(tmp_path / "missing")]) == 2
