"""``/v1/predict`` latency while users' corrections arrive (``scripts/load_with_corrections.py``).

Three phases against one server started in a subprocess: one client, N clients, N clients while
corrections arrive at a steady rate from a process of their own (each correction is an fsync'd append
to the feedback file, trimmed as it fills). The table compares the p95s; the stored corrections are
checked afterwards, so the measurement also proves none was lost.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from tweet_classifier.arguments import configure_logging
from tweet_classifier.metrics import percentile_summary
from tweet_classifier.serving.latency import (
    PROBE_TEXT,
    add_served_model_arguments,
    model_to_serve,
    paced_http_clients,
    server_process,
)

logger = logging.getLogger(__name__)

CORRECTION_LABELS = ("negative", "neutral", "positive")


def send_corrections(base_url: str, rate_per_s: float, stop: threading.Event, senders: int = 10) -> dict[str, int]:
    """POST /v1/feedback at ``rate_per_s`` in total (``senders`` threads on a fixed schedule) until
    ``stop`` is set; returns how many were stored and how many failed."""
    counts = {"stored": 0, "failed": 0}
    lock = threading.Lock()
    interval_s = senders / rate_per_s

    def sender(index: int) -> None:
        next_start = time.monotonic() + interval_s * index / senders
        count = 0
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while not stop.is_set():
                pause = next_start - time.monotonic()
                if pause > 0 and stop.wait(pause):
                    return
                next_start = max(next_start + interval_s, time.monotonic())
                correct = CORRECTION_LABELS[(index + count) % len(CORRECTION_LABELS)]
                count += 1
                try:
                    response = http.post(
                        "/v1/feedback",
                        json={"text": f"correction {index}-{count}", "predicted": "neutral", "correct": correct},
                    )
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                with lock:
                    counts["stored" if ok else "failed"] += 1

    threads = [threading.Thread(target=sender, args=(index,), daemon=True) for index in range(senders)]
    for thread in threads:
        thread.start()
    stop.wait()
    for thread in threads:
        thread.join(60)
    return counts


def _send_corrections_until_stopped(base_url: str, rate_per_s: float, ready: Any, stop: Any, counts: Any) -> None:
    ready.set()
    counts.put(send_corrections(base_url, rate_per_s, stop))


class CorrectionsProcess:
    """``send_corrections`` in a process of its own, as corrections come from other clients: its
    threads never compete with the measured clients for one interpreter lock."""

    def __init__(self, base_url: str, rate_per_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._stop, ready, self._counts = context.Event(), context.Event(), context.Queue()
        self._process = context.Process(
            target=_send_corrections_until_stopped,
            args=(base_url, rate_per_s, ready, self._stop, self._counts),
            daemon=True,
        )
        self._process.start()
        if not ready.wait(120):
            self._process.kill()
            raise RuntimeError("the corrections process did not start")

    def stop(self) -> dict[str, int]:
        self._stop.set()
        counts = self._counts.get(timeout=120)
        self._process.join(30)
        return counts


def load_with_corrections(
    base_url: str,
    clients: int = 16,
    duration_s: float = 20.0,
    rounds: int = 2,
    interval_s: float = 0.05,
    corrections_per_s: float = 50.0,
    texts: Sequence[str] = (PROBE_TEXT,),
) -> dict[str, Any]:
    """/v1/predict with 1 client, with ``clients`` clients, and with ``clients`` clients while
    corrections arrive at ``corrections_per_s``; the three phases take turns for ``rounds`` rounds
    so a drifting machine slows all of them alike."""
    phases = {"single": (1, 0.0), "clients": (clients, 0.0), "clients_corrections": (clients, corrections_per_s)}
    pooled: dict[str, dict[str, Any]] = {
        name: {"client_ms": [], "server_ms": [], "failures": [], "corrections": {"stored": 0, "failed": 0}, "s": 0.0}
        for name in phases
    }
    for _ in range(rounds):
        for name, (n_clients, rate) in phases.items():
            sender = CorrectionsProcess(base_url, rate) if rate else None
            started = time.perf_counter()
            outcome = paced_http_clients(base_url, n_clients, duration_s, interval_s, texts)
            elapsed = time.perf_counter() - started
            corrections = sender.stop() if sender is not None else {}
            phase = pooled[name]
            for key in ("client_ms", "server_ms", "failures"):
                phase[key].extend(outcome[key])
            for key in ("stored", "failed"):
                phase["corrections"][key] += corrections.get(key, 0)
            phase["s"] += elapsed
    results: dict[str, Any] = {
        "clients": clients,
        "interval_ms": interval_s * 1000.0,
        "rounds": rounds,
        "duration_s": duration_s,
        "corrections_per_s": corrections_per_s,
        "phases": {},
    }
    for name, (n_clients, rate) in phases.items():
        phase = pooled[name]
        results["phases"][name] = {
            "clients": n_clients,
            "corrections_per_s": phase["corrections"]["stored"] / phase["s"] if rate else 0.0,
            "corrections_failed": phase["corrections"]["failed"],
            "failed": len(phase["failures"]),
            "failures": sorted(set(phase["failures"]))[:5],
            "client_ms": percentile_summary(phase["client_ms"]),
            "server_ms": percentile_summary(phase["server_ms"]),
        }
    single_p95 = results["phases"]["single"]["client_ms"]["p95"]
    with_corrections = results["phases"]["clients_corrections"]["client_ms"]["p95"]
    without = results["phases"]["clients"]["client_ms"]["p95"]
    results["p95_ratio_vs_single"] = with_corrections / single_p95 if single_p95 else None
    results["p95_ratio_vs_no_corrections"] = with_corrections / without if without else None
    return results


def format_load_with_corrections(results: dict[str, Any]) -> str:
    names = {
        "single": "1 client",
        "clients": f"{results['clients']} clients",
        "clients_corrections": f"{results['clients']} clients + corrections",
    }
    rows = [("phase", "corrections/s", "requests", "failed", "p50 ms", "p95 ms", "p99 ms", "server p95 ms")]
    for name, label in names.items():
        phase = results["phases"][name]
        latency = phase["client_ms"]
        rows.append(
            (
                label,
                f"{phase['corrections_per_s']:.1f}",
                str(latency["n"]),
                str(phase["failed"] + phase["corrections_failed"]),
                f"{latency['p50']:.2f}",
                f"{latency['p95']:.2f}",
                f"{latency['p99']:.2f}",
                f"{phase['server_ms']['p95']:.2f}",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    offered = results["clients"] * 1000.0 / results["interval_ms"] if results["interval_ms"] else float("inf")
    served = results["phases"]["clients"]["client_ms"]["n"] / (results["rounds"] * results["duration_s"])
    lines.insert(
        0,
        f"each client starts a request every {results['interval_ms']:.0f} ms (at once when one runs over): "
        f"{results['clients']} clients offer {offered:.0f} requests/s, {served:.0f}/s were served",
    )
    lines.append(
        f"p95 with corrections / 1-client p95: {results['p95_ratio_vs_single']:.2f}x; "
        f"/ {results['clients']}-client p95 without corrections: {results['p95_ratio_vs_no_corrections']:.2f}x"
    )
    return "\n".join(lines)


def write_stored_corrections(path: Path, count: int) -> None:
    """A feedback file already holding ``count`` corrections, as a server that has been up a while has."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as stream:
        for index in range(count):
            correct = CORRECTION_LABELS[index % len(CORRECTION_LABELS)]
            record = {"time": "2026-01-01T00:00:00+00:00", "text": f"stored {index}", "predicted": "neutral"}
            stream.write(json.dumps(record | {"correct": correct}) + "\n")


def wait_for_start_up_work(base_url: str, timeout_s: float, interval_s: float = 0.5) -> str:
    """Wait until the server's start-up canary has finished (it runs whenever no prediction is in
    flight, so it would otherwise take CPU in the gaps of a measurement); returns its status."""
    deadline = time.monotonic() + timeout_s
    while True:
        status = str(httpx.get(f"{base_url}/v1/metrics", timeout=30).json()["live_f1"]["canary"]["status"])
        if status not in ("not started", "running") or time.monotonic() > deadline:
            return status
        time.sleep(interval_s)


def load_with_corrections_main(argv: Sequence[str] | None = None) -> int:
    # Deferred: ui.py imports gradio (seconds), which the probe's main never needs.
    from tweet_classifier.serving.ui import EXAMPLE_TWEETS

    parser = argparse.ArgumentParser(description="/v1/predict p95: 1 client, N clients, N clients + corrections")
    add_served_model_arguments(parser, port=7862)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--interval-ms",
        type=float,
        nargs="+",
        default=[200.0, 50.0],
        help="each client's request spacing, one run per value (0: back to back)",
    )
    parser.add_argument("--corrections-per-s", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=15.0, help="per phase and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stored-corrections", type=int, default=9_990, help="corrections in the file at start")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    model = model_to_serve(args)
    with tempfile.TemporaryDirectory(prefix="load-corrections-") as scratch:
        feedback = Path(scratch) / "feedback.jsonl"
        write_stored_corrections(feedback, args.stored_corrections)
        with server_process(model, args.port, extra_env={"FEEDBACK_FILE": str(feedback)}) as base_url:
            for text in EXAMPLE_TWEETS * 5:  # past the cold requests
                httpx.post(f"{base_url}/v1/predict", json={"text": text}, timeout=30).raise_for_status()
            canary = wait_for_start_up_work(base_url, timeout_s=600)
            runs = [
                load_with_corrections(
                    base_url,
                    clients=args.clients,
                    duration_s=args.seconds,
                    rounds=args.rounds,
                    interval_s=interval_ms / 1000.0,
                    corrections_per_s=args.corrections_per_s,
                    texts=EXAMPLE_TWEETS,
                )
                for interval_ms in args.interval_ms
            ]
            counted = httpx.get(f"{base_url}/v1/metrics", timeout=30).json()["live_f1"]["corrections"]["n"]
    if args.json:
        sys.stdout.write(json.dumps({"runs": runs, "corrections_at_end": counted}, indent=2) + "\n")
        return 0
    header = (
        f"{args.rounds} rounds of {args.seconds:.0f} s per phase, phases taking turns, after the start-up canary "
        f"({canary}); the server started with {args.stored_corrections:,} stored corrections"
    )
    tables = [format_load_with_corrections(results) for results in runs]
    sys.stdout.write("\n\n".join([header, *tables]) + f"\n\nlive corrections counted at the end: {counted:,}\n")
    return 0
