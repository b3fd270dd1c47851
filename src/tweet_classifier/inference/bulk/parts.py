"""The parts folder ``OUTPUT.parts/`` a run builds its output in, and how a run resumes from it.

``run.json`` (what is being scored) is written once, then per chunk a ``counts-NNNNNN.json`` and a
``part-NNNNNN.<format>`` file, each under a temporary name then renamed, so a part that exists is
complete; when the input ends the parts are joined into ``OUTPUT``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.inference.bulk.formats import ESCAPED_BYTE, SEPARATORS, BulkError
from tweet_classifier.inference.bulk.scoring import Summary

RUN_NAME = "run.json"
RUN_FORMAT_VERSION = 1
PARTS_SUFFIX = ".parts"


def write_part(frame: pd.DataFrame, path: Path, file_format: str) -> None:
    """One chunk, under a temporary name then renamed: a part file that exists is complete."""
    temporary = path.with_name(f".{path.name}.tmp")
    if file_format in SEPARATORS:
        # No header: the join writes it once. Undecodable input bytes go back out unchanged.
        frame.to_csv(temporary, sep=SEPARATORS[file_format], index=False, header=False, errors="surrogateescape")
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
        return ESCAPED_BYTE.sub("\ufffd", value)
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
            if file_format in SEPARATORS:
                handle.write(pd.DataFrame(columns=header).to_csv(sep=SEPARATORS[file_format], index=False).encode())
            for part in parts:
                with part.open("rb") as source:
                    shutil.copyfileobj(source, handle)
    temporary.replace(output)


def _join_parquet(parts: list[Path], target: Path) -> None:
    # pyarrow only for parquet output (pandas loads it lazily too): CSV/JSONL runs never import it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    # A column that is all-null in one chunk is typed null there: write every part in the unified schema.
    schema = pa.unify_schemas([pq.read_schema(part) for part in parts], promote_options="permissive")
    with pq.ParquetWriter(target, schema) as writer:
        for part in parts:
            writer.write_table(pq.read_table(part).cast(schema))


def parts_folder(output: Path) -> Path:
    return output.with_name(output.name + PARTS_SUFFIX)


def completed_parts(folder: Path, file_format: str) -> list[Path]:
    """The consecutive parts already written (part-000000, part-000001, ...); stray temp files are ignored."""
    parts = []
    while (folder / part_name(len(parts), file_format)).is_file():
        parts.append(folder / part_name(len(parts), file_format))
    return parts


def part_name(index: int, file_format: str) -> str:
    return f"part-{index:06d}.{file_format}"


def start_or_resume(folder: Path, run: dict[str, Any]) -> None:
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


def write_counts(folder: Path, index: int, summary: Summary) -> None:
    """The counts as of part ``index``, written just before that part (a counts file without its part is
    simply written again on resume)."""
    write_json_atomic(folder / _counts_name(index), summary.counts())


def _counts_name(index: int) -> str:
    return f"counts-{index:06d}.json"


def load_counts(folder: Path, completed: int) -> Summary:
    """The counts as of the last completed part (written just before that part was renamed into place)."""
    summary = Summary()
    if completed:
        path = folder / _counts_name(completed - 1)
        try:
            counts = json.loads(path.read_text(encoding="utf-8"))
            summary.rows, summary.scored = counts["rows"], counts["scored"]
            summary.errors.update(counts["errors"])
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise BulkError(f"{path} is unreadable ({error}): delete {folder} to start over") from None
    return summary
