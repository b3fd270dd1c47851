"""cascade_margin: the smallest margin meeting a target agreement, per batching, and the ladder above it."""

from __future__ import annotations

import numpy as np
import pytest

from tweet_classifier.inference.cascade_margin import Batching, margin_ladder, step_summary


def _batching(name: str, flipped_margins: list[float], rows: int = 1000, sure: float = 0.9) -> Batching:
    """``rows`` rows: the flipped ones at the given margins, the rest agreeing at margin ``sure``."""
    margins = np.array(flipped_margins + [sure] * (rows - len(flipped_margins)))
    flipped = np.array([True] * len(flipped_margins) + [False] * (rows - len(flipped_margins)))
    return Batching(name, margins, flipped)


def test_the_first_rung_is_the_smallest_margin_meeting_the_target() -> None:
    batching = _batching("sorted", [0.5, 0.3, 0.2, 0.1, 0.05])
    ladder = margin_ladder([batching], target=0.998, minimum=0.05, safety=1.25)
    # 0.998 of 1,000 rows allows two flipped rows on int8's answer: 0.5 and 0.3 stay, 0.2 goes to fp32.
    assert ladder[0].margin == pytest.approx(0.200001)
    assert ladder[0].rule == "target_agreement"
    assert ladder[0].target_agreement == 0.998
    assert batching.agreement(ladder[0].margin) == pytest.approx(0.998)
    assert batching.agreement(0.2) == pytest.approx(0.997)  # the bound is strict: a margin of 0.2 keeps int8's
    # Then one flip allowed, then none, then the safety rule; every rung larger than the one before.
    assert [step.margin for step in ladder] == pytest.approx([0.200001, 0.300001, 0.500001, 0.625])
    assert [step.rule for step in ladder][-1] == "safety_factor"
    assert batching.agreement(ladder[2].margin) == 1.0


def test_every_batching_must_meet_the_target() -> None:
    sorted_ = _batching("sorted", [0.2, 0.1])
    input_order = _batching("input_order_32", [0.4, 0.35, 0.3])
    ladder = margin_ladder([sorted_, input_order], target=0.999, minimum=0.05, safety=1.25)
    assert ladder[0].margin == pytest.approx(0.350001)  # input order's second flip decides
    summary = step_summary([sorted_, input_order], ladder[0])
    assert summary["rule"] == "target_agreement"
    assert summary["batchings"] == {
        "sorted": {"agreement": 1.0, "fallback_fraction": 0.002},
        "input_order_32": {"agreement": 0.999, "fallback_fraction": 0.002},
    }


def test_the_floor_and_a_model_int8_never_flips() -> None:
    ladder = margin_ladder([_batching("sorted", [])], target=0.999, minimum=0.05, safety=1.25)
    assert [(step.margin, step.rule) for step in ladder] == [(0.05, "target_agreement")]
    # Flips under the floor: every rung below it collapses into the floor; the ladder never goes down.
    ladder = margin_ladder([_batching("sorted", [0.04, 0.03])], target=0.999, minimum=0.05, safety=1.25)
    assert [step.margin for step in ladder] == [0.05]


def test_the_margin_never_exceeds_one() -> None:
    ladder = margin_ladder([_batching("sorted", [0.95], rows=10)], target=1.0, minimum=0.05, safety=1.25)
    assert [step.margin for step in ladder] == pytest.approx([0.950001, 1.0])


def test_from_probabilities() -> None:
    exact = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8]])
    fast = np.array([[0.8, 0.15, 0.05], [0.45, 0.4, 0.15], [0.1, 0.2, 0.7]])
    batching = Batching.from_probabilities("sorted", fast, exact)
    np.testing.assert_allclose(batching.margins, [0.65, 0.05, 0.5])
    assert batching.flipped.tolist() == [False, True, False]
    assert batching.largest_change == pytest.approx(0.3)
    assert batching.largest_flipped() == pytest.approx(0.05)
    assert batching.fallback_fraction(0.06) == pytest.approx(1 / 3)
