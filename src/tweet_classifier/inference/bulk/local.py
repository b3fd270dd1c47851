"""``predict_file``: one run of ``predict``, from the input's chunks to the joined output.

It reads the chunks (``sources``), skips those a previous run already wrote (``parts``), scores the rest
``window`` chunks at a time and writes each as a part. The scoring is the local engine's (``score_frame``
with the given ``Predictor``, in this process) unless an engine passes its own ``score_chunks`` (the Ray
engine, ``ray_engine``). Chunk boundaries are multiples of ``chunk_rows`` from the first row, so a
resumed run scores exactly the batches an uninterrupted one would (ONNX Runtime's dynamic int8 picks
activation scales per batch: this keeps its probabilities bit-identical too).
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from tweet_classifier.inference.bulk.formats import FORMATS, BulkError
from tweet_classifier.inference.bulk.parts import (
    RUN_FORMAT_VERSION,
    completed_parts,
    join_parts,
    load_counts,
    part_name,
    parts_folder,
    start_or_resume,
    write_counts,
    write_part,
)
from tweet_classifier.inference.bulk.scoring import OutputColumns, ScoreChunks, Summary, score_frame
from tweet_classifier.inference.bulk.sources import Source, require_column

logger = logging.getLogger(__name__)

# 4,096 rows per chunk: the length sort inside a chunk leaves 1-2% padding at batch 32 (1,024 rows leave
# 3-4%), and a chunk of tweets with its columns is a few MB.
DEFAULT_CHUNK_ROWS = 4096


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
    counts to the summary just before yielding it (the Ray engine, ``ray_engine``); the default scores one
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
    start_or_resume(folder, run)
    parts = completed_parts(folder, output_format)
    summary = load_counts(folder, len(parts))
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
                write_counts(folder, index, summary)
                write_part(scored, folder / part_name(index, output_format), output_format)
                parts.append(folder / part_name(index, output_format))
                progress.update(len(scored))
                summary.seconds = time.perf_counter() - started
                logger.info(
                    "%d rows done (%d errors), %.0f texts/s",
                    summary.rows,
                    sum(summary.errors.values()),
                    summary.texts_per_s,
                )

        for index, chunk in enumerate(_limited(source.chunks(chunk_rows), limit)):
            require_column(chunk, text_column, source.description)
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


def _progress(total: int | None, initial: int) -> Any:
    """tqdm on a terminal (its rate is texts/s); off otherwise, where the per-chunk log lines say the same."""
    return tqdm(total=total, initial=initial, unit="text", file=sys.stderr, disable=not sys.stderr.isatty())
