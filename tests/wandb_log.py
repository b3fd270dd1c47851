"""Read back what an offline W&B run logged, from its ``run-*.wandb`` file, without a server.

Test support only (the tracking, train and retrain tests assert what reached W&B): the file is LevelDB log
framing (32 KiB blocks of records, each with a 7-byte header) around wandb's protobuf ``Record`` messages.
wandb ships no public reader for it, hence this one.
"""

from __future__ import annotations

import json
import logging
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError
from wandb.proto import wandb_internal_pb2

logger = logging.getLogger(__name__)

# LevelDB log framing used by the .wandb file: 32 KiB blocks of records with a 7-byte header.
_WANDB_FILE_HEADER_BYTES = 7
_LOG_BLOCK_BYTES = 32 * 1024
_RECORD_HEADER_BYTES = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRunRecord:
    """What an offline W&B run recorded, read back from its ``run-*.wandb`` file."""

    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Logged Artifacts: {"name", "type", "aliases", "files"} each.
    artifacts: list[dict[str, Any]] = field(default_factory=list)


def _iter_log_records(raw: bytes) -> list[bytes]:
    """Reassemble the records of a LevelDB-framed log (what wandb writes after its 7-byte file header)."""
    records: list[bytes] = []
    pending: list[bytes] = []
    position = _WANDB_FILE_HEADER_BYTES
    while position + _RECORD_HEADER_BYTES <= len(raw):
        left_in_block = _LOG_BLOCK_BYTES - position % _LOG_BLOCK_BYTES
        if left_in_block < _RECORD_HEADER_BYTES:
            position += left_in_block
            continue
        _checksum, length, kind = struct.unpack("<IHB", raw[position : position + _RECORD_HEADER_BYTES])
        if length == 0 and kind == 0:  # zero padding to the end of a block
            position += left_in_block
            continue
        payload = raw[position + _RECORD_HEADER_BYTES : position + _RECORD_HEADER_BYTES + length]
        position += _RECORD_HEADER_BYTES + length
        if kind == _FULL:
            records.append(payload)
        elif kind == _FIRST:
            pending = [payload]
        elif kind == _MIDDLE:
            pending.append(payload)
        elif kind == _LAST:
            records.append(b"".join([*pending, payload]))
            pending = []
    return records


def _items_to_dict(items: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for item in items:
        key = item.key or "/".join(item.nested_key)
        values[key] = json.loads(item.value_json)
    return values


def _parse_records(path: Path) -> tuple[list[Any], bool]:
    """The file's records, and whether it is complete (an exit record, and every record readable).

    The writer process may be mid-record while we read: a record that does not parse yet is skipped
    and the file counts as incomplete, so the caller reads it again.
    """
    messages = []
    unreadable = 0
    for payload in _iter_log_records(path.read_bytes()):
        message = wandb_internal_pb2.Record()
        try:
            message.ParseFromString(payload)
        except DecodeError:
            unreadable += 1
            continue
        messages.append(message)
    finished = not unreadable and any(message.WhichOneof("record_type") == "exit" for message in messages)
    return messages, finished


def read_offline_run(run_dir: str | Path, wait_s: float = 30.0) -> OfflineRunRecord:
    """Parse the ``.wandb`` file of a finished run folder: config, summary, history and logged tables.

    ``run.finish()`` returns before wandb's writer process has flushed the file, so this waits (up to
    ``wait_s``) for the run's exit record before reading.
    """
    folder = Path(run_dir)
    files = sorted(folder.glob("run-*.wandb"))
    if not files:
        raise FileNotFoundError(f"no run-*.wandb file in {folder}")
    deadline = time.monotonic() + wait_s
    messages, finished = _parse_records(files[0])
    while not finished and time.monotonic() < deadline:
        time.sleep(0.1)
        messages, finished = _parse_records(files[0])
    if not finished:
        logger.warning("%s is incomplete after %.0f s: reading a partial run", files[0], wait_s)
    record = OfflineRunRecord()
    for message in messages:
        kind = message.WhichOneof("record_type")
        if kind == "run":
            record.config.update(_unwrap_config(_items_to_dict(message.run.config.update)))
        elif kind == "config":
            record.config.update(_unwrap_config(_items_to_dict(message.config.update)))
        elif kind == "summary":
            record.summary.update(_items_to_dict(message.summary.update))
        elif kind == "history":
            record.history.append(_items_to_dict(message.history.item))
        elif kind == "artifact":
            artifact = message.artifact
            record.artifacts.append(
                {
                    "name": artifact.name,
                    "type": artifact.type,
                    "aliases": list(artifact.aliases),
                    "files": sorted(entry.path for entry in artifact.manifest.contents),
                }
            )
    for step in record.history:
        for key, value in step.items():
            if key.endswith("/path") and str(value).endswith(".table.json"):
                table_key = key.removesuffix("/path")
                record.tables[table_key] = json.loads((folder / "files" / value).read_text(encoding="utf-8"))
    return record


def _unwrap_config(values: dict[str, Any]) -> dict[str, Any]:
    # wandb stores each config value as {"value": ...}; callers want the plain value.
    return {
        key: value["value"] if isinstance(value, dict) and set(value) == {"value"} else value
        for key, value in values.items()
    }
