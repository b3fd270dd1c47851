"""Reading ``predict``'s input in chunks: a CSV/TSV/JSONL/parquet file, a Hub-layout folder or a Hub
dataset id, ``chunk_rows`` rows at a time, so memory stays flat in the input size."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.hub_client import is_repo_id
from tweet_classifier.inference.bulk.formats import FORMATS, BulkError


@dataclass
class Source:
    """Where rows come from: ``chunks()`` yields DataFrames of at most ``chunk_rows`` rows, in input order."""

    description: str
    fingerprint: dict[str, Any]
    chunks: Callable[[int], Iterator[pd.DataFrame]]
    total_rows: int | None = None
    file_format: str | None = None


def open_source(
    name: str,
    input_format: str = "auto",
    text_column: str = "text",
    encoding: str = "utf-8",
    subset: str | None = None,
    split: str | None = None,
) -> Source:
    """A file (by suffix or ``input_format``), a Hub-layout folder or a Hub dataset id."""
    path = Path(name).expanduser()
    if path.is_dir() or input_format == "hub" or (not path.exists() and is_repo_id(name, namespace=False)):
        return _dataset_source(name, subset, split)
    file_format = input_format if input_format != "auto" else FORMATS.get(path.suffix.lower())
    if not path.is_file():
        raise BulkError(f"input not found: {path}: pass an existing file, a dataset folder or a Hub dataset id")
    if file_format is None:
        raise BulkError(
            f"unsupported input format {path.suffix or '(no suffix)'!r} for {path}: use one of "
            f"{', '.join(sorted(FORMATS))} or pass --input-format (csv, tsv, jsonl, parquet)"
        )
    try:
        "".encode(encoding)
    except LookupError:
        raise BulkError(f"unknown encoding --encoding {encoding!r}: use e.g. utf-8, latin-1 or mac_roman") from None
    stat = path.stat()
    fingerprint = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    readers: dict[str, Callable[[int], Iterator[pd.DataFrame]]] = {
        "csv": lambda rows: _csv_chunks(path, ",", encoding, text_column, rows),
        "tsv": lambda rows: _csv_chunks(path, "\t", encoding, text_column, rows),
        "jsonl": lambda rows: _jsonl_chunks(path, encoding, text_column, rows),
        "parquet": lambda rows: _parquet_chunks(path, rows),
    }
    total = _parquet_rows(path) if file_format == "parquet" else None
    return Source(str(path), fingerprint | {"format": file_format}, readers[file_format], total, file_format)


def _csv_chunks(path: Path, separator: str, encoding: str, text_column: str, rows: int) -> Iterator[pd.DataFrame]:
    try:
        # Only truly empty cells are missing (a tweet reading "NA" is text), as in `data`'s reader.
        reader = pd.read_csv(
            path,
            sep=separator,
            # object, not pandas' Arrow strings: those refuse the surrogates that stand for undecodable bytes.
            dtype=object,
            keep_default_na=False,
            na_values=[""],
            chunksize=rows,
            encoding=encoding,
            encoding_errors="surrogateescape",
        )
        with reader:
            for chunk in reader:
                require_column(chunk, text_column, path)
                yield chunk
    except pd.errors.EmptyDataError:
        raise BulkError(f"{path} is empty: pass a file with a header line and rows") from None
    except pd.errors.ParserError as error:
        detail = str(error).strip().splitlines()[-1]
        raise BulkError(
            f"{path} is not well-formed ({detail}): fix the quoting/column count on that line and run the same "
            "command again (the rows scored so far are kept)"
        ) from None


def _jsonl_chunks(path: Path, encoding: str, text_column: str, rows: int) -> Iterator[pd.DataFrame]:
    """One JSON object per line; a line that is not valid JSON or not an object becomes an error row."""
    records: list[dict[str, Any]] = []
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            line = raw_line.decode(encoding, errors="surrogateescape").rstrip("\r\n")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                problem = None if isinstance(record, dict) else f"a JSON {type(record).__name__}, not an object"
            except json.JSONDecodeError as error:
                problem = f"not valid JSON ({error.msg})"
            if problem is not None:
                # The line itself stands in for the text, so the output keeps it.
                record = {text_column: line, "_line_error": f"line {number} is {problem}: write one object per line"}
            records.append(record)
            if len(records) == rows:
                yield pd.DataFrame.from_records(records)
                records = []
    if records:
        yield pd.DataFrame.from_records(records)


def _parquet_rows(path: Path) -> int:
    # pyarrow only for parquet input (pandas loads it lazily too): CSV/JSONL runs never import it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowInvalid, OSError) as error:
        raise BulkError(f"{path} is not a readable parquet file ({error}): re-export it") from None


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq  # parquet input only, as in _parquet_rows

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def _dataset_source(name: str, subset: str | None, split: str | None) -> Source:
    import datasets  # Hub datasets only: `datasets` costs seconds to import, files never need it

    try:
        loaded = datasets.load_dataset(name, subset)
    except Exception as error:  # datasets raises many types (ConnectionError, ValueError, FileNotFoundError...)
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise BulkError(
            f"could not load dataset {name} (subset {subset!r}): {type(error).__name__}: {first_line}. "
            "Check the id or folder and --subset, or allow network access to the Hub"
        ) from None
    splits = list(loaded)
    if split is None and len(splits) == 1:
        split = splits[0]
    if split not in loaded:
        raise BulkError(f"dataset {name} has splits {', '.join(splits)}: pass one of them with --split")
    dataset = loaded[split]

    def chunks(rows: int) -> Iterator[pd.DataFrame]:
        # Arrow batches from the memory-mapped cache: only one chunk is ever in Python objects.
        for batch in dataset.iter(batch_size=rows):
            yield pd.DataFrame(batch)

    fingerprint = {"dataset": name, "subset": subset, "split": split, "fingerprint": dataset._fingerprint}
    return Source(f"{name} ({split})", fingerprint, chunks, len(dataset))


def require_column(frame: pd.DataFrame, text_column: str, where: object) -> None:
    if text_column not in frame.columns:
        raise BulkError(
            f"{where} has no column {text_column!r} (columns: {', '.join(map(str, frame.columns))}): "
            "pass --text-column with the column that holds the text"
        )
