"""Live numbers of a running server: latency, throughput, live F1 (canary + corrections), drift.

Pure logic and thread-safe: nothing here loads a model or starts a thread. ``serve.py`` feeds it
from request handlers and from the canary thread; the UI and ``/metrics`` read ``snapshot()``.
Every F1 comes from ``metrics`` (``confusion_report_dict``), so the app's numbers equal scikit-learn's.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from tweet_classifier.artifact import REFERENCE_NAME
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.metrics import confusion_report_dict
from tweet_classifier.serving.timeline import Timeline
from tweet_classifier.text import TextTraits, text_traits

logger = logging.getLogger(__name__)

__all__ = ["REFERENCE_NAME", "DriftReference", "FeedbackStore", "ServingMonitor"]
REFERENCE_FORMAT_VERSION = 1
PERCENTILES = (50, 95, 99)

# Bin edges (left-closed) for the numeric drift features; the last bin is open-ended.
# Tweets are capped at 280 characters, so longer inputs land in their own, telling, bin.
CHAR_BINS = (0, 40, 80, 120, 160, 200, 281)
WORD_BINS = (0, 5, 10, 15, 20, 30)
# Share of [UNK] tokens: exactly zero is by far the most common value, so it gets its own bin.
UNK_BINS = (0.0, 1e-9, 0.05, 0.15, 0.3)
BINARY_TRAITS = ("has_url", "has_mention", "has_emoji", "has_hashtag")
PREDICTED_LABEL = "predicted_label"
# Smoothing so an empty bin on one side gives a large but finite PSI.
PSI_EPSILON = 1e-4


class MonitorError(TweetClassifierError):
    """A reference or feedback file cannot be used."""


def percentile_summary(values: Sequence[float]) -> dict[str, float | int | None]:
    """p50/p95/p99/mean/max of ``values`` (numpy's linear interpolation), ``None`` when empty."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "max": None}
    array = np.asarray(values, dtype=float)
    p50, p95, p99 = np.percentile(array, PERCENTILES)
    return {
        "n": int(array.size),
        "p50": float(p50),
        "p95": float(p95),
        "p99": float(p99),
        "mean": float(array.mean()),
        "max": float(array.max()),
    }


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


def _bin_name(edges: Sequence[float], value: float, unit: str = "") -> str:
    index = int(np.searchsorted(np.asarray(edges), value, side="right")) - 1
    index = max(index, 0)
    low = edges[index]
    if index == len(edges) - 1:
        return f">={low:g}{unit}"
    return f"{low:g}-{edges[index + 1]:g}{unit}"


def unk_share(token_ids: Sequence[int], unk_id: int | None) -> float:
    """Share of ``[UNK]`` among a text's tokens (no special tokens): 0 without an unknown-token id."""
    if unk_id is None or not token_ids:
        return 0.0
    return sum(1 for token in token_ids if token == unk_id) / len(token_ids)


def drift_bins(traits: TextTraits, unk_share: float) -> dict[str, str]:
    """The bin each drift feature of one text falls in (same function for reference and live)."""
    bins = {
        "n_chars": _bin_name(CHAR_BINS, traits.n_chars),
        "n_words": _bin_name(WORD_BINS, traits.n_words),
        "unk_share": "0" if unk_share <= 0 else _bin_name(UNK_BINS, unk_share),
    }
    for name in BINARY_TRAITS:
        bins[name] = "yes" if bool(getattr(traits, name)) else "no"
    return bins


def population_stability_index(expected: Mapping[str, float], actual: Mapping[str, float]) -> float:
    """PSI = sum (actual - expected) * ln(actual / expected) over the union of bins (shares, smoothed)."""
    total = 0.0
    for name in set(expected) | set(actual):
        expected_share = max(float(expected.get(name, 0.0)), PSI_EPSILON)
        actual_share = max(float(actual.get(name, 0.0)), PSI_EPSILON)
        total += (actual_share - expected_share) * math.log(actual_share / expected_share)
    return total


def _shares(counts: Mapping[str, int]) -> dict[str, float]:
    total = sum(counts.values())
    return {name: count / total for name, count in sorted(counts.items())} if total else {}


@dataclass
class DriftReference:
    """Feature distributions of the training split (shares per bin) and its label mix."""

    n: int
    distributions: dict[str, dict[str, float]]
    source: str = "training split"
    format_version: int = REFERENCE_FORMAT_VERSION

    @classmethod
    def from_observations(
        cls, observations: Iterable[tuple[TextTraits, float, str]], source: str = "training split"
    ) -> DriftReference:
        """Build from ``(traits, unk_share, label)`` triples; the label mix is compared with predictions."""
        counts: dict[str, Counter[str]] = {}
        n = 0
        for traits, unk_share, label in observations:
            n += 1
            for feature, bin_name in drift_bins(traits, unk_share).items():
                counts.setdefault(feature, Counter())[bin_name] += 1
            counts.setdefault(PREDICTED_LABEL, Counter())[label] += 1
        if n == 0:
            raise MonitorError("cannot build a drift reference from zero texts: pass the training split")
        return cls(n=n, distributions={name: _shares(counter) for name, counter in counts.items()}, source=source)

    @classmethod
    def from_split(
        cls,
        raw_texts: Sequence[str],
        unk_shares: Sequence[float],
        labels: Sequence[str],
        source: str = "training split",
    ) -> DriftReference:
        """The reference of a data split: traits of the raw texts (as users type them), the ``[UNK]``
        share of the normalized texts (as the model sees them) and the labels; what the server observes."""
        return cls.from_observations(
            (
                (text_traits(str(raw)), float(share), str(label))
                for raw, share, label in zip(raw_texts, unk_shares, labels, strict=True)
            ),
            source=source,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "n": self.n,
            "source": self.source,
            "distributions": self.distributions,
        }

    def save(self, path: str | Path) -> Path:
        from tweet_classifier.artifact import write_json_atomic

        return write_json_atomic(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> DriftReference:
        try:
            values = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(
                n=int(values["n"]),
                distributions={
                    str(feature): {str(name): float(share) for name, share in shares.items()}
                    for feature, shares in values["distributions"].items()
                },
                source=str(values.get("source", REFERENCE_NAME)),
                format_version=int(values.get("format_version", REFERENCE_FORMAT_VERSION)),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
            raise MonitorError(
                f"drift reference {path} is unreadable ({type(error).__name__}): re-export the model "
                "(`tweet-classifier export --model DIR` rewrites it from the training split where the data is)"
            ) from None


class DriftTracker:
    """Live distributions over the last ``window`` texts vs a reference; PSI per feature."""

    def __init__(self, window: int, min_samples: int, psi_threshold: float) -> None:
        self.window = window
        self.min_samples = min_samples
        self.psi_threshold = psi_threshold
        self.reference: DriftReference | None = None
        # Why there is no reference, once that is known (an older or third-party model folder).
        self.unavailable_reason: str | None = None
        self._recent: deque[dict[str, str]] = deque(maxlen=window)
        self._counts: dict[str, Counter[str]] = {}

    def set_reference(self, reference: DriftReference) -> None:
        self.reference = reference

    def observe(self, traits: TextTraits, unk_share: float, predicted_label: str) -> None:
        bins = drift_bins(traits, unk_share)
        bins[PREDICTED_LABEL] = predicted_label
        if len(self._recent) == self._recent.maxlen:
            for feature, bin_name in self._recent[0].items():
                self._counts[feature][bin_name] -= 1
        self._recent.append(bins)
        for feature, bin_name in bins.items():
            self._counts.setdefault(feature, Counter())[bin_name] += 1

    def live_shares(self, feature: str) -> dict[str, float]:
        """Shares of each bin of ``feature`` over the recent window (``predicted_label``: the label mix)."""
        return _shares(+self._counts.get(feature, Counter()))

    def summary(self) -> dict[str, Any]:
        live = {feature: _shares(+counter) for feature, counter in self._counts.items()}
        n = len(self._recent)
        result: dict[str, Any] = {
            "n": n,
            "window": self.window,
            "threshold": self.psi_threshold,
            "reference": None if self.reference is None else {"n": self.reference.n, "source": self.reference.source},
            "live": live,
            "psi": {},
            "drifted": [],
            "status": "waiting",
            "message": "",
        }
        if self.reference is None:
            result["status"] = "unavailable" if self.unavailable_reason else "waiting"
            result["message"] = self.unavailable_reason or "Loading the training reference; drift is not measured yet."
            return result
        result["psi"] = {
            feature: population_stability_index(self.reference.distributions[feature], live.get(feature, {}))
            for feature in self.reference.distributions
        }
        if n < self.min_samples:
            result["message"] = f"Collecting inputs: {n} of {self.min_samples} needed before drift is scored."
            return result
        drifted = sorted(
            (feature for feature, psi in result["psi"].items() if psi > self.psi_threshold),
            key=lambda feature: -result["psi"][feature],
        )
        result["drifted"] = drifted
        if drifted:
            result["status"] = "drift"
            worst = drifted[0]
            result["message"] = (
                f"Warning: recent inputs differ from the training data in {', '.join(drifted)} "
                f"(PSI {result['psi'][worst]:.2f} > {self.psi_threshold:g} for {worst}). "
                "Predictions may be less accurate than the test metrics say; check the new inputs and "
                "consider retraining on them."
            )
        else:
            result["status"] = "ok"
            result["message"] = (
                f"No drift: every feature's PSI is at most {self.psi_threshold:g} over the last {n} inputs."
            )
        return result


class LabelledStream:
    """True and predicted labels arriving over time, kept as confusion counts.

    Each update costs O(1) and each summary O(labels^2) (``metrics.confusion_report_dict``, the same
    numbers as scikit-learn), whatever the number of pairs. The pairs are kept in arrival order so
    the oldest can be dropped when the record they came from is trimmed; a ``None`` pair stands for
    a record whose labels this model does not know (it keeps the order, counts nothing).
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)
        self._index = {label: index for index, label in enumerate(self.labels)}
        self._counts = [[0] * len(self.labels) for _ in self.labels]
        self._pairs: deque[tuple[int, int] | None] = deque()
        self._n = 0
        self._summary: dict[str, Any] | None = None

    def extend(self, y_true: Sequence[str | None], y_pred: Sequence[str | None]) -> None:
        for truth, guess in zip(y_true, y_pred, strict=True):
            pair = None
            if isinstance(truth, str) and isinstance(guess, str) and truth in self._index and guess in self._index:
                pair = (self._index[truth], self._index[guess])
                self._counts[pair[0]][pair[1]] += 1
                self._n += 1
            self._pairs.append(pair)
        self._summary = None

    def drop_oldest(self, count: int) -> None:
        for _ in range(min(count, len(self._pairs))):
            pair = self._pairs.popleft()
            if pair is not None:
                self._counts[pair[0]][pair[1]] -= 1
                self._n -= 1
        if count:
            self._summary = None

    def __len__(self) -> int:
        return len(self._pairs)

    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            if not self._n:
                self._summary = {"n": 0, "macro_f1": None, "accuracy": None, "per_class_f1": {}}
            else:
                report = confusion_report_dict(self._counts, self.labels)
                self._summary = {
                    "n": report["n"],
                    "macro_f1": report["macro_f1"],
                    "accuracy": report["accuracy"],
                    "per_class_f1": {label: values["f1"] for label, values in report["per_class"].items()},
                }
        return dict(self._summary)


class ReviewStream:
    """Selective prediction, live: the share of user texts flagged ``needs_review`` and the canary's
    macro-F1 on the predictions kept (not flagged), i.e. what acting automatically scores now."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.texts = 0
        self.flagged = 0
        self.canary_kept = LabelledStream(labels)
        self.canary_flagged = 0

    def observe(self, needs_review: Sequence[bool]) -> None:
        self.texts += len(needs_review)
        self.flagged += sum(bool(flag) for flag in needs_review)

    def observe_canary(self, y_true: Sequence[str], y_pred: Sequence[str], needs_review: Sequence[bool]) -> None:
        kept = [index for index, flag in enumerate(needs_review) if not flag]
        self.canary_kept.extend([y_true[index] for index in kept], [y_pred[index] for index in kept])
        self.canary_flagged += len(needs_review) - len(kept)

    def summary(self) -> dict[str, Any]:
        kept = self.canary_kept.summary()
        canary_total = kept["n"] + self.canary_flagged
        return {
            "texts": self.texts,
            "needs_review": self.flagged,
            "share": self.flagged / self.texts if self.texts else None,
            "canary": kept
            | {"total": canary_total, "share": self.canary_flagged / canary_total if canary_total else None},
        }


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
            skipped = 0
            with self.path.open(encoding="utf-8", errors="replace") as stream:
                for line in stream:
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError:
                        skipped += 1
                        continue
                    if isinstance(record, dict) and {"predicted", "correct"} <= set(record):
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
                "live": self.drift.live_shares(PREDICTED_LABEL),
            }
            return series
