"""The live panel's history: a fixed ring of time buckets, so the UI can draw lines without keeping
every request.

Per bucket (``bucket_s`` seconds; the newest ``n_buckets`` are kept, 5 s x 120 = the last 10 minutes):

* request and compute latency as a capped uniform sample (a reservoir of ``sample_cap`` values each),
  so p50/p95 per bucket are exact while a bucket holds at most ``sample_cap`` requests (51 requests/s
  at 5 s x 256) and estimates from an unbiased sample beyond that; memory stays fixed whatever the load;
* the number of requests and texts finished in it (throughput = requests / bucket length);
* the *state* when it closed: canary and corrections (n, macro-F1) and PSI per drift feature. These
  change only on events (a canary batch, a correction, an observed input); the monitor rolls the
  timeline before applying each event, so a closed bucket's state is exactly the state at its end,
  and an idle stretch repeats the previous state.

Memory: ``n_buckets * (2 * sample_cap floats + a few numbers per feature)``, about 0.5 MB at the
defaults. Nothing here takes a lock: ``ServingMonitor`` calls it under its own.
"""

from __future__ import annotations

import math
import random
from array import array
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

SAMPLE_CAP = 256
SERIES_COLUMNS = (
    "requests",
    "requests_per_s",
    "request_p50",
    "request_p95",
    "compute_p50",
    "compute_p95",
    "canary_n",
    "canary_macro_f1",
    "corrections_n",
    "corrections_macro_f1",
)


class Reservoir:
    """A uniform sample of at most ``cap`` values (Vitter's algorithm R) in a flat float array.

    Written here rather than taken from a library: it is ten lines, and the monitor needs it without
    new dependencies on the request path."""

    __slots__ = ("_random", "cap", "seen", "values")

    def __init__(self, cap: int, rng: random.Random) -> None:
        self.cap = cap
        self.seen = 0
        self.values = array("d")
        self._random = rng

    def add(self, value: float) -> None:
        self.seen += 1
        if len(self.values) < self.cap:
            self.values.append(value)
            return
        slot = self._random.randrange(self.seen)
        if slot < self.cap:
            self.values[slot] = value

    def p50_p95(self) -> tuple[float | None, float | None]:
        if not self.values:
            return None, None
        p50, p95 = np.percentile(np.frombuffer(self.values, dtype=float), (50, 95))
        return float(p50), float(p95)


@dataclass
class Bucket:
    index: int  # buckets since the timeline started: it covers [started + index * bucket_s, + bucket_s)
    request_ms: Reservoir
    compute_ms: Reservoir
    requests: int = 0
    texts: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # sampled when the bucket closes


class Timeline:
    """The newest ``n_buckets`` buckets. ``sample_state()`` returns the monitor's current canary,
    corrections and PSI numbers; it is called once per closed bucket and once per read."""

    def __init__(
        self,
        sample_state: Callable[[], dict[str, Any]],
        bucket_s: float = 5.0,
        n_buckets: int = 120,
        sample_cap: int = SAMPLE_CAP,
        started: float = 0.0,
        started_wall: float = 0.0,
        seed: int = 0,
    ) -> None:
        if bucket_s <= 0 or n_buckets < 2 or sample_cap < 1:
            raise ValueError(
                f"a timeline needs bucket_s > 0, n_buckets >= 2 and sample_cap >= 1, got {bucket_s}, "
                f"{n_buckets} and {sample_cap}"
            )
        self.bucket_s = bucket_s
        self.n_buckets = n_buckets
        self.sample_cap = sample_cap
        self.started = started
        self.started_wall = started_wall
        self._sample_state = sample_state
        self._random = random.Random(seed)
        self._buckets: deque[Bucket] = deque(maxlen=n_buckets)

    def roll(self, now: float) -> Bucket:
        """The bucket ``now`` falls in; closes the previous one (its state sampled) when time moved on.

        Call it before applying an event, so the closed bucket's state leaves that event out. Idle
        buckets in a gap are not stored (``to_dict`` fills them in)."""
        index = max(0, math.floor((now - self.started) / self.bucket_s))
        if self._buckets and self._buckets[-1].index >= index:
            return self._buckets[-1]
        if self._buckets:
            self._buckets[-1].state = self._sample_state()
        bucket = Bucket(index, Reservoir(self.sample_cap, self._random), Reservoir(self.sample_cap, self._random))
        self._buckets.append(bucket)
        return bucket

    def record_request(self, now: float, request_ms: float, compute_ms: float, n_texts: int) -> None:
        bucket = self.roll(now)
        bucket.requests += 1
        bucket.texts += n_texts
        bucket.request_ms.add(request_ms)
        bucket.compute_ms.add(compute_ms)

    def to_dict(self, now: float) -> dict[str, Any]:
        """Columnar and JSON-able: one entry per bucket of the window that ends at ``now``, idle buckets
        included (zero requests, no latency, the state carried forward). ``t`` is each bucket's end in
        epoch seconds; the last bucket is the open one and ends at ``now``. ``psi`` maps each drift
        feature to its column (``None`` where there is no PSI yet)."""
        current = self.roll(now)
        first = max(0, current.index - self.n_buckets + 1)
        by_index = {bucket.index: bucket for bucket in self._buckets}
        state: dict[str, Any] = {}
        states: list[dict[str, Any]] = []
        columns: dict[str, list[Any]] = {"t": [], **{name: [] for name in SERIES_COLUMNS}}
        for index in range(first, current.index + 1):
            bucket = by_index.get(index)
            if bucket is current:
                state = self._sample_state()
                end = self.started_wall + (now - self.started)
                span = max(now - (self.started + index * self.bucket_s), 1e-3)
            else:
                state = (bucket.state if bucket is not None else {}) or state
                end = self.started_wall + (index + 1) * self.bucket_s
                span = self.bucket_s
            requests = bucket.requests if bucket is not None else 0
            request_p50, request_p95 = bucket.request_ms.p50_p95() if bucket is not None else (None, None)
            compute_p50, compute_p95 = bucket.compute_ms.p50_p95() if bucket is not None else (None, None)
            values = {
                "requests": requests,
                "requests_per_s": requests / span,
                "request_p50": request_p50,
                "request_p95": request_p95,
                "compute_p50": compute_p50,
                "compute_p95": compute_p95,
            }
            for name in SERIES_COLUMNS[6:]:
                values[name] = state.get(name)
            columns["t"].append(end)
            for name in SERIES_COLUMNS:
                columns[name].append(values[name])
            states.append(state)
        features = list(dict.fromkeys(feature for item in states for feature in item.get("psi") or {}))
        psi = {feature: [(item.get("psi") or {}).get(feature) for item in states] for feature in features}
        return {"bucket_s": self.bucket_s, "n_buckets": self.n_buckets, **columns, "psi": psi}
