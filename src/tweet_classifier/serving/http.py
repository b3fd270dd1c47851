"""The HTTP face of the service: FastAPI with ``/healthz``, ``/v1`` and ``/metrics``, the Gradio app
mounted at ``/``, the limits in front of both, and one ``{"error"}`` shape for every failure.

Every route calls the same ``ClassifierService`` methods as the UI, so validation, limits and live
numbers are the same whichever way a request arrives.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import Body, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.middleware.cors import CORSMiddleware

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.serving.errors import (
    BUSY_MESSAGE,
    BUSY_STATUS,
    INTERNAL_ERROR_MESSAGE,
    BadRequestError,
    RequestAbandonedError,
    ServiceBusyError,
    ServiceNotReadyError,
    client_message,
)
from tweet_classifier.serving.limits import (
    MULTIPART_SLACK_BYTES,
    BodyLimits,
    UploadBudget,
    WaitingLimit,
    busy_response,
    too_large_response,
)
from tweet_classifier.serving.prometheus import CONTENT_TYPE_LATEST as PROMETHEUS_CONTENT_TYPE
from tweet_classifier.serving.service import ClassifierService

logger = logging.getLogger(__name__)


class PredictRequest(BaseModel):
    text: str = Field(description="the tweet, as typed; at most the model's max_chars characters")
    explain: bool = Field(False, description="also return per-word attributions toward the predicted label")


class WordAttributionResponse(BaseModel):
    word: str
    start: int = Field(description="character offset of the word in the text as sent")
    end: int
    attribution: float | None = Field(
        description="drop in the predicted label's probability when the word is left out (None: not scored)"
    )


class PredictResponse(BaseModel):
    label: str
    scores: dict[str, float] = Field(description="every label's probability, in model order, summing to 1")
    latency_ms: float = Field(description="server-side handling time of this request")
    compute_ms: float = Field(description="normalization + tokenization + model time of this text")
    normalized_text: str
    model_version: str
    needs_review: bool = Field(
        description="the calibrated confidence is under the model's review threshold: hand this tweet to a person"
    )
    explanation: list[WordAttributionResponse] | None = Field(
        None, description="with explain: true, each word of the text and its attribution"
    )


class PredictBatchResponse(BaseModel):
    results: list[PredictResponse]


class FeedbackRequest(BaseModel):
    text: str = Field(description="the text that was classified")
    predicted: str = Field(description="the label the model gave it")
    correct: str = Field(description="the right label")


class FeedbackResponse(BaseModel):
    stored: bool
    corrections: int = Field(description="corrections the live corrections F1 counts now")
    macro_f1: float | None


class ErrorResponse(BaseModel):
    error: str


def error_response(error: Exception) -> JSONResponse:
    if isinstance(error, ServiceBusyError | RequestAbandonedError):
        return busy_response(client_message(error))
    if isinstance(error, ServiceNotReadyError | BadRequestError):
        return JSONResponse({"error": client_message(error)}, status_code=error.http_status)
    error_id = uuid.uuid4().hex[:12]
    logger.error("request %s failed", error_id, exc_info=error)
    return JSONResponse({"error": INTERNAL_ERROR_MESSAGE.format(error_id=error_id)}, status_code=500)


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One line for a request body FastAPI could not validate: where, what, and never the input."""
    if not errors:
        return "the request body is invalid: send a JSON object (see /v1/docs)"
    first = errors[0]
    location = [part for part in first.get("loc", ()) if part != "body"]
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = str((first.get("ctx") or {}).get("error", "JSON decode error"))[:80]
        return f'the body is not valid JSON ({detail}): send a JSON object such as {{"text": "..."}}'
    if not location:
        return "the body must be a JSON object sent with content-type: application/json (see /v1/docs)"
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in location).lstrip(".")
    message = f"{where} is missing" if kind == "missing" else f"{where}: {first.get('msg', 'invalid value')}"
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return client_message(TweetClassifierError(message + more))


def _install_error_handlers(app: FastAPI, service: ClassifierService, gradio: bool = False) -> None:
    """``{"error": ...}`` bodies: every error of our routes; on Gradio's app, "busy", "too large" and
    anything under /v1 (its own errors keep Gradio's shape, which gradio_client reads)."""

    async def on_http_error(request: Any, error: StarletteHTTPException) -> Any:
        if error.status_code == BUSY_STATUS:
            # Gradio's queue is full ("Queue is full") or stopped for shutdown.
            if gradio and service.monitor is not None:
                service.monitor.record_rejected()
            return busy_response()
        if error.status_code == 413:
            limit = request.scope.get(MAX_BODY_SIZE_SCOPE_KEY)
            return too_large_response(limit if isinstance(limit, int) else None)
        if gradio and not request.url.path.startswith("/v1"):
            return await http_exception_handler(request, error)
        detail = error.detail if isinstance(error.detail, str) else "request refused"
        return JSONResponse({"error": detail}, status_code=error.status_code, headers=error.headers)

    async def on_validation_error(request: Any, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"error": validation_message(error.errors())}, status_code=422)

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    if not gradio:
        app.add_exception_handler(RequestValidationError, on_validation_error)


async def _watch_disconnect(request: Any, abandoned: threading.Event) -> None:
    """Set ``abandoned`` when the client closes the connection: the body has been read, so the next
    message uvicorn hands over is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        continue
    abandoned.set()


def create_app(service: ClassifierService, with_ui: bool = True) -> FastAPI:
    """FastAPI with /healthz and /v1, the Gradio app mounted at /, and the limits in front of both."""
    config = service.config
    app = FastAPI(
        title="tweet-classifier",
        description="Tweet classification with live F1, latency and drift. The Gradio UI and API are at /.",
        version="1",
        docs_url="/v1/docs",
        openapi_url="/v1/openapi.json",
    )
    waiting_room = WaitingLimit(config.queue_max_size)
    # Corrections wait for their fsync on threads of their own, never on the workers predictions use.
    feedback_workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="feedback")
    app.state.shutdown_callbacks = [service.stop]
    error_responses: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (413, 422, 500, BUSY_STATUS)
    }

    # The length bound is checked before the items, so a huge list fails with one cheap error.
    batch_texts = Body(embed=True, max_length=config.max_batch_texts, description="the tweets, in order")

    async def call_service(request: Request, function: Callable[..., Any], *args: Any) -> Any:
        if not waiting_room.enter():
            if service.monitor is not None:
                service.monitor.record_rejected()
            raise ServiceBusyError(BUSY_MESSAGE)
        abandoned = threading.Event()
        watcher = asyncio.create_task(_watch_disconnect(request, abandoned))
        try:
            return await asyncio.to_thread(function, *args, abandoned=abandoned)
        finally:
            watcher.cancel()
            waiting_room.leave()

    @app.get("/healthz", response_model=None, responses={503: {"model": ErrorResponse}})
    async def healthz() -> JSONResponse:
        # async: answered on the event loop, never behind the worker threads.
        status_code, payload = service.health()
        return JSONResponse(payload, status_code=status_code)

    @app.post("/v1/predict", response_model=PredictResponse, responses=error_responses)
    async def v1_predict(body: PredictRequest, request: Request) -> Any:
        try:
            return await call_service(request, functools.partial(service.predict, explain=body.explain), body.text)
        except Exception as error:
            return error_response(error)

    @app.post("/v1/predict_batch", response_model=PredictBatchResponse, responses=error_responses)
    async def v1_predict_batch(request: Request, texts: list[str] = batch_texts) -> Any:
        try:
            return {"results": await call_service(request, service.predict_batch, texts)}
        except Exception as error:
            return error_response(error)

    @app.post("/v1/feedback", response_model=FeedbackResponse, responses=error_responses)
    async def v1_feedback(body: FeedbackRequest) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(
                feedback_workers, service.feedback, body.text, body.predicted, body.correct
            )
        except Exception as error:
            return error_response(error)

    @app.get("/v1/metrics")
    def v1_metrics() -> dict[str, Any]:
        return service.metrics()

    @app.get("/metrics", response_class=Response)
    def prometheus_metrics() -> Response:
        """The same state in the Prometheus text format (``tweet_classifier.serving.prometheus``)."""
        return Response(service.prometheus.exposition(), media_type=PROMETHEUS_CONTENT_TYPE)

    if service.settings.latency_probe:

        @app.post("/v1/noop")
        async def v1_noop(body: PredictRequest) -> dict[str, str]:
            return {"label": "noop"}

    _install_error_handlers(app, service)
    if with_ui:
        _mount_gradio(app, service, waiting_room)
    else:
        service.queue_depth = lambda: waiting_room.waiting
    # Same-origin unless configured. Its presence also makes Gradio's own CORS middleware stand down
    # (gradio/route_utils.py CustomCORSMiddleware.parent_configures_cors), which otherwise reflects
    # any Origin with credentials whenever the Host is not localhost.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(config.allowed_origins),
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["*"],
        allow_credentials=False,
    )
    app.add_middleware(
        BodyLimits, max_bytes=config.max_body_bytes, upload_bytes=config.max_csv_bytes + MULTIPART_SLACK_BYTES
    )
    return app


def _mount_gradio(app: FastAPI, service: ClassifierService, waiting_room: WaitingLimit) -> None:
    # Deferred: gradio takes seconds to import, and create_app(with_ui=False) (the /v1-only app of the
    # tests and of scripts/api_latency.py) never needs it; ui.py imports gradio at its top.
    import gradio as gr
    from gradio.routes import App as GradioApp
    from gradio.utils import get_upload_folder

    # Deferred: gradio (imported by ui) loads only when the UI is mounted: the /v1-only app starts without it.
    from tweet_classifier.serving.ui import THEME, UI_CSS, build_demo

    demo = build_demo(service)
    service.queue_depth = lambda: _gradio_queue_depth(demo) + waiting_room.waiting
    gr.mount_gradio_app(
        app,
        demo,
        path="/",
        server_name=service.settings.host,
        server_port=service.settings.port,
        footer_links=["api"],
        run_history=False,
        show_error=False,
        max_file_size=service.config.max_csv_bytes,
        theme=THEME,
        css=UI_CSS,
        ssr_mode=False,
        mcp_server=service.config.mcp_server,
    )
    # Gradio checks that a file an event receives was uploaded (gradio/processing_utils.py
    # _check_allowed) only once blocks.has_launched is true, which launch() sets and
    # mount_gradio_app does not: without this, any server path in a FileData payload is read.
    demo.has_launched = True
    gradio_apps = [route.app for route in app.routes if isinstance(getattr(route, "app", None), GradioApp)]
    for gradio_app in gradio_apps:
        _install_error_handlers(gradio_app, service, gradio=True)
    # Ends the browsers' and clients' idle heartbeat streams at shutdown; otherwise they hold the
    # graceful shutdown open for its whole timeout. Streams of pending events still finish.
    app.state.shutdown_callbacks.extend(gradio_app.stop_event.set for gradio_app in gradio_apps)
    app.add_middleware(
        UploadBudget,
        folder=Path(get_upload_folder()),
        max_bytes=service.config.max_upload_disk_bytes,
        on_busy=lambda: service.monitor.record_rejected() if service.monitor is not None else None,
    )


def _gradio_queue_depth(demo: Any) -> int:
    try:
        return len(demo._queue)
    except Exception:
        return 0
