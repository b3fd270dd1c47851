"""``tweet-classifier predict``: score a file or a Hub dataset in chunks, resumable after a kill.

Input: CSV, TSV, JSONL or parquet (by suffix, or ``--input-format``), a Hub-layout dataset folder or a
Hub dataset id (``datasets.load_dataset``, one ``--split``). Output: the same rows in the same order, in
the format of ``--output``'s suffix, with every input column plus ``label``, one ``prob_<label>`` column
per class (manifest order), ``model_version`` and ``error``. A row that cannot be scored (empty, over the
character cap, not valid in ``--encoding``, not a string) keeps its place with an empty label and the
reason in ``error``; the counts are logged at the end. The output always has as many rows as were read.

Memory stays flat in the input size: the input is read ``--chunk-rows`` rows at a time (pandas' chunked
CSV reader, parquet row batches, the dataset's Arrow batches, JSONL line by line) and each scored chunk
goes to disk before the next is read.

**Resume.** The output is built in ``OUTPUT.parts/``: ``run.json`` (what is being scored: the input's
path, size and mtime or the dataset's fingerprint, the model version, backend and every option that
changes a row) is written once, then one ``part-NNNNNN`` file per chunk, each written under a temporary
name and renamed, so a part that exists is complete. A run started again with the same options counts the
parts already there, skips that many chunks of input and goes on; when the input ends, the parts are
joined into ``OUTPUT`` (temporary name + rename) and the folder is removed. After ``kill -9`` at any
moment no row is lost or written twice. Chunk boundaries are multiples of ``--chunk-rows`` from the first
row, so a resumed run scores exactly the batches an uninterrupted one would: ONNX Runtime's dynamic int8
picks activation scales per batch, and this keeps its probabilities bit-identical too. Parts plus a
manifest rather than appending to one file: an append cut off mid-row would need a repair step, a rename
never leaves half a row.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.hub_client import is_repo_id

logger = logging.getLogger(__name__)

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
# Bytes the input encoding cannot decode are read as these lone surrogates (errors="surrogateescape"):
# the row is reported as undecodable and the same bytes are written back to a CSV/TSV/JSONL output.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
RUN_NAME = "run.json"
RUN_FORMAT_VERSION = 1
PARTS_SUFFIX = ".parts"
# 4,096 rows per chunk: the length sort inside a chunk leaves 1-2% padding at batch 32 (1,024 rows leave
# 3-4%), and a chunk of tweets with its columns is a few MB.
DEFAULT_CHUNK_ROWS = 4096
# Error kinds, in the order the summary lists them.
ERROR_KINDS = ("empty", "too_long", "undecodable", "not_text", "invalid")


class BulkError(TweetClassifierError):
    """The input, the output or a previous run's parts cannot be used as asked."""


@dataclass
class Source:
    """Where rows come from: ``chunks()`` yields DataFrames of at most ``chunk_rows`` rows, in input order."""

    description: str
    fingerprint: dict[str, Any]
    chunks: Callable[[int], Iterator[pd.DataFrame]]
    total_rows: int | None = None
    file_format: str | None = None


@dataclass
class Summary:
    rows: int = 0
    scored: int = 0
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_KINDS, 0))
    resumed_rows: int = 0
    seconds: float = 0.0

    @property
    def texts_per_s(self) -> float:
        return (self.rows - self.resumed_rows) / self.seconds if self.seconds > 0 else 0.0


# Scores a list of chunks and yields them in order, each one's counts added to the summary before it is yielded.
ScoreChunks = Callable[[list[pd.DataFrame], Summary], Iterator[pd.DataFrame]]


# --------------------------------------------------------------------------------------------------
# Reading


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
                _require_column(chunk, text_column, path)
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
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (pa.ArrowInvalid, OSError) as error:
        raise BulkError(f"{path} is not a readable parquet file ({error}): re-export it") from None


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def _dataset_source(name: str, subset: str | None, split: str | None) -> Source:
    import datasets

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


def _require_column(frame: pd.DataFrame, text_column: str, where: object) -> None:
    if text_column not in frame.columns:
        raise BulkError(
            f"{where} has no column {text_column!r} (columns: {', '.join(map(str, frame.columns))}): "
            "pass --text-column with the column that holds the text"
        )


# --------------------------------------------------------------------------------------------------
# Scoring


@dataclass(frozen=True)
class OutputColumns:
    """The names of the columns ``predict`` adds (``prefix`` avoids clashes with the input's own)."""

    labels: tuple[str, ...]
    prefix: str = ""

    @property
    def label(self) -> str:
        return f"{self.prefix}label"

    def probability(self, label: str) -> str:
        return f"{self.prefix}prob_{label}"

    @property
    def model_version(self) -> str:
        return f"{self.prefix}model_version"

    @property
    def error(self) -> str:
        return f"{self.prefix}error"

    def names(self) -> list[str]:
        return [self.label, *map(self.probability, self.labels), self.model_version, self.error]


def check_text(predictor: Any, text: object, encoding: str) -> tuple[str | None, str | None]:
    """``(kind, message)`` of why ``text`` cannot be scored; ``(None, None)`` when it can."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return "empty", "text is empty (missing cell): put the tweet in the text column"
    if isinstance(text, str) and _ESCAPED_BYTE.search(text):
        byte = ord(_ESCAPED_BYTE.search(text).group()) - 0xDC00  # type: ignore[union-attr]
        return "undecodable", (
            f"text is not valid {encoding} (byte 0x{byte:02x}): pass --encoding with the file's encoding or fix the row"
        )
    try:
        predictor.normalize(text)
    except TweetClassifierError as error:
        if not isinstance(text, str):
            return "not_text", str(error)
        if len(text) > predictor.max_chars:
            return "too_long", str(error)
        return ("empty" if not text.strip() else "invalid"), str(error)
    return None, None


def score_frame(
    predictor: Any, frame: pd.DataFrame, text_column: str, columns: OutputColumns, encoding: str, summary: Summary
) -> pd.DataFrame:
    """``frame`` with the prediction columns added; bad rows get ``error`` and no label."""
    texts = frame[text_column].tolist()
    line_errors = frame.pop("_line_error").tolist() if "_line_error" in frame.columns else [None] * len(texts)
    errors: list[str | None] = []
    valid: list[int] = []
    for position, (text, line_error) in enumerate(zip(texts, line_errors, strict=True)):
        if isinstance(line_error, str):
            kind, message = "invalid", line_error
        else:
            kind, message = check_text(predictor, text, encoding)
        if kind is None:
            valid.append(position)
        else:
            summary.errors[kind] += 1
        errors.append(message)
    predictions = predictor.predict_batch([texts[position] for position in valid]) if valid else []
    labels: list[str | None] = [None] * len(texts)
    probabilities = {label: [math.nan] * len(texts) for label in columns.labels}
    for position, prediction in zip(valid, predictions, strict=True):
        labels[position] = prediction.label
        for label in columns.labels:
            probabilities[label][position] = prediction.scores[label]
    scored = frame.copy()
    scored[columns.label] = labels
    for label in columns.labels:
        scored[columns.probability(label)] = probabilities[label]
    scored[columns.model_version] = predictor.model_version
    scored[columns.error] = errors
    summary.rows += len(texts)
    summary.scored += len(valid)
    return scored


# --------------------------------------------------------------------------------------------------
# Writing


def write_part(frame: pd.DataFrame, path: Path, file_format: str) -> None:
    """One chunk, under a temporary name then renamed: a part file that exists is complete."""
    temporary = path.with_name(f".{path.name}.tmp")
    if file_format in _SEPARATORS:
        # No header: the join writes it once. Undecodable input bytes go back out unchanged.
        frame.to_csv(temporary, sep=_SEPARATORS[file_format], index=False, header=False, errors="surrogateescape")
    elif file_format == "jsonl":
        with temporary.open("wb") as handle:
            for record in frame.astype(object).where(frame.notna(), None).to_dict("records"):
                line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
                handle.write(line.encode("utf-8", errors="surrogateescape"))
    else:
        mixed = [
            name
            for name in frame.select_dtypes(include=["object", "string"]).columns
            if any(isinstance(value, str) for value in frame[name])
        ]
        # Parquet strings must be valid UTF-8: an undecodable byte becomes U+FFFD (its row says why).
        cleaned = frame.assign(**{name: frame[name].map(_parquet_cell) for name in mixed})
        cleaned.to_parquet(temporary, index=False)
    with temporary.open("rb+") as handle:
        os.fsync(handle.fileno())
    temporary.replace(path)


def _parquet_cell(value: Any) -> Any:
    """A text-column cell parquet can hold: valid UTF-8, and a string where the column mixes types (a
    JSONL ``{"text": 5}`` row says why it was not scored; its value is written as the JSON ``5``)."""
    if isinstance(value, str):
        return _ESCAPED_BYTE.sub("\ufffd", value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return json.dumps(value, default=str)


def join_parts(parts: list[Path], header: list[str], output: Path, file_format: str) -> None:
    """The parts, in order, as one file (temporary name + rename); one part in memory at a time."""
    temporary = output.with_name(f".{output.name}.tmp")
    if file_format == "parquet":
        _join_parquet(parts, temporary)
    else:
        with temporary.open("wb") as handle:
            if file_format in _SEPARATORS:
                handle.write(pd.DataFrame(columns=header).to_csv(sep=_SEPARATORS[file_format], index=False).encode())
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, handle)
    temporary.replace(output)


def _join_parquet(parts: list[Path], target: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A column that is all-null in one chunk is typed null there: write every part in the unified schema.
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts], promote_options="permissive")
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).cast(schema))


# --------------------------------------------------------------------------------------------------
# The run


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + PARTS_SUFFIX)


def _completed_parts(folder: Path, file_format: str) -> list[Path]:
    """The consecutive parts already written (part-000000, part-000001, ...); stray temp files are ignored."""
    parts = []
    while (folder / _part_name(len(parts), file_format)).is_file():
        parts.append(folder / _part_name(len(parts), file_format))
    return parts


def _part_name(index: int, file_format: str) -> str:
    return f"part-{index:06d}.{file_format}"


def _start_or_resume(folder: Path, run: dict[str, Any]) -> None:
    """Write ``run.json`` for a new run, or check that the one there describes this same run."""
    manifest = folder / RUN_NAME
    if manifest.is_file():
        try:
            previous = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise BulkError(f"{manifest} is unreadable ({error}): delete {folder} to start over") from None
        changed = sorted(key for key in set(run) | set(previous) if run.get(key) != previous.get(key))
        if changed:
            raise BulkError(
                f"{folder} holds a run with other settings ({', '.join(changed)} differ): run the same command "
                f"to resume it, or delete {folder} to start over"
            )
        return
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(manifest, run)


def predict_file(
    predictor: Any,
    source: Source,
    output: Path,
    text_column: str = "text",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    limit: int | None = None,
    prefix: str = "",
    encoding: str = "utf-8",
    overwrite: bool = False,
    score_chunks: ScoreChunks | None = None,
    window: int = 1,
) -> Summary:
    """Score ``source`` into ``output`` (see the module docstring for the format and how resume works).

    ``score_chunks`` scores up to ``window`` chunks at a time and yields them in order, adding each one's
    counts to the summary just before yielding it (the Ray engine, ``bulk_ray``); the default scores one
    chunk at a time with ``predictor`` in this process.
    """
    output_format = FORMATS.get(output.suffix.lower())
    if output_format is None:
        raise BulkError(f"--output {output} has no known suffix: end it in one of {', '.join(sorted(FORMATS))}")
    folder = parts_folder(output)
    if output.exists() and not folder.exists():
        if not overwrite:
            raise BulkError(f"{output} exists: pass --overwrite to replace it, or choose another --output")
        output.unlink()
    columns = OutputColumns(tuple(predictor.labels), prefix)
    run = {
        "format_version": RUN_FORMAT_VERSION,
        "input": source.fingerprint,
        "model_version": predictor.model_version,
        "backend": predictor.backend_batch,
        "batch_size": predictor.batch_size,
        "max_chars": predictor.max_chars,
        "text_column": text_column,
        "chunk_rows": chunk_rows,
        "limit": limit,
        "prefix": prefix,
        "encoding": encoding,
        "output_format": output_format,
    }
    _start_or_resume(folder, run)
    parts = _completed_parts(folder, output_format)
    summary = _load_counts(folder, len(parts))
    summary.resumed_rows = summary.rows
    if parts:
        logger.info("resuming %s: %d chunks (%d rows) already scored", folder, len(parts), summary.rows)
    if score_chunks is None:

        def score_chunks(chunks: list[pd.DataFrame], counts: Summary) -> Iterator[pd.DataFrame]:
            for chunk in chunks:
                yield score_frame(predictor, chunk, text_column, columns, encoding, counts)

    total = min(source.total_rows, limit) if source.total_rows is not None and limit is not None else limit
    total = total if total is not None else source.total_rows
    header: list[str] | None = None
    pending: list[pd.DataFrame] = []
    started = time.perf_counter()
    with _progress(total, summary.rows) as progress:

        def write_scored(scored_chunks: Iterator[pd.DataFrame]) -> None:
            for scored in scored_chunks:
                index = len(parts)
                # Counts first, then the part: a counts file without its part is simply written again.
                write_json_atomic(folder / f"counts-{index:06d}.json", _counts(summary))
                write_part(scored, folder / _part_name(index, output_format), output_format)
                parts.append(folder / _part_name(index, output_format))
                progress.update(len(scored))
                summary.seconds = time.perf_counter() - started
                logger.info(
                    "%d rows done (%d errors), %.0f texts/s",
                    summary.rows,
                    sum(summary.errors.values()),
                    summary.texts_per_s,
                )

        for index, chunk in enumerate(_limited(source.chunks(chunk_rows), limit)):
            _require_column(chunk, text_column, source.description)
            clashes = sorted(set(columns.names()) & set(map(str, chunk.columns)))
            if clashes:
                raise BulkError(
                    f"{source.description} already has the column(s) {', '.join(clashes)} that predict adds: "
                    "pass --prefix (e.g. --prefix pred_) to name the new columns apart"
                )
            header = [*map(str, chunk.columns), *columns.names()]
            if index < len(parts):
                continue
            pending.append(chunk)
            if len(pending) == window:
                write_scored(score_chunks(pending, summary))
                pending = []
        if pending:
            write_scored(score_chunks(pending, summary))
    summary.seconds = time.perf_counter() - started
    if header is None:
        raise BulkError(f"{source.description} has no rows: nothing to score")
    join_parts(parts, header, output, output_format)
    shutil.rmtree(folder)
    return summary


def _limited(chunks: Iterator[pd.DataFrame], limit: int | None) -> Iterator[pd.DataFrame]:
    remaining = limit
    for chunk in chunks:
        if remaining is not None:
            if remaining <= 0:
                return
            chunk = chunk.iloc[:remaining]
            remaining -= len(chunk)
        yield chunk


def _counts(summary: Summary) -> dict[str, Any]:
    return {"rows": summary.rows, "scored": summary.scored, "errors": summary.errors}


def _load_counts(folder: Path, completed: int) -> Summary:
    """The counts as of the last completed part (written just before that part was renamed into place)."""
    summary = Summary()
    if completed:
        path = folder / f"counts-{completed - 1:06d}.json"
        try:
            counts = json.loads(path.read_text(encoding="utf-8"))
            summary.rows, summary.scored = counts["rows"], counts["scored"]
            summary.errors.update(counts["errors"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BulkError(f"{path} is unreadable ({error}): delete {folder} to start over") from None
    return summary


def _progress(total: int | None, initial: int) -> Any:
    """tqdm on a terminal (its rate is texts/s); off otherwise, where the per-chunk log lines say the same."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="text", file=sys.stderr, disable=not sys.stderr.isatty())


# --------------------------------------------------------------------------------------------------
# Command line


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--revision", default=None, help="Hub revision of --model")
    parser.add_argument("--input", required=True, help="CSV/TSV/JSONL/parquet file, dataset folder or Hub dataset id")
    parser.add_argument("--output", required=True, type=Path, help="output file; its suffix sets the format")
    parser.add_argument("--input-format", default="auto", choices=["auto", "csv", "tsv", "jsonl", "parquet", "hub"])
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--subset", default=None, help="dataset config name (Hub datasets)")
    parser.add_argument("--split", default=None, help="dataset split (Hub datasets with more than one)")
    parser.add_argument("--encoding", default="utf-8", help="encoding of CSV/TSV/JSONL input (default: utf-8)")
    parser.add_argument("--backend", default="auto", help="inference backend (default: auto, from parity.json)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call (default: 32)")
    parser.add_argument("--num-threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows read and written at a time")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--prefix", default="", help="prefix for the added columns, e.g. pred_")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: this process; ray: a Ray actor pool, one Predictor per actor (pip install '.[scale]')",
    )
    parser.add_argument("--ray-address", default=None, help="--engine ray: join this cluster (default: start one)")
    parser.add_argument("--num-actors", type=int, default=None, help="--engine ray: actors, one model each (default 2)")


def run(args: argparse.Namespace, command: str) -> int:
    from tweet_classifier.inference.predictor import Predictor

    for name in ("batch_size", "chunk_rows", "limit", "num_threads", "num_actors"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise BulkError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.engine != "ray" and (args.ray_address or args.num_actors):
        raise BulkError("--ray-address and --num-actors apply to --engine ray: add --engine ray or drop them")
    source = open_source(args.input, args.input_format, args.text_column, args.encoding, args.subset, args.split)
    load = {
        "model": args.model,
        "revision": args.revision,
        "backend": args.backend,
        "num_threads": args.num_threads,
        "batch_size": args.batch_size,
    }
    predictor = Predictor.load(**load)
    options = {
        "text_column": args.text_column,
        "chunk_rows": args.chunk_rows,
        "limit": args.limit,
        "prefix": args.prefix,
        "encoding": args.encoding,
        "overwrite": args.overwrite,
    }
    if args.engine == "ray":
        from tweet_classifier.inference import bulk_ray

        summary = bulk_ray.predict_on_ray(predictor, source, args, load, options)
    else:
        summary = predict_file(predictor, source, args.output, **options)
    errors = sum(summary.errors.values())
    logger.info(
        "wrote %s: %d rows, %d scored, %d with an error (%s), %.0f texts/s",
        args.output,
        summary.rows,
        summary.scored,
        errors,
        ", ".join(f"{kind} {count}" for kind, count in summary.errors.items() if count) or "none",
        summary.texts_per_s,
    )
    return 0
