"""The feedback record: what the app stores for each user correction and how it is read back.

The app writes one JSON object per line, ``{"id", "time", "model_version", "text", "predicted",
"correct"}``, to its local file (``FEEDBACK_FILE``) and, on a Space, to files under ``corrections/`` of a
Hub dataset (``FEEDBACK_REPO``). ``retrain --corrections`` reads the same files back. Both sides import
this module, so the server and training agree on the format without importing each other.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["FILE_PATTERN", "PATH_IN_REPO", "merge_records", "new_record", "read_records"]

# Where the corrections live in the feedback dataset, one JSON-lines file per server process.
PATH_IN_REPO = "corrections"
FILE_PATTERN = "*.jsonl"


def new_record(text: str, predicted: str, correct: str, model_version: str) -> dict[str, Any]:
    """One correction as stored: a fresh ``id`` (replays from several sources count it once) and the time."""
    return {
        "id": uuid.uuid4().hex,
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": model_version,
        "text": text,
        "predicted": predicted,
        "correct": correct,
    }


def read_records(path: str | Path) -> tuple[list[dict[str, Any]], list[int]]:
    """The JSON objects of a JSON-lines file, and the numbers of the lines that are not one.

    A line that is not JSON is usually the torn last line of a crash mid-write, or of a file committed
    to the Hub while it was being written; the caller decides how loudly to say so. Blank lines are skipped.
    """
    records: list[dict[str, Any]] = []
    unreadable: list[int] = []
    with Path(path).open(encoding="utf-8", errors="replace") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                unreadable.append(number)
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                unreadable.append(number)
    return records, unreadable


def merge_records(*sources: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Records of every source in order, each ``id`` once (records without one, from older files, all kept)."""
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    for records in sources:
        for record in records:
            record_id = record.get("id")
            if isinstance(record_id, str):
                if record_id in seen:
                    continue
                seen.add(record_id)
            merged.append(dict(record))
    return merged
