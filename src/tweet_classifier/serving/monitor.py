"""Live numbers of a running server: latency, throughput, live F1 (canary + corrections), drift.

Pure logic and thread-safe: nothing here loads a model or starts a thread. ``serve.py`` feeds it
from request handlers and from the canary thread; the UI and ``/metrics`` read ``snapshot()``.
Every F1 comes from ``metrics`` (``confusion_report_dict``), so the app's numbers equal scikit-learn's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from tweet_classifier.drift import PREDICTED_LABEL, DriftReference
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.metrics import percentile_summary
from tweet_classifier.serving.drift_tracker import DriftTracker
from tweet_classifier.serving.live_f1 import LabelledStream, ReviewStream
from tweet_classifier.serving.timeline import Timeline
from tweet_classifier.text import TextTraits

logger = logging.getLogger(__name__)

__all__ = ["ServingMonitor"]


class MonitorError(TweetClassifierError):
    """A reference or feedback file cannot be used."""


class LatencyTracker:
    """Compute and whole-request latency over a rolling window, the first requests kept apart as cold."""

    def __init__(self, cold_requests: int, window: int) -> None:
        self.cold_requests = cold_requests
        self._cold: dict[str, list[float]] = {"compute_ms": [], "request_ms": []}
        self._warm: dict[str, deque[float]] = {"compute_ms": deque(maxlen=window), "request_ms": deque(maxlen=window)}
        self._seen = 0

    def add(self, compute_ms: float, request_ms: float) -> None:
        target = self._cold if self._seen < self.cold_requests else self._warm
        self._seen += 1
        target["compute_ms"].append(compute_ms)
        target["request_ms"].append(request_ms)

    def summary(self) -> dict[str, Any]:
        return {
            "warm": {name: percentile_summary(list(values)) for name, values in self._warm.items()},
            "cold": {name: percentile_summary(values) for name, values in self._cold.items()},
            "cold_requests": self.cold_requests,
        }


@dataclass
class RequestTiming:
    """Filled in by a handler inside ``ServingMonitor.track``: the model's share of the request."""

    endpoint: str
    n_texts: int = 1
    backend: str = ""  # the backend that ran it (the Prometheus histograms' label)
    compute_ms: float = 0.0
    ok: bool = False
    started: float = field(default_factory=time.perf_counter)


class ServingMonitor:
    """Everything ``/metrics`` reports, behind one lock."""

    def __init__(
        self,
        labels: Sequence[str],
        cold_requests: int = 20,
        latency_window: int = 2_000,
        throughput_window_s: float = 60.0,
        drift_window: int = 1_000,
        drift_min_samples: int = 50,
        drift_psi_threshold: float = 0.25,
        max_corrections: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
        timeline_bucket_s: float = 5.0,
        timeline_buckets: int = 120,
    ) -> None:
        self.labels = list(labels)
        self.max_corrections = max_corrections
        self._lock = threading.Lock()
        self._clock = clock
        self.started_at = clock()
        self.latency = LatencyTracker(cold_requests, latency_window)
        self.throughput_window_s = throughput_window_s
        self._finished: deque[tuple[float, int]] = deque()
        self.requests_served = 0
        self.texts_served = 0
        self.requests_failed = 0
        self.requests_rejected = 0
        self.requests_abandoned = 0
        self.in_flight = 0
        self.canary = LabelledStream(self.labels)
        self.canary_total = 0
        self.canary_status = "not started"
        # Where the canary rows come from and what they scored offline (model folder or CANARY_FILE).
        self.canary_source: dict[str, Any] = {}
        self.corrections = LabelledStream(self.labels)
        self.review = ReviewStream(self.labels)
        self.drift = DriftTracker(drift_window, drift_min_samples, drift_psi_threshold)
        # Told about each successful request after the monitor's own bookkeeping (``/metrics`` histograms).
        self.on_request: Callable[[RequestTiming, float], None] | None = None
        # The live plots' history. Every event below rolls it first (so a closed bucket holds the state
        # at its end); PSI is recomputed at most once per closed bucket and per read, never per request.
        self._psi: dict[str, float] | None = None
        self._psi_stale = True
        self.timeline = Timeline(
            self._timeline_state,
            bucket_s=timeline_bucket_s,
            n_buckets=timeline_buckets,
            started=self.started_at,
            started_wall=time.time(),
        )

    def _timeline_state(self) -> dict[str, Any]:
        """Canary, corrections and PSI numbers now (called by the timeline under ``self._lock``)."""
        canary, corrections = self.canary.summary(), self.corrections.summary()
        if self._psi_stale:
            drift = self.drift.summary()
            # Before drift_min_samples inputs PSI is noise: the plot shows no line rather than a spike.
            self._psi = drift["psi"] if drift["status"] in ("ok", "drift") else None
            self._psi_stale = False
        return {
            "canary_n": canary["n"] or None,
            "canary_macro_f1": canary["macro_f1"],
            "corrections_n": corrections["n"] or None,
            "corrections_macro_f1": corrections["macro_f1"],
            "psi": self._psi,
        }

    @contextmanager
    def track(self, endpoint: str, n_texts: int = 1) -> Iterator[RequestTiming]:
        """Count a user request in flight; on exit record its latency (only when it succeeded)."""
        timing = RequestTiming(endpoint=endpoint, n_texts=n_texts)
        with self._lock:
            self.in_flight += 1
        outcome = "failed"
        try:
            yield timing
        except BaseException as error:
            # Errors say what they count as ("rejected" for busy, "abandoned" for a client that left).
            outcome = getattr(error, "outcome", "failed")
            raise
        finally:
            request_ms = (time.perf_counter() - timing.started) * 1000.0
            with self._lock:
                self.in_flight -= 1
                if timing.ok:
                    self.requests_served += 1
                    self.texts_served += timing.n_texts
                    self.latency.add(timing.compute_ms, request_ms)
                    self._finished.append((self._clock(), timing.n_texts))
                    self.timeline.record_request(self._clock(), request_ms, timing.compute_ms, timing.n_texts)
                elif outcome == "rejected":
                    self.requests_rejected += 1
                elif outcome == "abandoned":
                    self.requests_abandoned += 1
                else:
                    self.requests_failed += 1
            if timing.ok and self.on_request is not None:
                try:
                    self.on_request(timing, request_ms)
                except Exception:
                    # Metrics export must never fail a request that was answered.
                    logger.exception("the request observer failed")

    def record_rejected(self) -> None:
        with self._lock:
            self.requests_rejected += 1

    def busy(self) -> bool:
        with self._lock:
            return self.in_flight > 0

    def observe_input(self, traits: TextTraits, unk_share: float, predicted_label: str) -> None:
        with self._lock:
            self.timeline.roll(self._clock())
            self.drift.observe(traits, unk_share, predicted_label)
            self._psi_stale = True

    def set_reference(self, reference: DriftReference) -> None:
        with self._lock:
            self.timeline.roll(self._clock())
            self.drift.set_reference(reference)
            self._psi_stale = True

    def set_reference_unavailable(self, reason: str) -> None:
        """Say in plain words why drift is not measured (shown in place of the drift verdict)."""
        with self._lock:
            self.drift.unavailable_reason = reason

    def start_canary(self, total: int, source: Mapping[str, Any] | None = None) -> None:
        with self._lock:
            self.canary_total = total
            self.canary_status = "running"
            self.canary_source = dict(source or {})

    def record_canary(
        self, y_true: Sequence[str], y_pred: Sequence[str], needs_review: Sequence[bool] | None = None
    ) -> None:
        with self._lock:
            self.timeline.roll(self._clock())
            self.canary.extend(y_true, y_pred)
            if needs_review is not None:
                self.review.observe_canary(y_true, y_pred, needs_review)

    def record_review(self, needs_review: Sequence[bool]) -> None:
        """Count user predictions and how many of them were flagged for a person."""
        with self._lock:
            self.review.observe(needs_review)

    def set_canary_status(self, status: str) -> None:
        with self._lock:
            self.canary_status = status

    def record_correction(self, predicted: str, correct: str, dropped_oldest: int = 0) -> dict[str, Any]:
        """Add one correction (O(labels^2) under the lock); forget the ``dropped_oldest`` records the
        feedback file just trimmed, and past ``max_corrections`` the oldest. Returns the new summary."""
        self._check_labels(predicted, correct)
        with self._lock:
            self.timeline.roll(self._clock())
            self.corrections.extend([correct], [predicted])
            self.corrections.drop_oldest(max(dropped_oldest, len(self.corrections) - self.max_corrections))
            return self.corrections.summary()

    def load_corrections(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Replay stored corrections (from ``FeedbackStore.load``); records with unknown labels are
        kept in order but not counted. Returns how many corrections the live F1 now counts."""
        pairs = [(record.get("correct"), record.get("predicted")) for record in records]
        with self._lock:
            self.timeline.roll(self._clock())
            self.corrections.extend([correct for correct, _ in pairs], [predicted for _, predicted in pairs])
            self.corrections.drop_oldest(len(self.corrections) - self.max_corrections)
            return self.corrections.summary()["n"]

    def corrections_summary(self) -> dict[str, Any]:
        with self._lock:
            return self.corrections.summary()

    def _check_labels(self, *values: str) -> None:
        for value in values:
            if value not in self.labels:
                raise MonitorError(f"unknown label {value!r}: choose one of {', '.join(self.labels)}")

    def _throughput(self, now: float) -> dict[str, float]:
        horizon = now - self.throughput_window_s
        while self._finished and self._finished[0][0] < horizon:
            self._finished.popleft()
        # Over the uptime while it is shorter than the window, so early numbers are not diluted.
        span = min(self.throughput_window_s, max(now - self.started_at, 1e-3))
        return {
            "window_s": self.throughput_window_s,
            "requests_per_s": len(self._finished) / span,
            "texts_per_s": sum(n for _, n in self._finished) / span,
        }

    def snapshot(self, queue_depth: int | None = None) -> dict[str, Any]:
        now = self._clock()
        with self._lock:
            canary = self.canary.summary()
            canary.update(status=self.canary_status, total=self.canary_total, source=dict(self.canary_source))
            return {
                "time": datetime.now(UTC).isoformat(timespec="seconds"),
                "uptime_s": now - self.started_at,
                "requests_served": self.requests_served,
                "texts_served": self.texts_served,
                "requests_failed": self.requests_failed,
                "requests_rejected": self.requests_rejected,
                "requests_abandoned": self.requests_abandoned,
                "in_flight": self.in_flight,
                "queue_depth": queue_depth,
                "throughput": self._throughput(now),
                "latency_ms": self.latency.summary(),
                "live_f1": {"canary": canary, "corrections": self.corrections.summary()},
                "review": self.review.summary(),
                "drift": self.drift.summary(),
            }

    def timeline_snapshot(self) -> dict[str, Any]:
        """The live plots' data: ``Timeline.to_dict`` plus the PSI threshold and the label mix (the
        training split's labels from the drift reference vs the recent predictions)."""
        with self._lock:
            series = self.timeline.to_dict(self._clock())
            reference = self.drift.reference
            series["psi_threshold"] = self.drift.psi_threshold
            series["label_mix"] = {
                "training": dict(reference.distributions.get(PREDICTED_LABEL, {})) if reference else {},
                "live": self.drift.livebin_shares(PREDICTED_LABEL),
            }
            return series
