"""metrics.py against values computed by hand (not by calling scikit-learn again)."""

from __future__ import annotations

import numpy as np
import pytest

from tweet_classifier.metrics import (
    MIN_SLICE_SUPPORT,
    classification_report_dict,
    expected_calibration_error,
    percentile,
    percentile_summary,
    slice_metrics,
)

LABELS = ["a", "b", "c"]
# Hand-computed below:
#   a: TP 2, FP 0, FN 1 -> P 1,   R 2/3, F1 0.8
#   b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2, F1 1/2
#   c: TP 1, FP 1, FN 0 -> P 1/2, R 1,   F1 2/3
TRUE = ["a", "a", "a", "b", "b", "c"]
PRED = ["a", "a", "b", "b", "c", "c"]


def test_report_matches_hand_computed_values() -> None:
    report = classification_report_dict(TRUE, PRED, LABELS)

    assert report["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["n"] == 6
    assert report["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert report["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert report["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert report["confusion_matrix"] == {"labels": LABELS, "matrix": [[2, 1, 0], [0, 1, 1], [0, 0, 1]]}
    assert "ece" not in report


def test_report_follows_the_given_label_order_not_alphabetical() -> None:
    report = classification_report_dict(TRUE, PRED, ["c", "a", "b"])

    assert list(report["per_class"]) == ["c", "a", "b"]
    # rows true c, a, b; columns predicted c, a, b
    assert report["confusion_matrix"]["matrix"] == [[1, 0, 0], [0, 2, 1], [1, 0, 1]]


def test_class_never_predicted_and_absent_counts_as_zero_f1_in_macro() -> None:
    # "c" is in the label set but neither true nor predicted: F1 0 (zero_division=0) pulls macro down.
    report = classification_report_dict(["a", "b"], ["a", "b"], LABELS)

    assert report["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx(2 / 3)
    assert report["accuracy"] == 1.0


def test_report_types_are_plain_python_for_json() -> None:
    report = classification_report_dict(TRUE, PRED, LABELS, probabilities=np.full((6, 3), 1 / 3))

    assert type(report["macro_f1"]) is float
    assert type(report["ece"]) is float
    assert type(report["per_class"]["a"]["support"]) is int
    assert all(type(value) is int for row in report["confusion_matrix"]["matrix"] for value in row)


def test_report_adds_ece_with_probabilities() -> None:
    probabilities = np.array([[0.9, 0.05, 0.05], [0.1, 0.6, 0.3]])
    # confidences 0.9 (correct) and 0.6 (correct) -> bins (0.8,0.9] and (0.5,0.6]:
    # 0.5 * |0.9 - 1| + 0.5 * |0.6 - 1| = 0.25
    report = classification_report_dict(["a", "b"], ["a", "b"], LABELS, probabilities=probabilities)

    assert report["ece"] == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("y_true", "y_pred", "labels", "message"),
    [
        (["a"], ["a", "b"], LABELS, "y_true has 1 items but y_pred has 2"),
        (["a"], ["a"], [], "labels must name at least one class"),
        (["a", "z"], ["a", "a"], LABELS, "labels ['z'] are not among the known labels"),
        (["a"], ["q"], LABELS, "labels ['q'] are not among the known labels"),
        ([], [], LABELS, "cannot compute metrics on zero examples"),
    ],
)
def test_report_rejects_bad_inputs(y_true: list[str], y_pred: list[str], labels: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        classification_report_dict(y_true, y_pred, labels)


def test_ece_hand_computed_two_bins() -> None:
    # confidences 0.95, 0.95 (one right, one wrong) -> bin (0.9,1.0]: |0.95 - 0.5| = 0.45, weight 2/4
    # confidences 0.55, 0.55 (both right)          -> bin (0.5,0.6]: |0.55 - 1.0| = 0.45, weight 2/4
    probabilities = np.array([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.45, 0.55]])
    truth = ["x", "y", "y", "y"]

    assert expected_calibration_error(truth, probabilities, ["x", "y"]) == pytest.approx(0.45)


def test_ece_is_zero_when_confidence_equals_accuracy() -> None:
    # Four rows at confidence 0.75 with three right: perfectly calibrated.
    probabilities = np.array([[0.75, 0.25]] * 4)

    assert expected_calibration_error(["x", "x", "x", "y"], probabilities, ["x", "y"]) == pytest.approx(0.0)


def test_ece_puts_confidence_one_in_the_last_bin_and_zero_in_the_first() -> None:
    # Confidence exactly 1.0 and right: no gap. With a single bin everything shares one bin.
    one_hot = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(["x", "y"], one_hot, ["x", "y"]) == 0.0
    assert expected_calibration_error(["x", "x"], one_hot, ["x", "y"], bins=1) == pytest.approx(0.5)


def test_ece_bin_count_matters() -> None:
    probabilities = np.array([[0.65, 0.35], [0.75, 0.25]])
    truth = ["x", "y"]  # first right, second wrong
    # 10 bins: 0.5 * |0.65 - 1| + 0.5 * |0.75 - 0| = 0.55 ; 2 bins: both in (0.5,1]: |0.70 - 0.5| = 0.2
    assert expected_calibration_error(truth, probabilities, ["x", "y"]) == pytest.approx(0.55)
    assert expected_calibration_error(truth, probabilities, ["x", "y"], bins=2) == pytest.approx(0.2)


def test_ece_rejects_wrong_shapes_and_handles_empty() -> None:
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        expected_calibration_error(["x", "y"], np.array([0.5, 0.5]), ["x", "y"])
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        expected_calibration_error(["x"], np.array([[0.5, 0.5]]), ["x", "y", "z"])
    assert expected_calibration_error([], np.zeros((0, 2)), ["x", "y"]) == 0.0


def test_ece_rejects_unknown_true_label() -> None:
    with pytest.raises(ValueError, match=r"labels \['zzz'\] are not among the known labels"):
        expected_calibration_error(["zzz"], np.array([[0.5, 0.5]]), ["x", "y"])


def test_slice_metrics_hand_computed() -> None:
    in_first_half = [True, True, True, False, False, False]
    slices = {"first_half": in_first_half, "all": [True] * 6, "none": [False] * 6}

    result = slice_metrics(TRUE, PRED, LABELS, slices)

    # first half: true a,a,a pred a,a,b -> only class a present: P 1, R 2/3, F1 0.8
    assert result["first_half"] == pytest.approx({"n": 3, "macro_f1": 0.8, "accuracy": 2 / 3, "small": True})
    assert result["all"]["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert "none" not in result  # empty slices are skipped


def test_slice_small_flag_uses_min_support() -> None:
    size = MIN_SLICE_SUPPORT
    truth = ["a"] * size + ["b"]
    result = slice_metrics(truth, truth, LABELS, {"big": [True] * size + [False], "tiny": [False] * size + [True]})

    assert result["big"]["small"] is False
    assert result["tiny"]["small"] is True
    assert result["big"]["macro_f1"] == 1.0


def test_slice_metrics_accepts_numpy_masks_and_rejects_misaligned_ones() -> None:
    mask = np.array([True, False, True, False, True, False])
    result = slice_metrics(TRUE, PRED, LABELS, {"odd": mask})
    # rows 0, 2, 4: true a, a, b  pred a, b, c -> a: P1 R.5 F1 2/3 ; b: P0 R0 F1 0 -> macro 1/3
    assert result["odd"]["macro_f1"] == pytest.approx(1 / 3)
    assert result["odd"]["accuracy"] == pytest.approx(1 / 3)

    with pytest.raises(ValueError, match="slice 'short' has 2 flags for 6 examples"):
        slice_metrics(TRUE, PRED, LABELS, {"short": [True, False]})


@pytest.mark.parametrize(
    ("values", "percent", "expected"),
    [
        ([3.0, 1.0, 2.0], 50, 2.0),  # unsorted input: the middle rank
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # between the two middle ranks
        ([10.0, 20.0], 95, 19.5),  # rank 0.95 of the way from 10 to 20
        ([0.0, 10.0, 20.0, 30.0, 40.0], 99, 39.6),  # rank 3.96
        ([7.0], 99, 7.0),
        ([1.0, 5.0], 0, 1.0),
        ([1.0, 5.0], 100, 5.0),
    ],
)
def test_percentile_interpolates_linearly_between_ranks(values: list[float], percent: float, expected: float) -> None:
    assert percentile(values, percent) == pytest.approx(expected)


def test_percentile_refuses_no_values_and_out_of_range_percents() -> None:
    with pytest.raises(ValueError, match="zero values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="between 0 and 100, got 150"):
        percentile([1.0], 150)


def test_percentile_summary_by_hand_and_empty() -> None:
    summary = percentile_summary([4.0, 1.0, 3.0, 2.0, 5.0])

    assert summary == pytest.approx({"n": 5, "p50": 3.0, "p95": 4.8, "p99": 4.96, "mean": 3.0, "max": 5.0})
    assert type(summary["n"]) is int
    assert percentile_summary([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
