"""The limits in front of the app: request bodies, Gradio's upload folder, the /v1 waiting room.

Each refuses early and cheaply, with the same ``{"error"}`` body as the routes (413 for too large,
503 with ``Retry-After`` for busy), before any of the request is read or any model slot is taken.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.responses import JSONResponse
from starlette.middleware.body_limit import RequestBodyLimitMiddleware

from tweet_classifier.serving.errors import BUSY_MESSAGE, BUSY_STATUS, RETRY_AFTER_S, UPLOADS_FULL_MESSAGE

logger = logging.getLogger(__name__)

# Gradio's upload route (the only body bigger than max_body_bytes): the file plus multipart framing.
UPLOAD_PATH = "/gradio_api/upload"
MULTIPART_SLACK_BYTES = 64 * 1024


class BodyLimits:
    """Two body limits: one for Gradio's upload route, one for every other request.

    A declared Content-Length over the limit is answered at once, before anything reads the body.
    Bodies without one (chunked) or longer than declared are counted as they stream by Starlette's
    ``RequestBodyLimitMiddleware``, which stops reading at the limit; the 413 it raises inside the
    app is worded by the apps' error handlers.
    """

    def __init__(self, app: Any, max_bytes: int, upload_bytes: int) -> None:
        self.max_bytes, self.upload_bytes = max_bytes, upload_bytes
        self.default = RequestBodyLimitMiddleware(app, max_body_size=max_bytes)
        self.upload = RequestBodyLimitMiddleware(app, max_body_size=upload_bytes)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.default(scope, receive, send)
            return
        is_upload = str(scope.get("path", "")).rstrip("/") == UPLOAD_PATH
        limit, limited = (self.upload_bytes, self.upload) if is_upload else (self.max_bytes, self.default)
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await too_large_response(limit)(scope, receive, send)
            return
        await limited(scope, receive, send)


def too_large_response(limit: int | None) -> JSONResponse:
    size = _format_bytes(limit) if limit else "the limit"
    return JSONResponse(
        {"error": f"request body over {size}: send less (split the batch or the CSV)"},
        status_code=413,
        headers={"Connection": "close"},  # the rest of the body is never read
    )


class UploadBudget:
    """Answer uploads "busy" while Gradio's upload folder (uploads and downloadable results, deleted
    ``upload_ttl_s`` after they were written) holds more than ``max_bytes``."""

    def __init__(self, app: Any, folder: Path, max_bytes: int, on_busy: Callable[[], None]) -> None:
        self.app = app
        self.folder = folder
        self.max_bytes = max_bytes
        self.on_busy = on_busy

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/") == UPLOAD_PATH:
            used = await asyncio.to_thread(folder_bytes, self.folder)
            if used >= self.max_bytes:
                logger.warning("upload refused: %s holds %d bytes (limit %d)", self.folder, used, self.max_bytes)
                self.on_busy()
                await busy_response(UPLOADS_FULL_MESSAGE)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (0 when it does not exist)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue  # deleted between the listing and the stat
    return total


class WaitingLimit:
    """Bounded waiting room for /v1 calls: over ``max_waiting`` a request is answered "busy" at once."""

    def __init__(self, max_waiting: int) -> None:
        self.max_waiting = max_waiting
        self.waiting = 0
        self._lock = threading.Lock()

    def enter(self) -> bool:
        with self._lock:
            if self.waiting >= self.max_waiting:
                return False
            self.waiting += 1
            return True

    def leave(self) -> None:
        with self._lock:
            self.waiting -= 1


def busy_response(message: str = BUSY_MESSAGE) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=BUSY_STATUS, headers={"Retry-After": str(RETRY_AFTER_S)})


def _format_bytes(count: int) -> str:
    for unit, size in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if count >= size:
            return f"{count / size:.4g} {unit}"
    return f"{count} bytes"
