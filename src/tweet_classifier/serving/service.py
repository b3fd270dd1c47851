"""``ClassifierService``: one predictor, one monitor, one feedback file, and the canary, behind
thread-safe methods that every front end (the Gradio UI, the Gradio API, ``/v1``) calls.

The predictor loads in a background thread so ``/healthz`` can answer 503 while it loads. Every model
call takes one of ``concurrency_limit`` slots, so users, the canary and every route together never run
more forward passes at once; a request waiting for a slot is dropped when its client leaves or the
server shuts down, before any compute.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.feedback import merge_records, new_record
from tweet_classifier.inference.explain import explain_text
from tweet_classifier.serving.canary import canary_rows
from tweet_classifier.serving.csv_batch import (
    CsvResult,
    labelled_report,
    prediction_frame,
    read_upload_csv,
    text_column_of,
    write_safe_csv,
)
from tweet_classifier.serving.drift_tracker import read_reference
from tweet_classifier.serving.errors import (
    ABANDONED_MESSAGE,
    BUSY_MESSAGE,
    FAILED_MESSAGE,
    LOADING_MESSAGE,
    SHUTTING_DOWN_MESSAGE,
    BadRequestError,
    RequestAbandonedError,
    ServiceBusyError,
    ServiceNotReadyError,
    client_message,
)
from tweet_classifier.serving.feedback_hub import HubFeedbackLog
from tweet_classifier.serving.feedback_store import FeedbackStore
from tweet_classifier.serving.loading import (
    PredictionLike,
    PredictorLike,
    PredictorLoader,
    load_real_predictor,
)
from tweet_classifier.serving.model_view import read_model_view
from tweet_classifier.serving.monitor import ServingMonitor
from tweet_classifier.serving.prometheus import ServiceMetrics
from tweet_classifier.serving.settings import ServeSettings, model_metadata_dir
from tweet_classifier.text import text_traits

logger = logging.getLogger(__name__)

# How often a request waiting for a model slot looks at its client and at shutdown.
SLOT_POLL_S = 0.05
ResultT = TypeVar("ResultT")


class ClassifierService:
    """One predictor, one monitor, one feedback file; thread-safe entry points for every front end."""

    def __init__(
        self,
        settings: ServeSettings,
        loader: PredictorLoader | None = None,
    ) -> None:
        self.settings = settings
        self.config = settings.config
        self._loader = loader or (lambda model, revision: load_real_predictor(model, revision, settings.inference))
        self.predictor: PredictorLike | None = None
        self.monitor: ServingMonitor | None = None
        self.feedback_store = FeedbackStore(
            settings.feedback_file, self.config.feedback_max_records, self.config.feedback_max_bytes
        )
        # FEEDBACK_REPO: corrections also go to a Hub dataset (a Space's disk does not survive a restart).
        self.feedback_hub: HubFeedbackLog | None = None
        if self.config.feedback_repo:
            self.feedback_hub = HubFeedbackLog(
                self.config.feedback_repo,
                Path(settings.feedback_file).parent / "feedback-hub",
                self.config.feedback_push_minutes,
            )
        self.state = "loading"
        self.load_error: str | None = None
        self.loaded = threading.Event()
        # Every model call takes a slot, so the UI, the Gradio API, /v1 and the canary together never
        # run more than concurrency_limit forward passes at once.
        self._model_slots = threading.BoundedSemaphore(self.config.concurrency_limit)
        self._metadata_dir: Path | None = None
        self._stop = threading.Event()
        self._stopping_since: float | None = None
        # Keeps the feedback file and the live corrections F1 in the same order (both drop the oldest).
        self._feedback_lock = threading.Lock()
        self._background: list[threading.Thread] = []
        self.queue_depth: Callable[[], int] = lambda: 0
        self.prometheus = ServiceMetrics(self.metrics)

    # ---- lifecycle -------------------------------------------------------------------------------
    def start(self, background_checks: bool = True) -> None:
        """Load the model in a background thread; then start the canary and reference building."""
        thread = threading.Thread(target=self._load, args=(background_checks,), name="model-loader", daemon=True)
        self._background.append(thread)
        thread.start()

    def stop(self) -> None:
        """Shutdown began: the canary stops, waiting requests get half the grace to start, then "busy"."""
        if self._stopping_since is None:
            self._stopping_since = time.monotonic()
        self._stop.set()

    def close(self) -> None:
        """After the server has stopped: commit the corrections the Hub dataset does not have yet."""
        self.stop()
        if self.feedback_hub is not None:
            self.feedback_hub.flush()

    def wait_until_loaded(self, timeout: float | None = None) -> bool:
        return self.loaded.wait(timeout)

    def _load(self, background_checks: bool) -> None:
        started = time.perf_counter()
        try:
            predictor = self._loader(self.settings.model, self.settings.revision)
            monitor = ServingMonitor(
                predictor.labels,
                cold_requests=self.config.cold_requests,
                latency_window=self.config.latency_window,
                throughput_window_s=self.config.throughput_window_s,
                drift_window=self.config.drift_window,
                drift_min_samples=self.config.drift_min_samples,
                drift_psi_threshold=self.config.drift_psi_threshold,
                max_corrections=self.config.feedback_max_records,
                timeline_bucket_s=self.config.timeline_bucket_s,
                timeline_buckets=self.config.timeline_buckets,
            )
            monitor.on_request = self.prometheus.observe
            replayed = monitor.load_corrections(self._stored_corrections())
            folder = getattr(predictor, "folder", None)
            self._metadata_dir = (
                Path(folder) if folder is not None else model_metadata_dir(self.settings.model, self.settings.revision)
            )
        except Exception as error:
            self.state = "failed"
            self.load_error = client_message(error) if isinstance(error, TweetClassifierError) else FAILED_MESSAGE
            logger.exception("could not load model %s", self.settings.model)
            self.loaded.set()
            return
        self.predictor, self.monitor = predictor, monitor
        self.state = "ready"
        logger.info(
            "model %s ready in %.1f s (%d stored corrections replayed)",
            predictor.model_version,
            time.perf_counter() - started,
            replayed,
        )
        self.loaded.set()
        if background_checks:
            thread = threading.Thread(target=self._background_checks, name="canary", daemon=True)
            self._background.append(thread)
            thread.start()

    def _stored_corrections(self) -> list[dict[str, Any]]:
        """The local feedback file's records, and with FEEDBACK_REPO the dataset's, each correction once."""
        local = self.feedback_store.load()
        if self.feedback_hub is None:
            return local
        try:
            from_hub = self.feedback_hub.replay()
            self.feedback_hub.start()
        except Exception:
            logger.exception(
                "the feedback dataset %s is unreachable: corrections stay local", self.feedback_hub.repo_id
            )
            self.feedback_hub = None
            return local
        return merge_records(from_hub, local)

    def _background_checks(self) -> None:
        _lower_thread_priority()
        monitor = self._monitor()
        # Both come from the model folder (training writes them), never from the training data: a Space, a
        # Docker image or a laptop that pulled the model from the Hub has the folder and nothing else.
        reference, reason = read_reference(self._metadata_dir)
        if reference is not None:
            monitor.set_reference(reference)
        else:
            monitor.set_reference_unavailable(reason)
        canary, reason = canary_rows(
            self.settings.canary_file, self._metadata_dir, self._monitor().labels, self.config.canary_max_rows
        )
        if canary is None:
            monitor.set_canary_status(f"unavailable: {reason}")
            return
        texts, labels, source = canary
        # Batches go to the batch backend once it is warm; a canary split across two backends would
        # score neither of them.
        batch_ready = getattr(self._predictor(), "batch_ready", None)
        if batch_ready is not None:
            while not batch_ready.wait(0.1) and not self._stop.is_set():
                pass
        self.run_canary(texts, labels, source)

    # ---- readiness and access ------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _not_ready(self) -> ServiceNotReadyError:
        if self.state == "failed":
            return ServiceNotReadyError(FAILED_MESSAGE)
        return ServiceNotReadyError(LOADING_MESSAGE)

    def _predictor(self) -> PredictorLike:
        if self.predictor is None:
            raise self._not_ready()
        return self.predictor

    def _monitor(self) -> ServingMonitor:
        if self.monitor is None:
            raise self._not_ready()
        return self.monitor

    def health(self) -> tuple[int, dict[str, Any]]:
        if self.ready:
            return 200, {"status": "ready", "model_version": self._predictor().model_version}
        return 503, {"status": self.state, "detail": self.load_error or LOADING_MESSAGE}

    # ---- validation ----------------------------------------------------------------------------
    def _check_text(self, text: object, where: str = "text") -> str:
        """The predictor's input check, once per text and before the text waits for a model slot: type and
        length first (microseconds, before any O(n) work). ``where`` names the text in a batch or a CSV."""
        try:
            return self._predictor().validate(text)
        except TweetClassifierError as error:
            message = client_message(error)
            raise BadRequestError(message if where == "text" else f"{where}: {message}") from None

    def _check_texts(self, texts: object) -> list[str]:
        if not isinstance(texts, list | tuple):
            raise BadRequestError(f"texts must be a list of strings, got {type(texts).__name__}")
        if not texts:
            raise BadRequestError("texts is empty: send at least one text")
        if len(texts) > self.config.max_batch_texts:
            raise BadRequestError(
                f"texts has {len(texts)} items; the limit is {self.config.max_batch_texts}: split the batch"
            )
        for index, text in enumerate(texts):
            self._check_text(text, where=f"texts[{index}]")
        return list(texts)

    # ---- user requests -------------------------------------------------------------------------
    def predict(self, text: object, abandoned: threading.Event | None = None, explain: bool = False) -> dict[str, Any]:
        """One text; ``abandoned`` (set when the client disconnects) drops it if it is still waiting.

        ``explain=True`` adds ``explanation`` (explain.py: per-word attributions toward the label); the
        prediction then comes from the same batch as the word variants, so the words explain that label."""
        monitor = self._monitor()
        with monitor.track("predict_explain" if explain else "predict") as timing:
            # An explanation runs the text and its word variants as one batch on the batch backend.
            timing.backend = self._backend_name(batch=explain)
            checked = self._check_text(text)
            explanation = None
            if explain:
                explanation = self._run_model(self._explain, checked, abandoned)
                prediction = explanation.prediction
            else:
                prediction = self._run_model(self._predictor().predict, checked, abandoned)
            self._observe(checked, prediction)
            monitor.record_review([prediction.needs_review])
            timing.compute_ms = prediction.compute_ms
            timing.ok = True
            result = self._result(prediction, started=timing.started)
        if explanation is not None:
            result["explanation"] = [word.to_dict() for word in explanation.words]
        return result

    def _explain(self, text: str) -> Any:
        return explain_text(self._predictor(), text, self.config.explain_max_words)

    @property
    def review_threshold(self) -> float | None:
        """The model's review threshold (``calibration.json``); ``None`` when it flags nothing."""
        return getattr(self.predictor, "review_threshold", None)

    def predict_batch(self, texts: object, abandoned: threading.Event | None = None) -> list[dict[str, Any]]:
        monitor = self._monitor()
        with monitor.track("predict_batch", n_texts=len(texts) if isinstance(texts, list | tuple) else 0) as timing:
            checked = self._check_texts(texts)
            timing.backend = self._backend_name(batch=len(checked) > 1)
            predictions = self._run_model(self._predictor().predict_batch, checked, abandoned)
            for text, prediction in zip(checked, predictions, strict=True):
                self._observe(text, prediction)
            monitor.record_review([prediction.needs_review for prediction in predictions])
            timing.compute_ms = sum(prediction.compute_ms for prediction in predictions)
            timing.ok = True
            return [self._result(prediction, started=timing.started) for prediction in predictions]

    def _backend_name(self, batch: bool) -> str:
        """The backend a call runs on: the predictor sends one text to its single-text backend."""
        return str(getattr(self._predictor(), "backend_batch" if batch else "backend_single", "unknown"))

    def _run_model(
        self,
        function: Callable[[Any], ResultT],
        argument: Any,
        abandoned: threading.Event | None = None,
        max_wait_s: float | None = None,
    ) -> ResultT:
        """One model call in a slot; the predictor's input errors become this service's 422s.

        Waiting for the slot ends early, before any compute: with ``RequestAbandonedError`` once
        ``abandoned`` is set, with ``ServiceBusyError`` after ``max_wait_s`` (default: the config's
        ``max_queue_wait_s``) or when shutdown's admission window has closed.
        """
        deadline = time.monotonic() + (self.config.max_queue_wait_s if max_wait_s is None else max_wait_s)
        while not self._model_slots.acquire(timeout=SLOT_POLL_S):
            self._check_still_wanted(abandoned)
            if time.monotonic() > deadline:
                raise ServiceBusyError(BUSY_MESSAGE)
        try:
            self._check_still_wanted(abandoned)
            try:
                return function(argument)
            except TweetClassifierError as error:
                raise BadRequestError(client_message(error)) from None
        finally:
            self._model_slots.release()

    def _check_still_wanted(self, abandoned: threading.Event | None) -> None:
        if abandoned is not None and abandoned.is_set():
            raise RequestAbandonedError(ABANDONED_MESSAGE)
        # After SIGTERM, waiting requests may start during the first half of the grace, so whatever
        # starts has the second half to finish; later ones are answered at once instead of cut off.
        if (
            self._stopping_since is not None
            and time.monotonic() - self._stopping_since > self.config.graceful_shutdown_s / 2
        ):
            raise ServiceBusyError(SHUTTING_DOWN_MESSAGE)

    def _result(self, prediction: PredictionLike, started: float) -> dict[str, Any]:
        return {
            "label": prediction.label,
            "scores": {label: float(score) for label, score in prediction.scores.items()},
            "latency_ms": (time.perf_counter() - started) * 1000.0,
            "compute_ms": float(prediction.compute_ms),
            "normalized_text": prediction.normalized_text,
            "model_version": self._predictor().model_version,
            "needs_review": bool(prediction.needs_review),
        }

    def feedback(self, text: object, predicted: object, correct: object) -> dict[str, Any]:
        monitor = self._monitor()
        labels = monitor.labels
        checked = self._check_text(text)
        for name, value in (("predicted", predicted), ("correct", correct)):
            if value not in labels:
                raise BadRequestError(f"{name} label {str(value)[:50]!r} is unknown: choose one of {', '.join(labels)}")
        record = new_record(checked, str(predicted), str(correct), self._predictor().model_version)
        with self._feedback_lock:
            dropped = self.feedback_store.append(record)
            if self.feedback_hub is not None:
                self.feedback_hub.append(record)
            corrections = monitor.record_correction(str(predicted), str(correct), dropped_oldest=dropped)
        return {"stored": True, "corrections": corrections["n"], "macro_f1": corrections["macro_f1"]}

    def metrics(self) -> dict[str, Any]:
        base: dict[str, Any] = {"status": self.state}
        if self.monitor is None or self.predictor is None:
            return base | {"detail": self.load_error or LOADING_MESSAGE}
        base.update(
            model_version=self.predictor.model_version,
            labels=list(self.predictor.labels),
            backend={
                "single": getattr(self.predictor, "backend_single", "unknown"),
                "batch": getattr(self.predictor, "backend_batch", "unknown"),
            },
            review_threshold=self.review_threshold,
        )
        return base | self.monitor.snapshot(queue_depth=self.queue_depth())

    def timeline(self) -> dict[str, Any] | None:
        """The live plots' history (``ServingMonitor.timeline_snapshot``); ``None`` while loading."""
        return None if self.monitor is None else self.monitor.timeline_snapshot()

    # ---- drift -----------------------------------------------------------------------------------
    def _observe(self, text: str, prediction: PredictionLike) -> None:
        try:
            self._monitor().observe_input(
                text_traits(text), float(getattr(prediction, "unk_share", 0.0)), prediction.label
            )
        except Exception:
            # Drift bookkeeping must never fail a user request.
            logger.exception("drift bookkeeping failed for one request")

    # ---- canary --------------------------------------------------------------------------------
    def run_canary(self, texts: Sequence[str], labels: Sequence[str], source: Mapping[str, Any] | None = None) -> None:
        """Stream a labelled set through the same predictor as users, in small batches, behind users."""
        monitor = self._monitor()
        monitor.start_canary(total=len(texts), source=source)
        started = time.perf_counter()
        batch_size = self.config.canary_batch_size
        for start in range(0, len(texts), batch_size):
            if self._stop.is_set():
                monitor.set_canary_status("stopped")
                return
            # Yield to user traffic: wait while any user request is in flight.
            while monitor.busy() and not self._stop.is_set():
                time.sleep(0.005)
            batch = list(texts[start : start + batch_size])
            truth = list(labels[start : start + batch_size])
            try:
                valid = [index for index, text in enumerate(batch) if self._is_valid(text)]
                if not valid:
                    continue
                outcomes = self._predict_checked([batch[index] for index in valid], max_wait_s=math.inf)
            except ServiceBusyError:
                monitor.set_canary_status("stopped")
                return
            except Exception:
                logger.exception("canary batch at row %d failed", start)
                monitor.set_canary_status("failed (see the server log)")
                return
            scored = [(truth[index], outcome) for index, outcome in zip(valid, outcomes, strict=True)]
            predictions = [(label, outcome) for label, outcome in scored if not isinstance(outcome, str)]
            monitor.record_canary(
                [label for label, _ in predictions],
                [p.label for _, p in predictions],
                needs_review=[p.needs_review for _, p in predictions],
            )
        monitor.set_canary_status(f"done in {time.perf_counter() - started:.1f} s")

    def _is_valid(self, text: object) -> bool:
        try:
            self._check_text(text)
        except BadRequestError:
            return False
        return True

    def _predict_checked(self, texts: Sequence[str], max_wait_s: float | None = None) -> list[PredictionLike | str]:
        """Predictions of texts that passed ``_check_text``, as one batch; a text the predictor still refuses
        gets its error message in its place and the others are still scored.

        The one check left to the predictor is "empty after normalization", which needs the normalized text:
        rather than normalizing every row here first (each text twice), the rare batch that holds such a text
        is scored again text by text, so every text is normalized once, by the predictor.
        """
        try:
            return list(self._run_model(self._predictor().predict_batch, list(texts), max_wait_s=max_wait_s))
        except BadRequestError as error:
            if len(texts) == 1:
                return [str(error)]
        return [self._predict_checked([text], max_wait_s)[0] for text in texts]

    # ---- CSV batch -------------------------------------------------------------------------------
    def classify_csv(
        self,
        path: str | Path,
        text_column: str = "text",
        label_column: str = "label",
        output_dir: Path | None = None,
    ) -> CsvResult:
        """Classify every row of an uploaded CSV; the result file goes to ``output_dir`` (default: a
        new temporary folder). A row that cannot be classified gets its reason in the ``error`` column."""
        config = self.config
        frame = read_upload_csv(
            path, config.max_csv_bytes, config.max_csv_rows, config.max_csv_columns, config.max_csv_cell_chars
        )
        text_column, label_column = text_column_of(frame, text_column), (label_column or "").strip()
        monitor, predictor = self._monitor(), self._predictor()
        texts = frame[text_column].tolist()
        errors = ["" for _ in texts]
        checked = []
        for index, text in enumerate(texts):
            try:
                self._check_text(text, where=f"row {index + 1}")
            except BadRequestError as error:
                errors[index] = str(error)
            else:
                checked.append(index)
        predictions: dict[int, PredictionLike] = {}
        batch_size = self.settings.inference.batch_size
        with monitor.track("classify_csv", n_texts=len(checked)) as timing:
            timing.backend = self._backend_name(batch=len(checked) > 1)
            for start in range(0, len(checked), batch_size):
                chunk = checked[start : start + batch_size]
                for index, outcome in zip(chunk, self._predict_checked([texts[i] for i in chunk]), strict=True):
                    if isinstance(outcome, str):
                        errors[index] = f"row {index + 1}: {outcome}"
                    else:
                        predictions[index] = outcome
                        timing.compute_ms += outcome.compute_ms
            timing.ok = True
        output = prediction_frame(frame, predictions, predictor.labels, errors)
        report, n_scored, n_unknown = labelled_report(frame, label_column, predictions, predictor.labels)
        return CsvResult(
            output_path=write_safe_csv(output, output_dir),
            preview=output.head(20),
            n_rows=len(texts),
            n_invalid=len(texts) - len(predictions),
            report=report,
            n_scored=n_scored,
            n_unknown_labels=n_unknown,
        )

    # ---- model view ------------------------------------------------------------------------------
    def model_info(self) -> dict[str, Any]:
        """Model card numbers, cleaning report and manifest from the model folder (what exists of them)."""
        return read_model_view(self._predictor(), self._metadata_dir)


def _lower_thread_priority() -> None:
    # Linux applies nice values per thread: background work then loses the CPU to request handlers.
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        logger.debug("could not lower the canary thread's priority")
