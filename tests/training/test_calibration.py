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
    assert curve["value"].tolist() == pytest.approx([0.5, 2 / 3])


@pytest.mark.parametrize("metric", ["macro_f1", "accuracy", "macro_precision"])
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_the_threshold_reproduces_its_target_on_validation(metric: str, target: float) -> None:
    labels, _, logits = overconfident_split(1500, seed=3)
    probabilities = apply_temperature(logits, 3.0)
    curve = risk_coverage(labels, probabilities, LABELS, metric)
    chosen = choose_threshold(curve, target)
    assert chosen["reached"]
    kept = probabilities.max(axis=1) >= chosen["threshold"]
    truth = [label for label, keep in zip(labels, kept, strict=True) if keep]
    predicted = [LABELS[column] for column in probabilities[kept].argmax(axis=1)]
    report = classification_report_dict(truth, predicted, LABELS)
    precision = np.mean([values["precision"] for values in report["per_class"].values()])
    value = {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"], "macro_precision": precision}[metric]
    assert value >= target
    assert value == pytest.approx(chosen["value"])
    assert kept.mean() == pytest.approx(chosen["coverage"])
    # Keeping one more confidence level would miss the target: the threshold is the lowest that reaches it.
    lower = curve["threshold"][curve["threshold"] < chosen["threshold"]]
    assert all(curve["value"][curve["threshold"] == below][0] < target for below in lower[:1])


def test_an_unreachable_target_flags_every_prediction() -> None:
    probabilities = np.array([[0.9, 0.05, 0.05], [0.8, 0.1, 0.1]])
    chosen = choose_threshold(risk_coverage(["neutral", "positive"], probabilities, LABELS), 0.5)
    assert chosen == {"threshold": pytest.approx(0.9), "reached": False, "coverage": 0.0, "value": None}
    assert chosen["threshold"] > 0.9


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
