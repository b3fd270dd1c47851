"""readers.py and the id checks: delimited files of every shape, encoding detection, errors that name the
line and the key, and an id column a spreadsheet mangled."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.data.test_data import LABELS, all_rows, make_config, tiny_rows, write_csv
from tweet_classifier.config import ConfigError, DataConfig
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.readers import DataError, read_data_file

# The report's "reading" section for a headerless TSV read with quotes as ordinary characters.
HEADERLESS_TSV_READING = {
    "format": "tsv",
    "encoding": "utf-8",
    "encoding_detected": False,
    "delimiter": "\t",
    "header": False,
    "quoting": "none",
}


def headerless_tsv(tmp_path: Path, name: str = "corpus") -> Path:
    """label TAB text, no header, texts with unbalanced '"' (the SMS-corpus layout), no suffix."""
    lines = [f'{LABELS[index % 3]}\t"quoted start {index} and no end\n' for index in range(12)]
    lines += [f'{LABELS[index % 3]}\tplain text {index} 5" screen\n' for index in range(12, 30)]
    path = tmp_path / name
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_headerless_tsv_with_unbalanced_quotes(tmp_path: Path) -> None:
    path = headerless_tsv(tmp_path)
    data = {"format": "tsv", "header": False, "column_names": ["label", "text"], "quoting": "none"}
    prepared = prepare_data(make_config(path, data=data))
    rows = all_rows(prepared)
    assert len(rows) == 30
    assert '"quoted start 0 and no end' in set(rows["raw_text"])
    assert prepared.report.reading == HEADERLESS_TSV_READING
    assert "Read as: tsv, encoding utf-8, delimiter '\\t', no header row, quoting none." in (
        prepared.report.to_markdown()
    )


def test_suffix_less_file_needs_a_format(tmp_path: Path) -> None:
    path = headerless_tsv(tmp_path)
    with pytest.raises(DataError, match=r"unsupported data file format '\(no suffix\)'.*set data.format"):
        prepare_data(make_config(path, data={"header": False, "column_names": ["label", "text"]}))


def test_unbalanced_quotes_error_names_the_line_and_the_keys(tmp_path: Path) -> None:
    path = tmp_path / "corpus.tsv"
    path.write_text('label\ttext\nham\tfine\nspam\tbad "quote\tand\ttabs\nham\tlast\n', encoding="utf-8")
    with pytest.raises(DataError) as error:
        prepare_data(make_config(path, data={"labels": ["ham", "spam"]}))
    assert str(error.value) == (
        f"{path} line 3 ('spam\\tbad \"quote\\tand\\ttabs') cannot be parsed as tsv (Expected 2 fields in line 3, "
        "saw 4): set data.quoting: none if '\"' in the texts is an ordinary character; or data.delimiter if the "
        "columns are not separated by '\\t'; or data.header: false with data.column_names if the first line is data"
    )


def test_semicolon_delimiter_and_renamed_header(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    pd.DataFrame(tiny_rows()).to_csv(path, index=False, sep=";")
    data = {"delimiter": ";", "column_names": ["tweet_id", "body", "sentiment"], "text_column": "body"}
    prepared = prepare_data(make_config(path, data={**data, "label_column": "sentiment"}))
    assert len(all_rows(prepared)) == 30
    assert prepared.report.columns == ["tweet_id", "body", "sentiment"]


FRENCH = [
    "Le vol était en retard, très déçu du service à bord",
    "Merci à l'équipage, c'était génial !",
    "Où est passée ma valise ? Aucune réponse depuis hier",
    "Très bon accueil à l'aéroport, personnel aimable",
    "Le café était froid et le siège cassé, quelle déception",
]


def test_encoding_auto_detects_and_reports(tmp_path: Path) -> None:
    rows = [{**row, "text": f"{FRENCH[index % 5]} {index}"} for index, row in enumerate(tiny_rows())]
    path = tmp_path / "latin.csv"
    pd.DataFrame(rows).to_csv(path, index=False, encoding="cp1252")
    with pytest.raises(DataError, match=r"is not valid utf-8 .*or data.encoding=auto to detect it"):
        prepare_data(make_config(path))
    prepared = prepare_data(make_config(path, data={"encoding": "auto"}))
    reading = prepared.report.reading
    assert reading["encoding_detected"] is True
    assert len(reading["encoding_alternatives"]) > 0
    # Any single-byte encoding decodes these bytes, and on 30 short lines charset-normalizer does not always
    # rank cp1252 first: the report names its choice (and the runners-up) so a user can pin data.encoding.
    assert len(all_rows(prepared)) == 30
    assert path.read_bytes().decode(reading["encoding"]).count("\n") == 31
    assert f"encoding {reading['encoding']} (detected by charset-normalizer" in prepared.report.to_markdown()


def test_encoding_auto_on_utf8_and_on_empty_files(tmp_path: Path) -> None:
    path = write_csv(tmp_path, [{**row, "text": row["text"] + " 😀 naïve"} for row in tiny_rows()])
    frame, info = read_data_file(path, DataConfig(source=str(path), encoding="auto"))
    assert info.encoding == "utf_8"
    assert frame["text"].str.contains("😀 naïve").all()
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        read_data_file(empty, DataConfig(source=str(empty), encoding="auto"))


def test_delimited_keys_are_refused_for_other_formats(tmp_path: Path) -> None:
    path = tmp_path / "tweets.jsonl"
    path.write_text('{"text": "a", "label": "neutral"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"data.delimiter, data.quoting only apply to csv/tsv files, but .* jsonl"):
        prepare_data(make_config(path, data={"delimiter": ";", "quoting": "none"}))
    hub = make_config("tweet_eval", data={"format": "hub", "header": False, "column_names": ["a", "b"]})
    with pytest.raises(DataError, match=r"data.header, data.column_names only apply to csv/tsv files"):
        prepare_data(hub)


def test_reading_keys_are_checked_by_the_config() -> None:
    with pytest.raises(ConfigError, match=r"data.header is false: name the columns in data.column_names"):
        make_config("x.tsv", data={"header": False})
    with pytest.raises(ConfigError, match=r"data.column_names has repeated names"):
        make_config("x.tsv", data={"column_names": ["text", "text"]})
    with pytest.raises(ConfigError, match=r"data.delimiter"):
        make_config("x.tsv", data={"delimiter": "||"})


# ---------------------------------------------------------------------------------------------- id sanity


def test_ids_in_scientific_notation_are_not_used_for_dedup(tmp_path: Path) -> None:
    rows = [{**row, "id": "5.70E+17"} for row in tiny_rows()]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows), data={"id_column": "id"}))
    assert len(all_rows(prepared)) == 30
    sanity = prepared.report.step("id_sanity")
    assert sanity.rows_touched == 30
    assert sanity.description == (
        "id column 'id': 30 of 30 values in scientific notation, 1 distinct (minimum 0.5 x rows): "
        "mangled: not used for de-duplication"
    )
    assert not prepared.report.step("repeated_ids").enabled
    assert prepared.report.step("id_conflicts").description.endswith("(skipped: the id column is mangled)")


def test_ids_with_few_distinct_values_are_mangled(tmp_path: Path) -> None:
    rows = [{**row, "id": str(index % 3)} for index, row in enumerate(tiny_rows())]
    prepared = prepare_data(make_config(write_csv(tmp_path, rows), data={"id_column": "id"}))
    assert len(all_rows(prepared)) == 30
    assert "3 distinct (minimum 0.5 x rows): mangled" in prepared.report.step("id_sanity").description
    healthy = prepare_data(make_config(write_csv(tmp_path, tiny_rows()), data={"id_column": "id"}))
    assert healthy.report.step("id_sanity").description.endswith("30 distinct (minimum 0.5 x rows): usable")
    assert healthy.report.step("repeated_ids").enabled


def test_a_step_that_removes_every_row_is_named(tmp_path: Path) -> None:
    rows = [{**row, "id": "1"} for row in tiny_rows()]
    config = make_config(
        write_csv(tmp_path, rows), data={"id_column": "id"}, cleaning={"id_min_distinct_fraction": 0.0}
    )
    with pytest.raises(DataError) as error:
        prepare_data(config)
    assert str(error.value) == (
        "cleaning step 'id_conflicts' removed every row (30 in, 30 removed: rows sharing an id with different "
        "labels: drop): check data.id_column, or set cleaning.id_conflicts: keep_first or off"
    )
