"""drift.py: the binning, PSI and reference file that training writes and the server reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from tweet_classifier.drift import (
    DriftReference,
    DriftReferenceError,
    drift_bins,
    population_stability_index,
    unk_share,
)

LABELS = ["negative", "neutral", "positive"]


@dataclass
class Traits:
    n_chars: int = 60
    n_words: int = 12
    has_url: bool = False
    has_mention: bool = True
    has_emoji: bool = False
    has_hashtag: bool = False


def _reference() -> DriftReference:
    observations = [(Traits(n_chars=60 + i % 50, has_url=i % 10 == 0), 0.0, LABELS[i % 3]) for i in range(300)]
    return DriftReference.from_observations(observations)


def test_drift_bins_cover_edges() -> None:
    assert drift_bins(Traits(n_chars=0, n_words=0), 0.0)["n_chars"] == "0-40"
    assert drift_bins(Traits(n_chars=40), 0.0)["n_chars"] == "40-80"
    assert drift_bins(Traits(n_chars=5000, n_words=900), 0.5) == {
        "n_chars": ">=281",
        "n_words": ">=30",
        "unk_share": ">=0.3",
        "has_url": "no",
        "has_mention": "yes",
        "has_emoji": "no",
        "has_hashtag": "no",
    }
    assert drift_bins(Traits(), 0.1)["unk_share"] == "0.05-0.15"


def test_psi_is_zero_for_equal_distributions_and_grows_with_shift() -> None:
    base = {"a": 0.5, "b": 0.5}
    assert population_stability_index(base, base) == pytest.approx(0.0)
    small = population_stability_index(base, {"a": 0.55, "b": 0.45})
    large = population_stability_index(base, {"a": 0.95, "b": 0.05})
    assert 0 < small < 0.1 < large
    # Textbook value: (0.9-0.5)ln(0.9/0.5) + (0.1-0.5)ln(0.1/0.5)
    assert population_stability_index(base, {"a": 0.9, "b": 0.1}) == pytest.approx(
        0.4 * np.log(1.8) + 0.4 * np.log(5.0)
    )


def test_reference_round_trips_and_bad_files_say_what_to_do(tmp_path) -> None:
    reference = _reference()
    path = reference.save(tmp_path / "reference.json")
    loaded = DriftReference.load(path)
    assert loaded.distributions == reference.distributions
    assert loaded.n == 300
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(DriftReferenceError, match="re-export the model"):
        DriftReference.load(tmp_path / "bad.json")
    with pytest.raises(DriftReferenceError, match="zero texts"):
        DriftReference.from_observations([])


def test_reference_from_a_split_bins_raw_traits_and_unk_shares_like_the_server() -> None:
    reference = DriftReference.from_split(
        ["@united lost my bag http://t.co/x", "thanks 😀", "ok"],
        [unk_share([5, 100, 7, 100], unk_id=100), unk_share([], unk_id=100), unk_share([1, 2], unk_id=None)],
        ["negative", "positive", "neutral"],
        source="training split (3 rows)",
    )
    assert reference.n == 3
    assert reference.source == "training split (3 rows)"
    shares = reference.distributions
    assert shares["has_url"] == pytest.approx({"no": 2 / 3, "yes": 1 / 3})
    assert shares["has_emoji"] == pytest.approx({"no": 2 / 3, "yes": 1 / 3})
    assert shares["unk_share"] == pytest.approx({"0": 2 / 3, ">=0.3": 1 / 3})
    assert shares["predicted_label"] == pytest.approx(dict.fromkeys(LABELS, 1 / 3))
