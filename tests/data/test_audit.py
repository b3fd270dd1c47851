"""Label-noise audit: finds deliberately flipped labels, applies each policy, is deterministic."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.synthetic_tweets import SYNTHETIC_LABELS, flip_labels, synthetic_frame
from tweet_classifier.config import RunConfig, build_config
from tweet_classifier.data.audit import LabelAuditError, audit_label_noise
from tweet_classifier.data.tfidf_model import label_noise_model
from tweet_classifier.errors import TweetClassifierError

FLIPPED_ROWS = 24


def _config(policy: str, **label_noise: object) -> RunConfig:
    return build_config(
        {
            "name": "audit-test",
            "seed": 42,
            "data": {"source": "unused.csv"},
            "baseline": {"max_features": 5_000},
            "cleaning": {"label_noise": {"policy": policy, "folds": 3, **label_noise}},
        }
    )


def _audit(frame: pd.DataFrame, config: RunConfig) -> tuple[pd.DataFrame, dict]:
    """The audit as prepare_data runs it: with the TF-IDF model built from the config."""
    return audit_label_noise(frame, SYNTHETIC_LABELS, config, label_noise_model(config))


@pytest.fixture(scope="module")
def noisy() -> tuple[pd.DataFrame, set[str]]:
    """300 rows, 24 labels flipped; returns the frame and the texts whose label is wrong."""
    clean = synthetic_frame(rows_per_class=100, seed=0)
    flipped, positions = flip_labels(clean, FLIPPED_ROWS, seed=1)
    # A distinct weight per row so the policies' effect on weights is visible.
    flipped["weight"] = np.linspace(0.5, 1.0, len(flipped))
    return flipped, set(positions.tolist())


@pytest.fixture(scope="module")
def reported(noisy) -> tuple[pd.DataFrame, dict]:
    frame, _ = noisy
    return _audit(frame, _config("report"))


def _flagged_positions(frame: pd.DataFrame, config: RunConfig) -> set[int]:
    # Re-run with drop to learn which positions were flagged: the rows missing afterwards.
    dropped, _ = _audit(frame, config)
    kept = set(zip(dropped["text"], dropped["label"], dropped["weight"], strict=True))
    return {
        position
        for position, row in enumerate(frame.itertuples(index=False))
        if (row.text, row.label, row.weight) not in kept
    }


def test_audit_finds_most_flipped_labels_and_few_clean_ones(noisy) -> None:
    frame, flipped_positions = noisy

    flagged = _flagged_positions(frame, _config("drop"))

    found = flagged & flipped_positions
    assert len(found) / FLIPPED_ROWS >= 0.8  # recall
    assert len(found) / len(flagged) >= 0.7  # precision


def test_report_policy_leaves_the_frame_unchanged_and_describes_the_issues(noisy, reported) -> None:
    frame, _ = noisy
    audited, section = reported

    pd.testing.assert_frame_equal(audited, frame)
    assert section["name"] == "label_noise"
    assert section["policy"] == "report"
    assert FLIPPED_ROWS * 0.8 <= section["rows_flagged"] <= FLIPPED_ROWS * 1.5
    assert section["share"] == pytest.approx(section["rows_flagged"] / len(frame))
    assert set(section["by_given_label"]) == set(SYNTHETIC_LABELS)
    assert sum(section["by_given_label"].values()) == section["rows_flagged"]
    assert section["rows_before"] == section["rows_after"] == len(frame)
    assert section["folds"] == 3


def test_examples_are_ranked_by_confidence_in_the_given_label(reported) -> None:
    _, section = reported
    examples = section["examples"]

    assert len(examples) == section["rows_flagged"]  # fewer than max_examples (50)
    confidences = [example["confidence_in_given"] for example in examples]
    assert confidences == sorted(confidences)
    assert set(examples[0]) == {"text", "given", "suspected", "confidence_in_given"}
    assert all(example["suspected"] != example["given"] for example in examples[:10])
    assert all(0.0 <= confidence < 0.5 for confidence in confidences)


def test_max_examples_caps_the_list(noisy) -> None:
    frame, _ = noisy
    _, section = _audit(frame, _config("report", max_examples=3))

    assert len(section["examples"]) == 3
    assert section["rows_flagged"] > 3


def test_drop_policy_removes_exactly_the_flagged_rows(noisy, reported) -> None:
    frame, flipped_positions = noisy
    _, report_section = reported

    dropped, section = _audit(frame, _config("drop"))

    assert len(dropped) == len(frame) - report_section["rows_flagged"]
    assert section["rows_after"] == len(dropped)
    assert list(dropped.index) == list(range(len(dropped)))
    remaining_wrong = sum(1 for position in flipped_positions if frame.at[position, "text"] in set(dropped["text"]))
    assert remaining_wrong <= FLIPPED_ROWS * 0.2


def test_downweight_policy_scales_only_flagged_weights(noisy) -> None:
    frame, _ = noisy
    config = _config("downweight", downweight_factor=0.25)
    flagged = _flagged_positions(frame, _config("drop"))

    weighted, section = _audit(frame, config)

    assert len(weighted) == len(frame)
    expected = frame["weight"].to_numpy().copy()
    expected[sorted(flagged)] *= 0.25
    np.testing.assert_allclose(weighted["weight"].to_numpy(), expected)
    assert section["rows_flagged"] == len(flagged)
    # The caller's frame is not modified in place.
    assert frame["weight"].min() == pytest.approx(0.5)


def test_downweight_without_a_weight_column_starts_from_one(noisy) -> None:
    frame, _ = noisy
    without_weights = frame.drop(columns=["weight"])

    weighted, section = _audit(without_weights, _config("downweight"))

    assert sorted(set(weighted["weight"].round(6))) == [0.3, 1.0]
    assert int((weighted["weight"] < 1).sum()) == section["rows_flagged"]


def test_off_policy_returns_the_frame_without_work(noisy) -> None:
    frame, _ = noisy
    audited, section = _audit(frame, _config("off"))

    assert audited is frame
    assert section == {"name": "label_noise", "policy": "off", "rows_flagged": 0, "share": 0.0}


def test_audit_is_deterministic(noisy, reported) -> None:
    frame, _ = noisy
    _, first = reported

    _, again = _audit(frame, _config("report"))

    first_without_time = {key: value for key, value in first.items() if key != "seconds"}
    again_without_time = {key: value for key, value in again.items() if key != "seconds"}
    assert first_without_time == again_without_time


def test_clean_labels_are_rarely_flagged() -> None:
    clean = synthetic_frame(rows_per_class=100, seed=5)

    _, section = _audit(clean, _config("report"))

    assert section["share"] < 0.03


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"text": ["a"]}), r"lacks the column\(s\) \['label'\]"),
        (pd.DataFrame({"text": ["a", "b"], "label": ["negative", "angry"]}), r"train labels \['angry'\] are not in"),
        (
            pd.DataFrame({"text": ["late", "lost", "great", "thanks"], "label": ["negative"] * 2 + ["positive"] * 2}),
            "label-noise audit: class '(negative|positive)' has 2 examples, fewer than the 3 folds",
        ),
    ],
)
def test_audit_errors_say_what_to_fix(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(LabelAuditError, match=message):
        _audit(frame, _config("report"))


def test_the_audit_scores_with_the_model_it_is_given() -> None:
    # A stand-in model that is sure rows 0 and 3 carry the wrong label and agrees with every other row.
    frame = pd.DataFrame({"text": [f"t{index}" for index in range(30)], "label": SYNTHETIC_LABELS * 10})
    seen: list[tuple[list[str], list[str], list[str], object]] = []

    def model(texts, given, labels, sample_weight) -> np.ndarray:
        seen.append((list(texts), list(given), list(labels), sample_weight))
        probabilities = np.full((len(texts), len(labels)), 0.02)
        for row, label in enumerate(given):
            wrong = row in (0, 3)
            probabilities[row, labels.index(label) if not wrong else (labels.index(label) + 1) % len(labels)] = 0.96
        return probabilities

    audited, section = audit_label_noise(frame, SYNTHETIC_LABELS, _config("drop"), model)

    assert seen == [(frame["text"].tolist(), frame["label"].tolist(), SYNTHETIC_LABELS, None)]
    assert section["rows_flagged"] == 2
    assert audited["text"].tolist() == [f"t{index}" for index in range(30) if index not in (0, 3)]


def test_a_model_error_becomes_an_audit_error_that_names_the_audit() -> None:
    def failing(texts, given, labels, sample_weight) -> np.ndarray:
        raise TweetClassifierError("class 'x' has 1 example: lower cleaning.label_noise.folds")

    frame = pd.DataFrame({"text": ["a", "b", "c"], "label": SYNTHETIC_LABELS})
    with pytest.raises(LabelAuditError, match=r"^label-noise audit: class 'x' has 1 example"):
        audit_label_noise(frame, SYNTHETIC_LABELS, _config("report"), failing)
