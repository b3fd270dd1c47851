"""The local feedback file (``FEEDBACK_FILE``): user corrections as JSON lines, durable and bounded.

The record format and its reader are ``tweet_classifier.feedback``'s (training reads the same files);
this is the server's side: appends under a lock with flush + fsync, atomic trims, and a count of what a
trim dropped so the live corrections F1 holds exactly the records the file holds.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tweet_classifier.feedback import read_records

logger = logging.getLogger(__name__)


class FeedbackStore:
    """Corrections as JSON lines: appended with flush + fsync under a lock, reloaded on start, bounded.

    When the file passes ``max_records`` or ``max_bytes`` it is rewritten atomically with the newest
    ``keep_fraction`` of its records, so it never grows without bound and a crash never truncates it.
    ``append`` says how many of the oldest records that dropped, so the live corrections F1 can hold
    exactly the records the file holds (the same number before and after a restart).
    """

    def __init__(self, path: str | Path, max_records: int, max_bytes: int, keep_fraction: float = 0.8) -> None:
        self.path = Path(path)
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.keep_fraction = keep_fraction
        self._lock = threading.Lock()
        self._records: deque[dict[str, Any]] = deque()

    def load(self) -> list[dict[str, Any]]:
        """Read the records a previous run wrote; a torn last line (crash mid-write) is skipped."""
        with self._lock:
            self._records.clear()
            if not self.path.is_file():
                return []
            records, unreadable = read_records(self.path)
            skipped = len(unreadable)
            for record in records:
                if {"predicted", "correct"} <= set(record):
                    self._records.append(record)
                else:
                    skipped += 1
            if skipped:
                logger.warning("skipped %d unreadable feedback lines in %s", skipped, self.path)
            return list(self._records)

    def append(self, record: Mapping[str, Any]) -> int:
        """Store one record durably; returns how many of the oldest records a trim dropped (usually 0)."""
        line = json.dumps(dict(record), ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as stream:
                stream.write(line)
                stream.flush()
                os.fsync(stream.fileno())
            self._records.append(dict(record))
            if len(self._records) > self.max_records or self.path.stat().st_size > self.max_bytes:
                before = len(self._records)
                self._trim()
                return before - len(self._records)
            return 0

    def _trim(self) -> None:
        keep = max(1, int(min(len(self._records), self.max_records) * self.keep_fraction))
        kept = list(self._records)[-keep:]
        payload = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept)
        while len(kept) > 1 and len(payload.encode("utf-8")) > self.max_bytes * self.keep_fraction:
            kept = kept[len(kept) // 4 :]
            payload = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in kept)
        handle, temp_name = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(payload)
                stream.flush()
                os.fsync(stream.fileno())
            Path(temp_name).replace(self.path)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        logger.info("feedback file %s trimmed to its newest %d records", self.path, len(kept))
        self._records = deque(kept)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)
