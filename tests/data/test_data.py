"""data.py: loading and its errors, each cleaning step and policy, splits, the report, the CLI, real data."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import REPO_ROOT, shared_data_path
from tweet_classifier import cli
from tweet_classifier.config import RunConfig, build_config, deep_merge, load_config
from tweet_classifier.data.load import load_raw, resolve_source
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.prepared import PreparedData, read_prepared, write_prepared
from tweet_classifier.data.readers import DataError
from tweet_classifier.data.report import CleaningReport

AIRLINE_CONFIG = REPO_ROOT / "configs" / "airline.yaml"
HATE_CONFIG = REPO_ROOT / "configs" / "tweet_eval_hate.yaml"
SMOKE_CONFIG = REPO_ROOT / "configs" / "smoke.yaml"
NO_AUDIT = "cleaning.label_noise.policy=off"
LABELS = ["negative", "neutral", "positive"]


def make_config(source: Path | str, **sections: Any) -> RunConfig:
    """A config for a tiny inline dataset: label-noise audit off, small splits, overrides per section."""
    values: dict[str, Any] = {
        "name": "tiny",
        "data": {"source": str(source), "labels": LABELS, "split": {"validation_fraction": 0.2, "test_fraction": 0.2}},
        "cleaning": {"label_noise": {"policy": "off"}, "low_confidence": {"policy": "keep"}},
    }
    return build_config(deep_merge(values, sections))


def tiny_rows(count: int = 30) -> list[dict[str, Any]]:
    """Distinct tweets, labels cycling through LABELS."""
    return [
        {"id": str(1000 + index), "text": f"tweet number {index} about flight {index * 7}", "label": LABELS[index % 3]}
        for index in range(count)
    ]


def write_csv(tmp_path: Path, rows: list[dict[str, Any]], name: str = "tweets.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def step_counts(prepared: PreparedData, name: str) -> tuple[int, int]:
    step = prepared.report.step(name)
    return step.rows_touched, step.rows_removed


def all_rows(prepared: PreparedData) -> pd.DataFrame:
    return pd.concat([prepared.train, prepared.validation, prepared.test], ignore_index=True)


# ---------------------------------------------------------------------------------------------- loading


def test_csv_jsonl_and_parquet_give_the_same_prepared_data(tmp_path: Path) -> None:
    rows = tiny_rows()
    csv_path = write_csv(tmp_path, rows)
    jsonl_path = tmp_path / "tweets.jsonl"
    jsonl_path.write_text("\n".join(json.dumps(row) for row in rows) + "\n\n", encoding="utf-8")
    parquet_path = tmp_path / "tweets.parquet"
    pd.DataFrame(rows).to_parquet(parquet_path)
    results = [prepare_data(make_config(path)) for path in (csv_path, jsonl_path, parquet_path)]
    for prepared in results:
        assert prepared.labels == LABELS
        assert sum(len(prepared.split(name)) for name in ("train", "validation", "test")) == 30
        assert list(prepared.train.columns) == ["text", "raw_text", "label", "weight", "repaired"]
    pd.testing.assert_frame_equal(results[0].test, results[1].test)
    pd.testing.assert_frame_equal(results[0].test, results[2].test)


def test_relative_source_resolves_against_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(tmp_path, tiny_rows())
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    assert resolve_source("tweets.csv") == tmp_path / "tweets.csv"
    assert resolve_source(str(tmp_path / "x.csv")) == tmp_path / "x.csv"
    assert len(all_rows(prepare_data(make_config("tweets.csv")))) == 30


def test_text_that_reads_like_a_missing_value_is_kept(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "9", "text": "NA", "label": "neutral"},
        {"id": "8", "text": "null", "label": "neutral"},
    ]
    texts = set(all_rows(prepare_data(make_config(write_csv(tmp_path, rows))))["text"])
    assert {"NA", "null"} <= texts


def test_integer_labels_in_a_csv_index_into_data_labels(tmp_path: Path) -> None:
    rows = [{**row, "label": LABELS.index(row["label"])} for row in tiny_rows()]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    assert set(all_rows(prepared)["label"]) == set(LABELS)


def test_float_labels_index_and_boolean_labels_do_not(tmp_path: Path) -> None:
    rows = [{**row, "label": float(LABELS.index(row["label"]))} for row in tiny_rows()]
    path = tmp_path / "floats.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    assert set(all_rows(prepare_data(make_config(path)))["label"]) == set(LABELS)
    path.write_text("\n".join(json.dumps({**row, "label": index % 2 == 0}) for index, row in enumerate(rows)))
    with pytest.raises(DataError, match=r"unknown label values 'False', 'True'"):
        prepare_data(make_config(path))


def test_labels_default_to_sorted_values_when_not_configured(tmp_path: Path) -> None:
    config = make_config(write_csv(tmp_path, tiny_rows()))
    config = build_config(deep_merge(config.to_dict(), {"data": {"labels": []}}))
    assert prepare_data(config).labels == sorted(LABELS)


def test_hub_layout_folder_maps_class_label_ids_to_names() -> None:
    config = load_config([HATE_CONFIG], [NO_AUDIT, "data.labels=[]"])
    loaded = load_raw(config)
    assert loaded.class_label_names == ["not-hate", "hate"]
    assert set(loaded.frames) == {"train", "validation", "test"}


def test_error_file_not_found_names_path_and_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(DataError) as error:
        prepare_data(make_config("missing/tweets.csv"))
    message = str(error.value)
    assert f"data file not found: {tmp_path / 'missing/tweets.csv'}" in message
    assert f"DATA_DIR={tmp_path}" in message
    assert "set DATA_DIR" in message


def test_error_hub_id_fallback_is_clear_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No local folder of that name: the Hub is tried for real and fails offline (HF_HUB_OFFLINE=1).
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataError) as error:
        prepare_data(make_config("no-such-owner/no-such-dataset"))
    message = str(error.value)
    assert "could not load Hub dataset no-such-owner/no-such-dataset" in message
    assert f"no local path {tmp_path / 'no-such-owner/no-such-dataset'}" in message
    assert "Fix data.source/data.subset" in message


def test_error_explicit_hub_format_skips_local_lookup(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"could not load Hub dataset owner/name with subset None: ConnectionError"):
        prepare_data(make_config("owner/name", data={"format": "hub"}))


def test_error_hub_folder_without_subset_lists_configs() -> None:
    config = load_config([HATE_CONFIG], [NO_AUDIT, "data.subset=nope"])
    with pytest.raises(DataError, match=r"subset 'nope'.*BuilderConfig 'nope' not found.*Fix data.source/data.subset"):
        prepare_data(config)


def test_error_missing_column_lists_columns(tmp_path: Path) -> None:
    config = make_config(write_csv(tmp_path, tiny_rows()), data={"label_column": "sentiment"})
    with pytest.raises(DataError) as error:
        prepare_data(config)
    assert str(error.value) == (
        f"column 'sentiment' (data.label_column) is not in {tmp_path / 'tweets.csv'}; columns: id, text, label. "
        "Set data.label_column to one of them"
    )


def test_error_unknown_label_lists_values_and_allowed_labels(tmp_path: Path) -> None:
    rows = [*tiny_rows(), {"id": "1", "text": "meh", "label": "mixed"}, {"id": "2", "text": "eh", "label": "other"}]
    with pytest.raises(DataError) as error:
        prepare_data(make_config(write_csv(tmp_path, rows)))
    assert str(error.value) == (
        "unknown label values 'mixed', 'other' in column 'label'; allowed labels: ['negative', 'neutral', "
        "'positive']. Add them to data.labels or fix the data"
    )


def test_error_integer_label_out_of_range(tmp_path: Path) -> None:
    rows = [{**row, "label": index % 4} for index, row in enumerate(tiny_rows())]
    with pytest.raises(
        DataError, match=r"unknown label values \[3\].*index into \['negative', 'neutral', 'positive'\]"
    ):
        prepare_data(make_config(write_csv(tmp_path, rows)))


def test_error_single_label(tmp_path: Path) -> None:
    rows = [{**row, "label": "negative"} for row in tiny_rows()]
    config = make_config(write_csv(tmp_path, rows), data={"labels": []})
    with pytest.raises(DataError, match=r"need at least two labels to train a classifier, got \['negative'\]"):
        prepare_data(config)


def test_error_real_latin1_file_says_set_encoding() -> None:
    source = shared_data_path("twitter-airline-sentiment", "Airline-Sentiment-2-w-AA.csv")
    config = make_config(source, data={"label_column": "airline_sentiment"})
    with pytest.raises(DataError) as error:
        prepare_data(config)
    message = str(error.value)
    assert f"{source} is not valid utf-8 (byte b'\\x89' at offset" in message
    assert "set data.encoding to the file's encoding, e.g. --set data.encoding=latin-1" in message


def test_real_latin1_file_loads_with_its_encoding_and_mojibake_is_counted() -> None:
    source = shared_data_path("twitter-airline-sentiment", "Airline-Sentiment-2-w-AA.csv")
    config = make_config(
        source,
        data={
            "label_column": "airline_sentiment",
            "encoding": "mac_roman",
            "confidence_column": "airline_sentiment:confidence",
        },
    )
    prepared = prepare_data(config)
    assert prepared.report.findings["rows_with_mojibake"] > 300
    assert not all_rows(prepared)["text"].str.contains("â€™").any()


def test_error_unknown_encoding(tmp_path: Path) -> None:
    path = write_csv(tmp_path, tiny_rows())
    with pytest.raises(DataError, match=r"unknown encoding data.encoding='klingon'"):
        prepare_data(make_config(path, data={"encoding": "klingon"}))


def test_error_malformed_csv(tmp_path: Path) -> None:
    path = tmp_path / "broken.csv"
    path.write_text(
        'id,text,label\n1,"fine",neutral\n2,"unclosed quote,neutral\n3,x,positive,extra\n', encoding="utf-8"
    )
    with pytest.raises(DataError) as error:
        prepare_data(make_config(path))
    assert str(error.value) == (
        f"{path} line 3 ('2,\"unclosed quote,neutral') cannot be parsed as csv (EOF inside string starting at row 2): "
        "set data.quoting: none if '\"' in the texts is an ordinary character; or data.delimiter if the columns "
        "are not separated by ','; or data.header: false with data.column_names if the first line is data"
    )


def test_error_empty_file_and_header_only(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(DataError, match=r"empty.csv is empty: point data.source at a file with a header and rows"):
        prepare_data(make_config(empty))
    header_only = tmp_path / "header.csv"
    header_only.write_text("id,text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"header.csv has no rows: point data.source at a file with data"):
        prepare_data(make_config(header_only))


def test_error_unsupported_format(tmp_path: Path) -> None:
    path = tmp_path / "tweets.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError) as error:
        prepare_data(make_config(path))
    assert str(error.value) == (
        f"unsupported data file format '.xlsx' for {path}: use one of .csv, .jsonl, .ndjson, .parquet, .pq, "
        ".tab, .tsv or set data.format (csv, tsv, jsonl, parquet)"
    )


def test_explicit_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write_csv(tmp_path, tiny_rows(), "tweets.txt")
    assert len(all_rows(prepare_data(make_config(path, data={"format": "csv"})))) == 30


def test_error_jsonl_bad_line_and_non_object(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "neutral"}\n{"text": oops}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl line 2 is not valid JSON \(Expecting value\)"):
        prepare_data(make_config(path))
    path.write_text('{"text": "a", "label": "neutral"}\n["a list"]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.jsonl line 2 is a JSON list, not an object"):
        prepare_data(make_config(path))


def test_error_jsonl_wrong_encoding(tmp_path: Path) -> None:
    path = tmp_path / "latin.jsonl"
    path.write_bytes('{"text": "café", "label": "neutral"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.jsonl is not valid utf-8 .*data.encoding=latin-1"):
        prepare_data(make_config(path))
    with pytest.raises(DataError, match="unknown encoding"):
        prepare_data(make_config(path, data={"encoding": "nope-8"}))


def test_error_corrupt_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match=r"bad.parquet is not a readable parquet file"):
        prepare_data(make_config(path))


def test_error_official_split_on_a_single_file(tmp_path: Path) -> None:
    config = make_config(write_csv(tmp_path, tiny_rows()), data={"split": {"strategy": "official"}})
    with pytest.raises(DataError, match=r"strategy=official needs the splits \['train', 'validation', 'test'\]"):
        prepare_data(config)


def test_error_bad_confidence_and_timestamp_values(tmp_path: Path) -> None:
    rows = [
        {**row, "confidence": "high" if index == 0 else "0.9", "created": "2015-02-20"}
        for index, row in enumerate(tiny_rows())
    ]
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError, match=r"confidence column 'confidence' has 1 values .* \(e.g. 'high'\)"):
        prepare_data(make_config(path, data={"confidence_column": "confidence"}))
    rows = [
        {**row, "created": "yesterday" if index == 3 else "2015-02-20 10:00:00 -0800"}
        for index, row in enumerate(tiny_rows())
    ]
    path = write_csv(tmp_path, rows, "time.csv")
    with pytest.raises(
        DataError, match=r"timestamp column 'created' has 1 values that are not dates \(e.g. 'yesterday'\)"
    ):
        prepare_data(make_config(path, data={"timestamp_column": "created"}))


def test_error_temporal_split_needs_a_timestamp(tmp_path: Path) -> None:
    config = make_config(write_csv(tmp_path, tiny_rows()), data={"split": {"strategy": "temporal"}})
    with pytest.raises(DataError, match=r"strategy=temporal needs data.timestamp_column"):
        prepare_data(config)


def test_error_too_little_data_for_a_split(tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"the (validation|test) split is empty after cleaning \(2 rows in all\): use more data"
    ):
        prepare_data(make_config(write_csv(tmp_path, tiny_rows(2))))


def test_error_cleaning_removed_every_row(tmp_path: Path) -> None:
    rows = [{**row, "confidence": "0.3"} for row in tiny_rows()]
    config = make_config(
        write_csv(tmp_path, rows),
        data={"confidence_column": "confidence"},
        cleaning={"low_confidence": {"policy": "drop"}},
    )
    with pytest.raises(DataError) as error:
        prepare_data(config)
    assert str(error.value) == (
        "cleaning step 'low_confidence' removed every row (30 in, 30 removed: labels with confidence below 0.7: "
        "drop): lower cleaning.low_confidence.threshold or set cleaning.low_confidence.policy: weight"
    )


# ---------------------------------------------------------------------------------------------- cleaning


def test_empty_texts_are_dropped_and_counted(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "1", "text": "", "label": "neutral"},
        {"id": "2", "text": "  \n\t", "label": "neutral"},
    ]
    rows.append({"id": "3", "text": "\u200b\u200e", "label": "neutral"})  # empty only after normalization
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    assert step_counts(prepared, "empty_text") == (2, 2)
    assert step_counts(prepared, "empty_after_normalization") == (1, 1)
    assert prepared.report.findings["empty_or_whitespace_text"] == 2
    kept = prepare_data(make_config(write_csv(tmp_path, rows), cleaning={"drop_empty": False}))
    # Kept, they normalize to one empty text (dedupe_normalized keeps one of the three).
    assert (all_rows(kept)["text"] == "").sum() == 1
    assert not kept.report.step("empty_text").enabled


def test_exact_duplicates_use_every_column(tmp_path: Path) -> None:
    rows = tiny_rows()
    rows += [dict(rows[0]), dict(rows[1]), {**rows[2], "extra": "differs"}]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows), cleaning={"id_conflicts": "off"}))
    # rows[2] with a different extra column is not an exact duplicate (dedupe_normalized catches it).
    assert step_counts(prepared, "exact_duplicates") == (2, 2)
    assert step_counts(prepared, "dedupe_normalized") == (1, 1)
    assert prepared.report.findings["exact_duplicate_rows"] == 2
    assert prepared.report.step("exact_duplicates").examples[0]["raw_text"] == rows[0]["text"]
    off = prepare_data(
        make_config(write_csv(tmp_path, rows), cleaning={"id_conflicts": "off", "drop_exact_duplicates": False})
    )
    assert step_counts(off, "exact_duplicates") == (0, 0)
    assert step_counts(off, "dedupe_normalized") == (3, 3)


@pytest.mark.parametrize(
    ("policy", "expected_removed", "expected_label"), [("drop", 2, None), ("keep_first", 1, "negative")]
)
def test_id_conflicts(tmp_path: Path, policy: str, expected_removed: int, expected_label: str | None) -> None:
    rows = tiny_rows()
    rows += [
        {"id": "77", "text": "same tweet, two labels", "label": "negative"},
        {"id": "77", "text": "same tweet, two labels", "label": "positive"},
        {"id": "78", "text": "repeated id, same label", "label": "neutral"},
        {"id": "78", "text": "repeated id, same label, other text", "label": "neutral"},
    ]
    config = make_config(write_csv(tmp_path, rows), data={"id_column": "id"}, cleaning={"id_conflicts": policy})
    prepared = prepare_data(config)
    assert step_counts(prepared, "id_conflicts") == (2, expected_removed)
    assert step_counts(prepared, "repeated_ids") == (1, 1)
    assert prepared.report.findings["ids_with_conflicting_labels"] == 1
    conflicted = all_rows(prepared).query("text == 'same tweet, two labels'")
    assert list(conflicted["label"]) == ([] if expected_label is None else [expected_label])


def test_id_conflicts_off(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "77", "text": "a", "label": "negative"},
        {"id": "77", "text": "b", "label": "positive"},
    ]
    config = make_config(write_csv(tmp_path, rows), data={"id_column": "id"}, cleaning={"id_conflicts": "off"})
    prepared = prepare_data(config)
    assert not prepared.report.step("id_conflicts").enabled
    assert len(all_rows(prepared)) == 32


def test_repairs_fix_raw_text_and_mark_rows(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "1", "text": "my flight is Cancelled Flightled again", "label": "negative"},
        {"id": "2", "text": "running Late Flightr than ever, reLate Flightd delays", "label": "negative"},
    ]
    airline = load_config([AIRLINE_CONFIG])
    config = make_config(
        write_csv(tmp_path, rows), cleaning={"repairs": [r.model_dump() for r in airline.cleaning.repairs]}
    )
    prepared = prepare_data(config)
    rows_out = all_rows(prepared).set_index("raw_text")
    assert rows_out.loc["my flight is Cancelled Flightled again", "text"] == "my flight is cancelled again"
    assert rows_out.loc["running Late Flightr than ever, reLate Flightd delays", "text"] == (
        "running later than ever, related delays"
    )
    assert rows_out["repaired"].sum() == 2
    assert step_counts(prepared, "repair:undo_late_flight") == (1, 0)
    assert step_counts(prepared, "repair:undo_cancelled_flight") == (1, 0)
    example = prepared.report.step("repair:undo_late_flight").examples[0]
    assert "Late Flightr" in example["before"]
    assert "later" in example["after"]


def test_normalization_is_applied_and_counted(tmp_path: Path) -> None:
    rows = [*tiny_rows(), {"id": "1", "text": "@United lost my bag &amp; https://t.co/x 😂", "label": "negative"}]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    assert "@user lost my bag & http face with tears of joy" in set(all_rows(prepared)["text"])
    assert step_counts(prepared, "normalize") == (1, 0)
    assert prepared.report.findings["rows_with_html_entities"] == 1


def test_text_conflicts_vote_is_weighted_by_confidence(tmp_path: Path) -> None:
    rows = [{**row, "confidence": "1.0"} for row in tiny_rows()]
    rows += [
        # two low-confidence "positive" votes (0.4 + 0.4) lose against one confident "negative" (0.9)
        {"id": "1", "text": "@united thanks a lot", "label": "positive", "confidence": "0.4"},
        {"id": "2", "text": "@delta thanks a lot", "label": "positive", "confidence": "0.4"},
        {"id": "3", "text": "@jetblue thanks  a lot", "label": "negative", "confidence": "0.9"},
        # a tie has no majority: dropped
        {"id": "4", "text": "ok then", "label": "neutral", "confidence": "0.5"},
        {"id": "5", "text": "ok then", "label": "positive", "confidence": "0.5"},
    ]
    config = make_config(
        write_csv(tmp_path, rows),
        data={"confidence_column": "confidence"},
        cleaning={"low_confidence": {"policy": "weight"}},
    )
    prepared = prepare_data(config)
    assert step_counts(prepared, "text_conflicts") == (5, 4)
    out = all_rows(prepared)
    voted = out[out["text"] == "@user thanks a lot"]
    assert list(voted["label"]) == ["negative"]
    # The vote's agreement 0.9 / 1.7 becomes the confidence, below 0.7, so the row is down-weighted.
    assert voted["weight"].iloc[0] == pytest.approx(0.9 / 1.7)
    assert "ok then" not in set(out["text"])


def test_text_conflicts_drop_and_off(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "1", "text": "meh", "label": "neutral"},
        {"id": "2", "text": "meh", "label": "negative"},
    ]
    path = write_csv(tmp_path, rows)
    dropped = prepare_data(make_config(path, cleaning={"text_conflicts": "drop"}))
    assert step_counts(dropped, "text_conflicts") == (2, 2)
    assert "meh" not in set(all_rows(dropped)["text"])
    kept = prepare_data(make_config(path, cleaning={"text_conflicts": "off"}))
    assert sorted(all_rows(kept).query("text == 'meh'")["label"]) == ["negative", "neutral"]
    # Even with conflicts kept, one normalized text never lands in two splits.
    splits_with_meh = [name for name in ("train", "validation", "test") if "meh" in set(kept.split(name)["text"])]
    assert len(splits_with_meh) == 1


def test_dedupe_normalized_keeps_one_row_per_text(tmp_path: Path) -> None:
    rows = [
        *tiny_rows(),
        {"id": "1", "text": "@united worst https://t.co/a", "label": "negative"},
        {"id": "2", "text": "@delta worst https://t.co/b", "label": "negative"},
        {"id": "3", "text": "@DELTA   worst\nhttp://t.co/c", "label": "negative"},
    ]
    path = write_csv(tmp_path, rows)
    prepared = prepare_data(make_config(path))
    assert step_counts(prepared, "dedupe_normalized") == (2, 2)
    assert (all_rows(prepared)["text"] == "@user worst http").sum() == 1
    kept = prepare_data(make_config(path, cleaning={"dedupe_normalized": False}))
    assert (all_rows(kept)["text"] == "@user worst http").sum() == 3


@pytest.mark.parametrize(
    ("policy", "rows_left", "low_weight"), [("drop", 20, None), ("weight", 30, 0.5), ("keep", 30, 1.0)]
)
def test_low_confidence_policies(tmp_path: Path, policy: str, rows_left: int, low_weight: float | None) -> None:
    rows = [{**row, "confidence": "0.5" if index % 3 == 0 else "0.95"} for index, row in enumerate(tiny_rows())]
    config = make_config(
        write_csv(tmp_path, rows),
        data={"confidence_column": "confidence"},
        cleaning={"low_confidence": {"policy": policy, "threshold": 0.7}},
    )
    prepared = prepare_data(config)
    out = all_rows(prepared)
    assert len(out) == rows_left
    assert prepared.report.findings["labels_with_confidence_below_0.7"] == 10
    if low_weight is not None:
        low_rows = out[out["raw_text"].isin([row["text"] for row in rows if row["confidence"] == "0.5"])]
        assert set(low_rows["weight"]) == {low_weight}
    assert set(out[~out["raw_text"].isin([row["text"] for row in rows if row["confidence"] == "0.5"])]["weight"]) == {
        1.0
    }
    touched = {"drop": 10, "weight": 10, "keep": 0}[policy]
    assert prepared.report.step("low_confidence").rows_touched == touched


def test_examples_per_step_limits_examples(tmp_path: Path) -> None:
    rows = tiny_rows() + [dict(row) for row in tiny_rows()[:6]]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows), cleaning={"examples_per_step": 2}))
    assert len(prepared.report.step("exact_duplicates").examples) == 2
    none = prepare_data(make_config(write_csv(tmp_path, rows), cleaning={"examples_per_step": 0}))
    assert none.report.step("exact_duplicates").examples == []


def test_missing_labels_are_dropped(tmp_path: Path) -> None:
    rows = [*tiny_rows(), {"id": "1", "text": "no label here", "label": None}]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    assert step_counts(prepared, "missing_label") == (1, 1)
    assert prepared.report.findings["missing_labels"] == 1


def test_survey_counts_coordinates_newlines_and_empty_optional_columns(tmp_path: Path) -> None:
    rows = [
        {**row, "tweet_coord": "[0.0, 0.0]" if index < 4 else "", "note": ""} for index, row in enumerate(tiny_rows())
    ]
    rows[5]["text"] = "two\nlines"
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    findings = prepared.report.findings
    assert findings["tweet_coord_is_0_0"] == 4
    assert findings["rows_with_newlines"] == 1
    assert prepared.report.empty_optional_columns == {"tweet_coord": 26, "note": 30}


# ---------------------------------------------------------------------------------------------- splits


def test_stratified_split_is_grouped_stratified_and_seeded(tmp_path: Path) -> None:
    rows = [{"id": str(i), "text": f"text {i % 150}", "label": LABELS[(i % 150) % 3]} for i in range(300)]
    path = write_csv(tmp_path, rows)
    config = make_config(path, cleaning={"dedupe_normalized": False})
    prepared = prepare_data(config)
    sets = [set(prepared.split(name)["text"]) for name in ("train", "validation", "test")]
    assert not sets[0] & sets[1]
    assert not sets[0] & sets[2]
    assert not sets[1] & sets[2]
    assert prepared.report.split_sizes == {"train": 180, "validation": 60, "test": 60}
    for name in ("validation", "test"):
        assert set(prepared.split(name)["label"].value_counts()) == {20}
    again = prepare_data(config)
    pd.testing.assert_frame_equal(prepared.test, again.test)
    other_seed = prepare_data(build_config(deep_merge(config.to_dict(), {"seed": 7})))
    assert set(other_seed.test["text"]) != set(prepared.test["text"])


def test_temporal_split_trains_on_the_past(tmp_path: Path) -> None:
    rows = [
        {
            **row,
            "created": f"2015-02-{16 + index % 9:02d} {index % 24:02d}:00:00 -0800",
            "airline": "AA" if index % 2 else "UA",
        }
        for index, row in enumerate(tiny_rows(60))
    ]
    config = make_config(
        write_csv(tmp_path, rows),
        data={"timestamp_column": "created", "group_column": "airline", "split": {"strategy": "temporal"}},
    )
    prepared = prepare_data(config)
    assert prepared.train["timestamp"].max() <= prepared.validation["timestamp"].min()
    assert prepared.validation["timestamp"].max() <= prepared.test["timestamp"].min()
    assert list(prepared.train.columns) == ["text", "raw_text", "label", "weight", "repaired", "group", "timestamp"]
    assert set(prepared.train["group"]) == {"AA", "UA"}
    assert prepared.report.split_sizes == {"train": 36, "validation": 12, "test": 12}


def test_temporal_split_keeps_a_repeated_text_in_its_earliest_split(tmp_path: Path) -> None:
    rows = [{**row, "created": f"2015-02-{1 + index:02d}"} for index, row in enumerate(tiny_rows(20))]
    rows.append({"id": "x", "text": rows[0]["text"], "label": rows[0]["label"], "created": "2015-03-30"})
    config = make_config(
        write_csv(tmp_path, rows),
        data={"timestamp_column": "created", "split": {"strategy": "temporal"}},
        cleaning={"dedupe_normalized": False},
    )
    prepared = prepare_data(config)
    assert (prepared.train["raw_text"] == rows[0]["text"]).sum() == 2


def _official_folder(tmp_path: Path) -> Path:
    """A Hub-layout folder with train/validation/test parquet files and overlapping texts."""
    root = tmp_path / "hubdata"
    folder = root / "sentiment"
    folder.mkdir(parents=True)
    # The Hub's dataset-card metadata names the config and its split files, as in tweet_eval.
    (root / "README.md").write_text(
        "---\nconfigs:\n- config_name: sentiment\n  data_files:\n"
        + "".join(f"  - split: {name}\n    path: sentiment/{name}-*\n" for name in ("train", "validation", "test"))
        + "---\n",
        encoding="utf-8",
    )
    train = pd.DataFrame(tiny_rows(30))
    validation = pd.DataFrame(
        [
            {"id": "v1", "text": train.text[0], "label": train.label[0]},
            {"id": "v2", "text": "fresh validation", "label": "neutral"},
        ]
    )
    test = pd.DataFrame(
        [
            {"id": "t1", "text": train.text[1], "label": train.label[1]},
            {
                "id": "t2",
                "text": train.text[2] + "  ",
                "label": "negative" if train.label[2] != "negative" else "neutral",
            },
            {"id": "t3", "text": "fresh test", "label": "positive"},
        ]
    )
    for name, frame in {"train": train, "validation": validation, "test": test}.items():
        frame.to_parquet(folder / f"{name}-00000-of-00001.parquet")
    return root


@pytest.mark.parametrize(("policy", "train_rows"), [("remove_from_train", 27), ("report", 30)])
def test_official_split_counts_and_removes_overlap(tmp_path: Path, policy: str, train_rows: int) -> None:
    folder = _official_folder(tmp_path)
    config = make_config(
        folder, data={"subset": "sentiment", "split": {"strategy": "official"}}, cleaning={"test_overlap": policy}
    )
    prepared = prepare_data(config)
    assert prepared.report.overlap["test_texts_in_train"] == 2
    assert prepared.report.overlap["test_texts_in_train_with_other_label"] == 1
    assert prepared.report.overlap["validation_texts_in_train"] == 1
    assert prepared.report.overlap["validation_texts_in_train_with_other_label"] == 0
    assert len(prepared.train) == train_rows
    assert len(prepared.test) == 3
    assert prepared.report.rows_loaded == {"train": 30, "validation": 2, "test": 3}
    assert "| test_texts_in_train_with_other_label | 1 |" in prepared.report.to_markdown()


def test_official_split_names_can_be_configured(tmp_path: Path) -> None:
    folder = _official_folder(tmp_path)
    config = make_config(
        folder, data={"subset": "sentiment", "split": {"strategy": "official", "validation_split": "dev"}}
    )
    with pytest.raises(DataError, match=r"has \['test', 'train', 'validation'\].*data.split.train_split"):
        prepare_data(config)


def test_max_rows_keeps_a_sample_of_each_split(tmp_path: Path) -> None:
    # Sorted by label, like Tweets.csv is sorted by airline: the head of the file is one label only.
    rows = sorted(tiny_rows(90), key=lambda row: row["label"])
    prepared = prepare_data(make_config(write_csv(tmp_path, rows), data={"max_rows": 9}))
    assert prepared.report.split_sizes == {"train": 9, "validation": 9, "test": 9}
    assert prepared.train["label"].nunique() > 1


def test_max_rows_keeps_the_earliest_rows_of_a_temporal_split(tmp_path: Path) -> None:
    rows = [
        {**row, "created": f"2015-02-{28 - index % 28:02d} {index % 24:02d}:00"}
        for index, row in enumerate(tiny_rows(90))
    ]
    config = make_config(
        write_csv(tmp_path, rows),
        data={"max_rows": 5, "timestamp_column": "created", "split": {"strategy": "temporal"}},
    )
    full = prepare_data(build_config(deep_merge(config.to_dict(), {"data": {"max_rows": None}})))
    prepared = prepare_data(config)
    pd.testing.assert_frame_equal(prepared.test, full.test.head(5))
    assert full.test["timestamp"].is_monotonic_increasing


# ---------------------------------------------------------------------------------------------- label noise hook


def test_label_noise_audit_hook_receives_train_and_its_section_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[int, list[str], str]] = []

    def fake_audit(
        train: pd.DataFrame, labels: list[str], config: RunConfig, model: Callable[..., np.ndarray]
    ) -> tuple[pd.DataFrame, dict]:
        calls.append((len(train), labels, config.cleaning.label_noise.policy))
        assert callable(model)
        section = {
            "suspects": np.int64(1),
            "policy": config.cleaning.label_noise.policy,
            "rate": float("nan"),
            "per_class": {},
        }
        return train.iloc[1:].assign(weight=0.5), section

    monkeypatch.setitem(sys.modules, "tweet_classifier.data.audit", types.SimpleNamespace(audit_label_noise=fake_audit))
    config = make_config(write_csv(tmp_path, tiny_rows(60)), cleaning={"label_noise": {"policy": "drop"}})
    prepared = prepare_data(config)
    assert calls == [(36, LABELS, "drop")]
    assert len(prepared.train) == 35
    assert set(prepared.train["weight"]) == {0.5}
    assert prepared.report.label_noise is not None
    assert prepared.report.label_noise["suspects"] == 1
    markdown = prepared.report.to_markdown()
    assert "## Label-noise audit (train split)" in markdown
    assert "| suspects | 1 |" in markdown
    assert "per_class" not in markdown
    # NaN is not JSON: the report writes null.
    assert prepared.report.to_dict()["label_noise"]["rate"] is None


# ---------------------------------------------------------------------------------------------- report and files


def test_write_and_read_prepared_round_trip(tmp_path: Path) -> None:
    config = make_config(write_csv(tmp_path, tiny_rows()))
    prepared = prepare_data(config)
    out = write_prepared(prepared, tmp_path / "out")
    assert sorted(path.name for path in out.iterdir()) == [
        "config.yaml",
        "report.json",
        "report.md",
        "test.parquet",
        "train.parquet",
        "validation.parquet",
    ]
    assert load_config([out / "config.yaml"]) == config
    loaded = read_prepared(out)
    pd.testing.assert_frame_equal(loaded.train, prepared.train)
    assert loaded.labels == LABELS
    assert loaded.report.to_dict() == prepared.report.to_dict()
    assert loaded.config == config
    assert json.loads((out / "report.json").read_text(encoding="utf-8"))["split_sizes"] == prepared.report.split_sizes


def test_prepared_data_without_config_writes_no_config_yaml(tmp_path: Path) -> None:
    prepared = prepare_data(make_config(write_csv(tmp_path, tiny_rows())))
    prepared.config = None
    out = write_prepared(prepared, tmp_path / "out")
    assert not (out / "config.yaml").exists()
    assert read_prepared(out).config is None


def test_read_prepared_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"is not a prepared data folder \(missing train.parquet, .*report.json\)"):
        read_prepared(tmp_path)


def test_report_helpers(tmp_path: Path) -> None:
    rows = [*tiny_rows(), {"id": "1", "text": "pipe | and\nnewline " + "x" * 200, "label": "neutral"}]
    rows.append(dict(rows[-1]))
    prepared = prepare_data(make_config(write_csv(tmp_path, rows)))
    markdown = prepared.report.to_markdown()
    assert "pipe \\| and\\nnewline" in markdown
    assert "…" in markdown
    with pytest.raises(KeyError, match="no cleaning step named 'nope'"):
        prepared.report.step("nope")
    with pytest.raises(DataError, match="unknown split 'dev'"):
        prepared.split("dev")
    assert CleaningReport.from_dict(prepared.report.to_dict()) == prepared.report


# ---------------------------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def airline() -> PreparedData:
    return prepare_data(load_config([AIRLINE_CONFIG], [NO_AUDIT]))


def test_airline_every_known_problem_is_counted(airline: PreparedData) -> None:
    findings = airline.report.findings
    for finding in (
        "exact_duplicate_rows",
        "ids_with_conflicting_labels",
        "rows_with_html_entities",
        "rows_with_newlines",
        "labels_with_confidence_below_0.7",
        "rows_matching_repair_undo_late_flight",
        "rows_matching_repair_undo_cancelled_flight",
        "tweet_coord_is_0_0",
    ):
        assert findings[finding] > 0, finding
    assert (
        findings["rows_matching_repair_undo_late_flight"] + findings["rows_matching_repair_undo_cancelled_flight"]
        > 1000
    )
    assert findings["labels_with_confidence_below_0.7"] / findings["rows"] == pytest.approx(0.26, abs=0.02)
    for step in ("exact_duplicates", "id_conflicts", "text_conflicts", "dedupe_normalized", "low_confidence"):
        assert airline.report.step(step).rows_touched > 0, step
    assert airline.report.empty_optional_columns["airline_sentiment_gold"] > 14000
    before = airline.report.class_balance["before"]
    assert before["negative"] / sum(before.values()) == pytest.approx(0.63, abs=0.01)
    assert set(airline.report.class_balance) == {"before", "train", "validation", "test"}


def test_airline_clean_text_has_no_known_corruption(airline: PreparedData) -> None:
    texts = all_rows(airline)["text"]
    for corruption in ("&amp;", "&gt;", "&lt;", "Flightled", "Late Flightr", "Late Flight", "\n"):
        assert not texts.str.contains(corruption, regex=False).any(), corruption
    assert all_rows(airline)["repaired"].sum() > 1000


def test_airline_no_normalized_text_in_two_splits(airline: PreparedData) -> None:
    train, validation, test = (set(airline.split(name)["text"]) for name in ("train", "validation", "test"))
    assert not train & validation
    assert not train & test
    assert not validation & test
    assert len(airline.test) / len(all_rows(airline)) == pytest.approx(0.15, abs=0.01)
    assert set(airline.train["group"]) == {"Virgin America", "United", "Southwest", "Delta", "US Airways", "American"}
    assert airline.train["weight"].between(0.3, 1.0).all()


def test_airline_no_coarse_key_in_two_splits(airline: PreparedData) -> None:
    from tweet_classifier.data.split_groups import coarse_key

    normalize = load_config([AIRLINE_CONFIG]).normalize
    train, validation, test = (
        set(airline.split(name)["text"].map(lambda text: coarse_key(text, normalize)))
        for name in ("train", "validation", "test")
    )
    assert not train & validation
    assert not train & test
    assert not validation & test
    assert coarse_key("@user YOU SUCK!", normalize) == coarse_key("@user you suck!", normalize)
    grouping = airline.report.grouping
    assert grouping["groups_merged"] > 20
    assert 0 < grouping["rows_moved"] < 100
    assert airline.report.step("split_grouping").rows_touched == grouping["rows_moved"]
    assert airline.report.step("near_duplicate_conflicts").rows_removed > 0


def test_tweet_eval_hate_test_overlap_is_counted_and_removed() -> None:
    prepared = prepare_data(load_config([HATE_CONFIG], [NO_AUDIT]))
    overlap = prepared.report.overlap
    assert 100 < overlap["test_texts_in_train"] < 1000
    assert overlap["test_texts_in_train_with_other_label"] > 0
    assert overlap["train_rows_removed"] >= overlap["test_texts_in_train"]
    assert not set(prepared.train["text"]) & set(prepared.test["text"])
    assert prepared.report.findings["rows_with_mojibake"] > 100
    assert not all_rows(prepared)["text"].str.contains("ðŸ", regex=False).any()
    assert prepared.labels == ["not-hate", "hate"]


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_data_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "airline-smoke"
    exit_code = cli.main(
        ["data", "--config", str(AIRLINE_CONFIG), "--config", str(SMOKE_CONFIG), "--set", NO_AUDIT, "--out", str(out)]
    )
    assert exit_code == 0
    stdout = capsys.readouterr().out
    assert stdout.startswith("# Cleaning report: ")
    assert "| exact_duplicates | 14640 | 36 | 36 |" in stdout
    prepared = read_prepared(out)
    assert prepared.report.split_sizes == {"train": 400, "validation": 400, "test": 400}
    assert load_config([out / "config.yaml"]).data.max_rows == 400


def test_cli_data_bad_input_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = cli.main(
        ["data", "--config", str(AIRLINE_CONFIG), "--set", "data.source=nowhere/Tweets.csv", "--out", str(tmp_path)]
    )
    assert exit_code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    error_lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(error_lines) == 1
    assert "ERROR tweet_classifier.cli: data file not found: " in error_lines[0]
    assert "nowhere/Tweets.csv" in error_lines[0]


def test_cli_data_default_out_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_csv(tmp_path, tiny_rows())
    config_path = tmp_path / "tiny.yaml"
    config_path.write_text(make_config(tmp_path / "tweets.csv").to_yaml(), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["data", "--config", str(config_path)]) == 0
    assert (tmp_path / "outputs" / "data" / "tiny" / "train.parquet").is_file()
    capsys.readouterr()
