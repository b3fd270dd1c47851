"""User corrections also kept in a Hub dataset (``FEEDBACK_REPO``), so they survive a Space restart.

A Space's disk is wiped on every restart, so the local feedback file (``feedback_store.FeedbackStore``) alone
loses them. Here each server process appends its corrections to its own JSON-lines file in a local folder,
and ``huggingface_hub.CommitScheduler`` commits the folder's new lines to the dataset in the background
every ``serve.feedback_push_minutes`` (and once more at shutdown). At start-up every file of the dataset
is downloaded and replayed; records carry an ``id``, so a correction that is both in the local file and on
the Hub counts once.

The token is ``huggingface_hub``'s own (``HF_TOKEN`` or the login file): nothing here reads, logs or
writes it. The dataset is created private, since corrections hold what users typed.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.feedback import FILE_PATTERN, PATH_IN_REPO, read_records
from tweet_classifier.hub_client import is_repo_id

logger = logging.getLogger(__name__)


class FeedbackRepoError(TweetClassifierError):
    """FEEDBACK_REPO cannot be used as set (bad id, no token, offline)."""


class HubFeedbackLog:
    """Append-only corrections files committed to the dataset ``repo_id`` by a ``CommitScheduler``."""

    def __init__(self, repo_id: str, folder: str | Path, every_minutes: float) -> None:
        # Deferred here and below: huggingface_hub costs ~0.3 s to import, paid only with FEEDBACK_REPO set.
        from huggingface_hub import constants, get_token

        if not is_repo_id(repo_id):
            raise FeedbackRepoError(f"FEEDBACK_REPO must be a Hub dataset id like ORG/NAME, got {repo_id!r}")
        if constants.is_offline_mode():
            raise FeedbackRepoError(
                f"FEEDBACK_REPO={repo_id} needs the Hub, but HF_HUB_OFFLINE=1 is set: unset one of them"
            )
        if not get_token():
            raise FeedbackRepoError(
                f"FEEDBACK_REPO={repo_id} needs a token with write access: set HF_TOKEN (on a Space, as a secret in "
                "Settings -> Variables and secrets), or unset FEEDBACK_REPO to keep corrections in FEEDBACK_FILE only"
            )
        self.repo_id = repo_id
        self.folder = Path(folder)
        self.every_minutes = every_minutes
        started = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        # One file per process: the scheduler uploads whole files, and two processes never write the same one.
        self.file = self.folder / f"corrections-{started}-{uuid.uuid4().hex[:8]}.jsonl"
        self._scheduler: Any = None

    def replay(self) -> list[dict[str, Any]]:
        """Every correction the dataset holds (none when it does not exist yet)."""
        # Deferred: huggingface_hub loads only when the Hub is used (start-up time of the commands that never touch it).
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            snapshot = Path(
                snapshot_download(self.repo_id, repo_type="dataset", allow_patterns=[f"{PATH_IN_REPO}/{FILE_PATTERN}"])
            )
        except RepositoryNotFoundError:
            logger.info("feedback dataset %s does not exist yet; it is created with the first commit", self.repo_id)
            return []
        records: list[dict[str, Any]] = []
        for path in sorted((snapshot / PATH_IN_REPO).glob(FILE_PATTERN)):
            # Unreadable lines: the torn last line of a file committed while it was being written.
            records.extend(read_records(path)[0])
        logger.info("replayed %d corrections from the Hub dataset %s", len(records), self.repo_id)
        return records

    def start(self) -> None:
        """Create the dataset if needed and start committing new corrections in the background."""
        # Deferred: huggingface_hub loads only when the Hub is used (start-up time of the commands that never touch it).
        from huggingface_hub import CommitScheduler

        self._scheduler = CommitScheduler(
            repo_id=self.repo_id,
            repo_type="dataset",
            folder_path=self.folder,
            path_in_repo=PATH_IN_REPO,
            every=self.every_minutes,
            private=True,
            allow_patterns=[self.file.name],
        )

    def append(self, record: Mapping[str, Any]) -> None:
        if self._scheduler is None:
            raise FeedbackRepoError("the feedback dataset is not connected: call start() first")
        line = json.dumps(dict(record), ensure_ascii=False) + "\n"
        # The scheduler's lock: it never reads the file half-written.
        with self._scheduler.lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            with self.file.open("a", encoding="utf-8") as stream:
                stream.write(line)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Commit what is not on the Hub yet, then stop the scheduler (shutdown)."""
        if self._scheduler is None:
            return
        try:
            self._scheduler.trigger().result(timeout=timeout_s)
        except Exception:  # the Hub is down or slow: the lines stay in the local file, the log says why
            logger.exception("could not commit the last corrections to %s", self.repo_id)
        finally:
            self._scheduler.stop()
            self._scheduler = None
