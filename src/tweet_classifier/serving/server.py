"""The serving process: resolve the model, start loading it, serve the app with uvicorn until SIGTERM.

uvicorn is run here rather than by ``Blocks.launch`` so that SIGTERM drains in-flight requests
(``timeout_graceful_shutdown``) instead of cancelling them, and so that the two connection deadlines
uvicorn lacks (request head, request body) can be added. ``python -m tweet_classifier.serving.server``
and the Space's ``app.py`` both run ``main``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from tweet_classifier.arguments import add_config_arguments, configure_logging
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.serving.http import create_app
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.settings import ServeSettings

logger = logging.getLogger(__name__)


def deadline_protocol(header_timeout_s: float, body_timeout_s: float) -> type:
    """uvicorn's h11 protocol (pinned uvicorn) plus the two deadlines it lacks, so idle and partial
    connections cannot pin file descriptors: the request head must be complete within
    ``header_timeout_s`` of the connection opening (or of the previous response), the body within
    ``body_timeout_s`` of the head. uvicorn's own keep-alive timer only starts after a response and
    stops at the first byte, so a client trickling bytes, or sending none, was never closed."""

    class DeadlineH11Protocol(H11Protocol):
        _deadline: asyncio.TimerHandle | None = None
        _phase: str | None = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._follow_request()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._follow_request()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._follow_request()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_deadline()
            super().connection_lost(exc)

        def _follow_request(self) -> None:
            state = self.conn.their_state
            phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
            if phase == self._phase:
                return
            self._cancel_deadline()
            self._phase = phase
            if phase is not None and not self.transport.is_closing():
                timeout = header_timeout_s if phase == "head" else body_timeout_s
                self._deadline = self.loop.call_later(timeout, self._expire, phase, timeout)

        def _cancel_deadline(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self, phase: str, timeout: float) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                logger.info("closed a connection whose request %s took over %.0f s", phase, timeout)
                self.transport.close()

    return DeadlineH11Protocol


def build_server(app: FastAPI, settings: ServeSettings, log_level: str = "info") -> Any:
    """uvicorn with graceful shutdown: on SIGTERM it stops accepting and lets in-flight requests finish.

    Before uvicorn waits for open connections, the shutdown callbacks end the idle streams (Gradio
    heartbeats) and the canary, so the wait is only as long as the slowest in-flight request.
    """

    class _Server(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            logger.info(
                "shutting down: finishing in-flight requests (at most %.0f s)", settings.config.graceful_shutdown_s
            )
            for callback in getattr(app.state, "shutdown_callbacks", []):
                callback()
            await super().shutdown(sockets=sockets)

    serve_config = settings.config
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=deadline_protocol(serve_config.header_timeout_s, serve_config.body_timeout_s),
        timeout_keep_alive=serve_config.keep_alive_s,
        timeout_graceful_shutdown=int(serve_config.graceful_shutdown_s),
        log_level=log_level,
        access_log=False,
    )
    return _Server(config)


def run_server(app: FastAPI, settings: ServeSettings) -> None:
    build_server(app, settings).run()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    """``python app.py``: resolve the model, start loading it, serve until SIGTERM/SIGINT."""

    parser = argparse.ArgumentParser(
        prog="app.py",
        description="Serve the tweet classifier (Gradio UI + API). Settings: the model's run_config.yaml, then "
        "--config files and --set overrides (serve: and inference: only), then environment variables.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_config_arguments(parser, required=False)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    environ = os.environ if env is None else env
    # SERVE_CONFIG: a settings file where the command line is fixed (a Space, the Docker image's CMD).
    config_paths = [*filter(None, [environ.get("SERVE_CONFIG")]), *(args.config or [])]
    try:
        settings = ServeSettings.from_env(env, config_paths=config_paths, config_overrides=args.overrides)
        service = ClassifierService(settings)
    except TweetClassifierError as error:
        logger.error("%s", error)
        return 2
    service.start()
    logger.info(
        "serving %s on http://%s:%d (UI at /, API docs at /v1/docs)", settings.model, settings.host, settings.port
    )
    run_server(create_app(service), settings)
    service.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
