"""data.vote_columns: annotator votes as the label confidence, with label names or integer label codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.data.test_data import LABELS, all_rows, make_config, tiny_rows, write_csv
from tweet_classifier.config import ConfigError
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.readers import DataError

VOTES = {"counts": {"negative": "n_neg", "neutral": "n_neu", "positive": "n_pos"}, "total": "n_annotators"}


def voted_rows(integer_labels: bool = False) -> list[dict[str, object]]:
    """Five annotators; every third row has only 2 of 5 votes for its label."""
    rows = []
    for index, row in enumerate(tiny_rows()):
        label = row["label"]
        own = 2 if index % 3 == 0 else 5
        counts = {name: (own if name == label else 0) for name in LABELS}
        spare = next(name for name in LABELS if name != label)
        counts[spare] += 5 - own
        rows.append(
            {
                **row,
                "label": LABELS.index(label) if integer_labels else label,
                "n_neg": counts["negative"],
                "n_neu": counts["neutral"],
                "n_pos": counts["positive"],
                "n_annotators": 5,
            }
        )
    return rows


@pytest.mark.parametrize("integer_labels", [False, True])
def test_votes_become_the_confidence_low_confidence_uses(tmp_path: Path, integer_labels: bool) -> None:
    config = make_config(
        write_csv(tmp_path, voted_rows(integer_labels)),
        data={"vote_columns": VOTES},
        cleaning={"low_confidence": {"policy": "weight", "threshold": 0.7}},
    )
    prepared = prepare_data(config)
    rows = all_rows(prepared)
    assert set(rows["label"]) == set(LABELS)
    assert sorted(rows["weight"].unique()) == [0.4, 1.0]
    assert (rows["weight"] == 0.4).sum() == 10
    assert prepared.report.findings["labels_with_confidence_below_0.7"] == 10
    assert prepared.report.step("low_confidence").rows_touched == 10
    # The count columns are configured columns, not "empty optional columns".
    assert "n_neg" not in prepared.report.empty_optional_columns


def test_votes_without_a_total_use_the_sum_and_drop_policy(tmp_path: Path) -> None:
    rows = voted_rows()
    for row in rows:
        row["n_neu"] = int(row["n_neu"]) + 5  # the sum is now 10: every row has at most 5/10 = 0.5
    votes = {"counts": VOTES["counts"]}
    config = make_config(
        write_csv(tmp_path, rows),
        data={"vote_columns": votes},
        cleaning={"low_confidence": {"policy": "drop", "threshold": 0.45}},
    )
    prepared = prepare_data(config)
    # The 2-of-5 rows are all negative (every third row): 2/10 = 0.2 goes; positive 5/10 and neutral 10/10 stay.
    assert prepared.report.step("low_confidence").rows_removed == 10


def test_vote_column_errors_name_the_key(tmp_path: Path) -> None:
    path = write_csv(tmp_path, voted_rows())
    with pytest.raises(DataError, match=r"data.vote_columns.counts has no column for the labels \['positive'\]"):
        prepare_data(make_config(path, data={"vote_columns": {"counts": {"negative": "n_neg", "neutral": "n_neu"}}}))
    with pytest.raises(DataError, match=r"column 'nope' \(data.vote_columns.total\) is not in"):
        prepare_data(make_config(path, data={"vote_columns": {**VOTES, "total": "nope"}}))
    with pytest.raises(DataError, match=r"vote column 'text' \(data.vote_columns.counts.neutral\) has 30 values"):
        prepare_data(make_config(path, data={"vote_columns": {"counts": {**VOTES["counts"], "neutral": "text"}}}))
    too_few = write_csv(tmp_path, [{**row, "n_annotators": 1} for row in voted_rows()], "too_few.csv")
    with pytest.raises(DataError) as error:
        prepare_data(make_config(too_few, data={"vote_columns": VOTES}))
    assert str(error.value) == (
        "30 rows have more votes for their label than data.vote_columns.total 'n_annotators' "
        "(e.g. row 0: 2 of 1): fix the total column"
    )
    with pytest.raises(ConfigError, match=r"set data.confidence_column or data.vote_columns, not both"):
        make_config(path, data={"vote_columns": VOTES, "confidence_column": "n_neg"})
