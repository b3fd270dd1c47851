"""Read one labelled-text file (csv, tsv, jsonl, parquet) as the data config describes it.

``read_data_file(path, data_config)`` is the one reader every command uses (``data.prepare_data``, bulk
prediction): it returns the raw frame, every cell a string or missing, plus ``ReadInfo`` saying how the
file was read (format, encoding and whether it was detected, delimiter, header, quoting), which the
cleaning report carries. Errors are ``DataError`` naming the line and the ``data.*`` key to set.

``data.encoding: auto`` asks charset-normalizer (the maintained detector ``requests`` also uses) for the
most likely encoding of the file's bytes; the report names the choice and the runners-up, because a
detector can only rank encodings: single-byte encodings decode any bytes, and e.g. mac_roman and cp852
both read a mostly-ASCII file without a single error.
"""

from __future__ import annotations

import csv
import itertools
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from tweet_classifier.config import DataConfig
from tweet_classifier.errors import TweetClassifierError

FILE_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
DELIMITED_FORMATS = ("csv", "tsv")
_DEFAULT_DELIMITERS = {"csv": ",", "tsv": "\t"}
_QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
# Runners-up of the encoding detector named in the report.
_ENCODING_ALTERNATIVES = 4
# Characters of an offending line quoted in a parse error.
_LINE_EXCERPT_CHARS = 80


class DataError(TweetClassifierError):
    """The dataset cannot be loaded or used as configured; the message says what to change."""


@dataclass(frozen=True)
class ReadInfo:
    """How a file was read; ``to_dict()`` goes into the cleaning report's ``reading`` section."""

    format: str
    encoding: str | None = None
    encoding_detected: bool = False
    encoding_alternatives: list[str] = field(default_factory=list)
    delimiter: str | None = None
    header: bool | None = None
    quoting: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value not in (None, [])}


def file_format(path: Path, data: DataConfig) -> str:
    """The configured format, or the one the suffix names; a suffix-less file needs ``data.format``."""
    if data.format not in ("auto", "hub"):
        return data.format
    found = FILE_FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataError(
            f"unsupported data file format {path.suffix or '(no suffix)'!r} for {path}: "
            f"use one of {', '.join(sorted(FILE_FORMATS))} or set data.format (csv, tsv, jsonl, parquet)"
        )
    return found


def read_data_file(path: Path, data: DataConfig) -> tuple[pd.DataFrame, ReadInfo]:
    """Read ``path`` as ``data`` says (format, encoding, delimiter, header, column names, quoting)."""
    found = file_format(path, data)
    if found not in DELIMITED_FORMATS:
        refuse_delimited_keys(str(path), data, found)
    if found == "parquet":
        return _read_parquet(path), ReadInfo(format="parquet")
    encoding, detected, alternatives = _resolve_encoding(path, data.encoding)
    if found == "jsonl":
        frame = _read_jsonl(path, encoding)
        return frame, ReadInfo("jsonl", encoding, detected, alternatives)
    delimiter = data.delimiter or _DEFAULT_DELIMITERS[found]
    frame = _read_delimited(path, data, found, encoding, delimiter)
    return frame, ReadInfo(found, encoding, detected, alternatives, delimiter, data.header, data.quoting)


def refuse_delimited_keys(where: str, data: DataConfig, found: str) -> None:
    """The csv/tsv keys are an error for other formats (never validated and then ignored)."""
    used = [
        key
        for key, is_set in (
            ("data.delimiter", data.delimiter is not None),
            ("data.header", not data.header),
            ("data.column_names", data.column_names is not None),
            ("data.quoting", data.quoting != "minimal"),
        )
        if is_set
    ]
    if used:
        raise DataError(f"{', '.join(used)} only apply to csv/tsv files, but {where} is read as {found}: remove them")


def detect_encoding(raw: bytes) -> tuple[str, list[str]]:
    """charset-normalizer's most likely encoding of ``raw`` and its next candidates."""
    # Start-up time: the detector loads only for a file whose encoding is not given.
    from charset_normalizer import from_bytes

    matches = list(from_bytes(raw))
    if not matches:
        raise ValueError("no candidate encoding")
    names = [match.encoding for match in matches]
    return names[0], names[1 : 1 + _ENCODING_ALTERNATIVES]


def _resolve_encoding(path: Path, encoding: str) -> tuple[str, bool, list[str]]:
    if encoding != "auto":
        return encoding, False, []
    raw = path.read_bytes()
    if not raw:
        raise DataError(f"{path} is empty: point data.source at a file with a header and rows")
    try:
        best, alternatives = detect_encoding(raw)
    except ValueError:
        raise DataError(
            f"could not detect the encoding of {path} (it may be binary): set data.encoding, e.g. utf-8 or latin-1"
        ) from None
    return best, True, alternatives


def _encoding_hint(path: Path, encoding: str, error: UnicodeDecodeError) -> DataError:
    return DataError(
        f"{path} is not valid {encoding} (byte {error.object[error.start : error.start + 1]!r} at offset "
        f"{error.start}): set data.encoding to the file's encoding, e.g. --set data.encoding=latin-1, "
        "or data.encoding=auto to detect it"
    )


def _unknown_encoding(encoding: str) -> DataError:
    return DataError(f"unknown encoding data.encoding={encoding!r}: use e.g. utf-8, latin-1, mac_roman or auto")


def _read_delimited(path: Path, data: DataConfig, found: str, encoding: str, delimiter: str) -> pd.DataFrame:
    try:
        return pd.read_csv(
            path,
            sep=delimiter,
            header=0 if data.header else None,
            names=data.column_names,
            # Never turn leading fields into an index when a row is wider than the names: that is an error.
            index_col=False,
            quoting=_QUOTING[data.quoting],
            encoding=encoding,
            dtype=str,
            # Only truly empty cells are missing: a tweet reading "NA" or "null" is text.
            keep_default_na=False,
            na_values=[""],
        )
    except UnicodeDecodeError as error:
        raise _encoding_hint(path, encoding, error) from None
    except LookupError:
        raise _unknown_encoding(encoding) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: point data.source at a file with a header and rows") from None
    except pd.errors.ParserError as error:
        raise _parse_error(path, data, found, encoding, delimiter, str(error)) from None


def _parse_error(path: Path, data: DataConfig, found: str, encoding: str, delimiter: str, message: str) -> DataError:
    """The parser's complaint as a message naming the line and the keys that usually fix it."""
    detail = message.strip().splitlines()[-1].removeprefix("Error tokenizing data. C error: ")
    fixes = []
    if data.quoting != "none":
        fixes.append("data.quoting: none if '\"' in the texts is an ordinary character")
    fixes.append(f"data.delimiter if the columns are not separated by {delimiter!r}")
    if data.header:
        fixes.append("data.header: false with data.column_names if the first line is data")
    where = ""
    line_number = _line_number(detail)
    if line_number is not None:
        line = _physical_line(path, encoding, line_number)
        where = f" line {line_number}" + (f" ({line[:_LINE_EXCERPT_CHARS]!r})" if line is not None else "")
    return DataError(f"{path}{where} cannot be parsed as {found} ({detail}): set {'; or '.join(fixes)}")


def _line_number(detail: str) -> int | None:
    """The 1-based file line in pandas' message: "in line 12" is 1-based, "starting at row 2" 0-based."""
    words = detail.replace(",", " ").split()
    for before, word in itertools.pairwise(words):
        if before in ("line", "row") and word.isdigit():
            return int(word) + (before == "row")
    return None


def _physical_line(path: Path, encoding: str, number: int) -> str | None:
    try:
        with path.open(encoding=encoding, errors="replace", newline="") as lines:
            for position, line in enumerate(lines, start=1):
                if position == number:
                    return line.rstrip("\r\n")
    except (OSError, LookupError):
        return None
    return None


def _read_jsonl(path: Path, encoding: str) -> pd.DataFrame:
    try:
        lines = path.read_text(encoding=encoding).splitlines()
    except UnicodeDecodeError as error:
        raise _encoding_hint(path, encoding, error) from None
    except LookupError:
        raise _unknown_encoding(encoding) from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path} line {number} is not valid JSON ({error.msg}): write one JSON object per line"
            ) from None
        if not isinstance(record, dict):
            raise DataError(
                f"{path} line {number} is a JSON {type(record).__name__}, not an object: "
                'write one object per line, e.g. {"text": "...", "label": "..."}'
            )
        records.append(record)
    return pd.DataFrame.from_records(records)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, OSError) as error:
        raise DataError(f"{path} is not a readable parquet file ({error}): re-export it or set data.format") from None
