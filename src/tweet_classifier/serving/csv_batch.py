"""CSV batches: an uploaded file read with checks that say what to fix, and a result file safe to open.

The upload is parsed row by row (shape and cell sizes checked as it is read); the download quotes every
field and neutralizes every line a spreadsheet would run as a formula (OWASP "CSV injection").
"""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.serving.errors import BadRequestError

# A line of a cell starting with one of these, after any leading whitespace, is run as a formula by
# spreadsheets (OWASP "CSV injection"), full-width forms included; a tab or carriage return at the
# very start of a line counts too.
FORMULA_SIGNS = ("=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20")
FORMULA_CONTROLS = ("\t", "\r")


def neutralize_formula(value: object) -> object:
    """Prefix ``'`` to every line of a text cell that a spreadsheet would run as a formula.

    Lines, because a reader that splits rows on any line break (``\r`` alone, or what
    ``str.splitlines`` splits on) would otherwise start a row with the rest of the cell. Other values
    pass unchanged.
    """
    if not isinstance(value, str) or not value:
        return value
    lines = value.splitlines(keepends=True)
    return "".join("'" + line if _runs_as_formula(line) else line for line in lines)


def _runs_as_formula(line: str) -> bool:
    return line.startswith(FORMULA_CONTROLS) or line.lstrip().startswith(FORMULA_SIGNS)


@dataclass
class CsvResult:
    """A classified upload: the file to download, its preview and, with labels, its metrics."""

    output_path: Path
    preview: pd.DataFrame
    n_rows: int
    n_invalid: int
    report: dict[str, Any] | None
    n_scored: int = 0
    n_unknown_labels: int = 0


def read_upload_csv(
    path: str | Path, max_bytes: int, max_rows: int, max_columns: int = 64, max_cell_chars: int = 10_000
) -> pd.DataFrame:
    """An uploaded CSV as strings, after size, encoding and shape checks that say what to fix.

    The file is parsed row by row with the ``csv`` module: the column count and cell sizes of each
    row are checked as it is read, so a file of an unusual shape (hundreds of thousands of columns,
    one huge cell) is refused before the rest of it is read, and no parser guesses types.
    """
    source = Path(path)
    try:
        size = source.stat().st_size
    except FileNotFoundError:
        raise BadRequestError("the uploaded file is gone (it is deleted once classified): upload it again") from None
    if size > max_bytes:
        raise BadRequestError(f"the CSV is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB: split it")
    if size == 0:
        raise BadRequestError("the CSV is empty: upload a file with a header row and one text per row")
    header: list[str] | None = None
    rows: list[list[str]] = []
    try:
        with source.open(encoding="utf-8-sig", newline="") as stream:
            for row in csv.reader(stream, strict=True):
                if not row:
                    continue  # a blank line, as pandas skips them
                where = f"row {len(rows) + 1}" if header is not None else "the header"
                _check_upload_row(row, where, header, max_columns, max_cell_chars)
                if header is None:
                    header = _upload_header(row)
                    continue
                if len(rows) == max_rows:
                    raise BadRequestError(f"the CSV has more than {max_rows:,} rows: split it into smaller files")
                rows.append(row + [""] * (len(header) - len(row)))
    except UnicodeDecodeError:
        raise BadRequestError("the CSV is not UTF-8 text: save it as 'CSV UTF-8' and upload it again") from None
    except csv.Error as error:
        if "NUL" in str(error):
            raise BadRequestError("the file has NUL bytes, so it is not a CSV text file: upload a UTF-8 CSV") from None
        if "field larger than field limit" in str(error):
            raise BadRequestError(f"a cell is longer than {max_cell_chars:,} characters: shorten it") from None
        first = str(error).splitlines()[0][:120] if str(error) else type(error).__name__
        raise BadRequestError(f"the file is not a valid CSV ({first}): check quoting and the header") from None
    if header is None:
        raise BadRequestError("the CSV is empty: upload a file with a header row and one text per row")
    if not rows:
        raise BadRequestError("the CSV has a header but no rows: add one text per row")
    return pd.DataFrame(rows, columns=header, dtype=str)


def _check_upload_row(
    row: Sequence[str], where: str, header: Sequence[str] | None, max_columns: int, max_cell_chars: int
) -> None:
    if len(row) > max_columns:
        raise BadRequestError(f"{where} has {len(row):,} columns; the limit is {max_columns}: drop the extra columns")
    if header is not None and len(row) > len(header):
        raise BadRequestError(
            f"the file is not a valid CSV ({where} has {len(row)} fields, the header {len(header)}): "
            "check quoting and the header"
        )
    for cell in row:
        if len(cell) > max_cell_chars:
            raise BadRequestError(f"{where} has a cell of {len(cell):,} characters; the limit is {max_cell_chars:,}")
        if "\x00" in cell:
            raise BadRequestError("the file has NUL bytes, so it is not a CSV text file: upload a UTF-8 CSV")


def _upload_header(row: Sequence[str]) -> list[str]:
    names = [name.strip() for name in row]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise BadRequestError(f"the header names the column {name[:40]!r} twice: give every column its own name")
        seen.add(name)
    return names


def write_safe_csv(frame: pd.DataFrame, folder: Path | None = None) -> Path:
    """Write predictions for download with formula-looking lines neutralized (header included).

    Every field is quoted and rows end in CRLF (RFC 4180), so a line break inside a cell never ends
    a row for a ``csv`` reader or a spreadsheet. ``folder`` defaults to a new temporary folder.
    """
    safe = frame.map(neutralize_formula)
    safe.columns = [neutralize_formula(str(name)) for name in frame.columns]
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="tweet-classifier-batch-"))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "predictions.csv"
    safe.to_csv(path, index=False, encoding="utf-8", quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    return path


def text_column_of(frame: pd.DataFrame, text_column: str) -> str:
    """The name of the upload's text column (``text`` when none is given); says which columns exist if absent."""
    name = (text_column or "text").strip()
    if name not in frame.columns:
        columns = ", ".join(str(column)[:40] for column in list(frame.columns)[:20])
        raise BadRequestError(f"the CSV has no column {name[:40]!r} (columns: {columns}): name the text column")
    return name


def prediction_frame(
    frame: pd.DataFrame, predictions: Mapping[int, Any], labels: Sequence[str], errors: Sequence[str]
) -> pd.DataFrame:
    """The upload with the model's columns added: ``predicted_label``, ``score_<label>`` (6 decimals),
    ``needs_review`` and ``error``; ``predictions`` maps a row position to its prediction (rows without one
    keep empty cells and say why in ``error``)."""
    output = frame.copy()
    rows = range(len(frame))
    output["predicted_label"] = [predictions[row].label if row in predictions else "" for row in rows]
    for label in labels:
        output[f"score_{label}"] = [
            round(float(predictions[row].scores[label]), 6) if row in predictions else None for row in rows
        ]
    output["needs_review"] = [bool(predictions[row].needs_review) if row in predictions else None for row in rows]
    output["error"] = list(errors)
    return output


def labelled_report(
    frame: pd.DataFrame, label_column: str, predictions: Mapping[int, Any], labels: Sequence[str]
) -> tuple[dict[str, Any] | None, int, int]:
    """With a label column: the metrics of the predicted rows whose label the model knows, how many rows
    that is, and how many predicted rows carry a label it does not know. ``(None, 0, 0)`` without one."""
    if not label_column or label_column not in frame.columns:
        return None, 0, 0
    known = set(labels)
    pairs = []
    for row, prediction in sorted(predictions.items()):
        truth = str(frame[label_column].iloc[row]).strip()
        if truth in known:
            pairs.append((truth, prediction.label))
    unknown = len(predictions) - len(pairs)
    if not pairs:
        return None, 0, unknown
    report = classification_report_dict([truth for truth, _ in pairs], [guess for _, guess in pairs], labels)
    return report, len(pairs), unknown
