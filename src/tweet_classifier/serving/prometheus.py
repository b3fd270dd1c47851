"""``GET /metrics``: the serving monitor in the Prometheus text format, for scraping a fleet of replicas.

The JSON at ``/v1/metrics`` stays the app's own view; this is the same state in the convention that
Text Embeddings Inference, Triton, vLLM and BentoML expose, so a Prometheus server can scrape every
replica and alert on it. Everything is built on ``prometheus_client``:

* per-request latency histograms (``..._request_duration_seconds`` and the model's share,
  ``..._compute_duration_seconds``) labelled by endpoint and backend, observed as each request ends;
* counters and gauges read from the ``ServingMonitor`` at scrape time by a custom collector (requests by
  outcome, texts, texts flagged for review, in-flight requests, queue depth, canary, kept-canary and
  corrections macro-F1, PSI per drift feature), so the two endpoints can never disagree about a count.

Each service has its own ``CollectorRegistry`` (nothing is registered at import time, and two services in
one process, as in the tests, do not collide). Latencies are in seconds, as the Prometheus naming
guidelines ask; the buckets span the 1 ms single-text path to multi-second batch uploads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from tweet_classifier.serving.monitor import RequestTiming

PREFIX = "tweet_classifier"
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
OUTCOMES = ("served", "failed", "rejected", "abandoned")

__all__ = ["CONTENT_TYPE_LATEST", "ServiceMetrics"]


class _SnapshotCollector(Collector):
    """Counters and gauges from one ``/v1/metrics`` snapshot, taken when Prometheus scrapes."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snapshot = self._snapshot()
        ready = GaugeMetricFamily(f"{PREFIX}_ready", "1 once the model is loaded and serving, else 0")
        ready.add_metric([], 1.0 if snapshot.get("status") == "ready" else 0.0)
        yield ready
        if "requests_served" not in snapshot:  # still loading, or the model failed to load
            return
        backend = snapshot.get("backend", {})
        info = InfoMetricFamily(f"{PREFIX}_model", "the served model's version and backends")
        info.add_metric(
            [],
            {
                "model_version": str(snapshot.get("model_version", "")),
                "backend_single": str(backend.get("single", "")),
                "backend_batch": str(backend.get("batch", "")),
            },
        )
        yield info
        requests = CounterMetricFamily(f"{PREFIX}_requests", "user requests that ended, by outcome", labels=["outcome"])
        for outcome in OUTCOMES:
            requests.add_metric([outcome], float(snapshot.get(f"requests_{outcome}", 0)))
        yield requests
        yield CounterMetricFamily(f"{PREFIX}_texts", "texts classified", value=float(snapshot["texts_served"]))
        yield GaugeMetricFamily(f"{PREFIX}_in_flight", "requests being served now", value=float(snapshot["in_flight"]))
        if snapshot.get("queue_depth") is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_queue_depth", "Gradio events waiting in the queue", value=float(snapshot["queue_depth"])
            )
        yield from self._live_f1(snapshot.get("live_f1", {}))
        yield from self._review(snapshot.get("review") or {})
        yield from self._drift(snapshot.get("drift", {}))

    @staticmethod
    def _live_f1(live: dict[str, Any]) -> Iterator[Metric]:
        for name, what in (("canary", "labelled canary rows"), ("corrections", "users' corrections")):
            stream = live.get(name, {})
            yield GaugeMetricFamily(f"{PREFIX}_{name}_rows", f"{what} scored so far", value=float(stream.get("n", 0)))
            if stream.get("macro_f1") is not None:
                yield GaugeMetricFamily(
                    f"{PREFIX}_{name}_macro_f1", f"macro-F1 on the {what}", value=float(stream["macro_f1"])
                )

    @staticmethod
    def _review(review: dict[str, Any]) -> Iterator[Metric]:
        if "texts" not in review:
            return
        yield CounterMetricFamily(
            f"{PREFIX}_review_flagged_texts", "user texts flagged needs_review", value=float(review["needs_review"])
        )
        kept = review.get("canary", {})
        if kept.get("macro_f1") is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_canary_kept_macro_f1",
                "macro-F1 on the canary rows not flagged for review (what acting automatically scores)",
                value=float(kept["macro_f1"]),
            )

    @staticmethod
    def _drift(drift: dict[str, Any]) -> Iterator[Metric]:
        if drift.get("threshold") is not None:
            yield GaugeMetricFamily(
                f"{PREFIX}_drift_psi_threshold", "PSI above which a feature counts as drifted", value=drift["threshold"]
            )
        psi = GaugeMetricFamily(
            f"{PREFIX}_drift_psi", "population stability index of live inputs against training", labels=["feature"]
        )
        for feature, value in sorted((drift.get("psi") or {}).items()):
            if value is not None:
                psi.add_metric([feature], float(value))
        yield psi


class ServiceMetrics:
    """One service's registry: request histograms it is told about, and the monitor's state on scrape."""

    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.request_seconds = Histogram(
            f"{PREFIX}_request_duration_seconds",
            "time from a request's arrival to its answer, for requests that succeeded",
            ["endpoint", "backend"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.compute_seconds = Histogram(
            f"{PREFIX}_compute_duration_seconds",
            "the model's share of a successful request (normalization, tokenization, forward pass)",
            ["endpoint", "backend"],
            buckets=LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.registry.register(_SnapshotCollector(snapshot))

    def observe(self, timing: RequestTiming, request_ms: float) -> None:
        """Called by ``ServingMonitor.track`` when a request succeeded."""
        labels = (timing.endpoint, timing.backend or "unknown")
        self.request_seconds.labels(*labels).observe(request_ms / 1000.0)
        self.compute_seconds.labels(*labels).observe(timing.compute_ms / 1000.0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
