"""What a client measures against a running server: the model's cost over an empty endpoint, and load.

``probe_api_latency`` times the same request shape against an empty endpoint (``/v1/noop``, Gradio
``/noop``; present when the server runs with ``latency_probe``) and against ``/predict``, over raw
HTTP and through gradio_client, so "what the model adds" is a difference measured in one run.
``run_load`` drives N concurrent gradio_client users for a duration. ``scripts/api_latency.py`` and
the load test call these; a server is started in a subprocess so client and server do not share a GIL.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from tweet_classifier.arguments import configure_logging
from tweet_classifier.metrics import percentile_summary
from tweet_classifier.serving.settings import newest_local_model

logger = logging.getLogger(__name__)

PROBE_TEXT = "@united flight 1234 delayed again, 3 hours on the tarmac and no updates http://t.co/x 😡"
LATENCY_PROBE_ENV = "TWEET_CLASSIFIER_LATENCY_PROBE"


def wait_until_healthy(
    base_url: str, timeout_s: float, process: subprocess.Popen | None = None, interval_s: float = 0.1
) -> None:
    """Poll ``GET /healthz`` until it answers 200; fail at once if ``process`` has exited."""
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            output = process.stderr.read()[-2000:] if process.stderr else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output}")
        try:
            if httpx.get(f"{base_url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"server at {base_url} was not ready after {timeout_s:.0f} s")
        time.sleep(interval_s)


def time_calls(calls: dict[str, Callable[[], object]], repeats: int, warmup: int) -> dict[str, list[float]]:
    """Milliseconds of ``repeats`` rounds after ``warmup`` untimed ones; each round calls every entry once.

    Interleaving the calls means slow drift of a noisy machine hits every entry alike, so their
    difference is the cost of what differs between them.
    """
    for _ in range(warmup):
        for call in calls.values():
            call()
    timings: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            timings[name].append((time.perf_counter() - started) * 1000.0)
    return timings


def probe_api_latency(base_url: str, repeats: int = 200, warmup: int = 20, text: str = PROBE_TEXT) -> dict[str, Any]:
    """p50/p95 of an empty endpoint and of /predict, over raw HTTP and gradio_client, and their differences."""
    # Deferred here and in run_load: gradio_client's import costs about a second, and the load with
    # corrections (raw HTTP only) never needs it.
    from gradio_client import Client

    with httpx.Client(base_url=base_url, timeout=30) as http:

        def raw(path: str) -> Callable[[], object]:
            def call() -> object:
                response = http.post(path, json={"text": text})
                response.raise_for_status()
                return response

            return call

        client = Client(base_url, verbose=False)
        timings = time_calls(
            {
                "http_noop": raw("/v1/noop"),
                "http_predict": raw("/v1/predict"),
                "gradio_noop": lambda: client.predict(text, api_name="/noop"),
                "gradio_predict": lambda: client.predict(text, api_name="/predict"),
            },
            repeats,
            warmup,
        )
    results: dict[str, Any] = {name: percentile_summary(values) for name, values in timings.items()}
    metrics = httpx.get(f"{base_url}/v1/metrics", timeout=30).json()
    results["server_compute_ms"] = metrics["latency_ms"]["warm"]["compute_ms"]
    results["server_request_ms"] = metrics["latency_ms"]["warm"]["request_ms"]
    results["model_adds_p50_ms"] = {
        "http": results["http_predict"]["p50"] - results["http_noop"]["p50"],
        "gradio_client": results["gradio_predict"]["p50"] - results["gradio_noop"]["p50"],
    }
    return results


def run_load(
    base_url: str, clients: int = 16, duration_s: float = 60.0, texts: Sequence[str] = (PROBE_TEXT,)
) -> dict[str, Any]:
    """``clients`` gradio_client users, each calling /predict back to back for ``duration_s``."""
    # Deferred: gradio loads only where the UI or a client is built (start-up time).
    from gradio_client import Client

    timings: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def user(index: int) -> None:
        client = Client(base_url, verbose=False)
        count = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                client.predict(texts[(index + count) % len(texts)], api_name="/predict")
            except Exception as error:
                with lock:
                    failures.append(f"{type(error).__name__}: {error}"[:200])
            else:
                with lock:
                    timings.append((time.perf_counter() - started) * 1000.0)
            count += 1

    threads = [threading.Thread(target=user, args=(index,), daemon=True) for index in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 120)
    elapsed = time.perf_counter() - started
    return {
        "clients": clients,
        "duration_s": elapsed,
        "requests": len(timings),
        "failed": len(failures),
        "failures": sorted(set(failures))[:10],
        "throughput_rps": len(timings) / elapsed,
        "latency_ms": percentile_summary(timings),
    }


@contextmanager
def server_process(
    model: str | Path, port: int, extra_env: dict[str, str] | None = None, startup_timeout_s: float = 180.0
) -> Iterator[str]:
    """``app.py``'s server in a subprocess on loopback with the latency probe endpoints; yields its URL."""
    env = os.environ | {
        "MODEL_ID": str(model),
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        LATENCY_PROBE_ENV: "1",
    }
    env |= extra_env or {}
    process = subprocess.Popen(
        [sys.executable, "-m", "tweet_classifier.serving.server", "--log-level", "WARNING"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(base_url, startup_timeout_s, process=process)
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()


def format_probe(results: dict[str, Any]) -> str:
    rows = [("path", "p50 ms", "p95 ms", "n")]
    for name in (
        "http_noop",
        "http_predict",
        "gradio_noop",
        "gradio_predict",
        "server_compute_ms",
        "server_request_ms",
    ):
        values = results[name]
        rows.append((name, f"{values['p50']:.2f}", f"{values['p95']:.2f}", str(values["n"])))
    width = max(len(row[0]) for row in rows)
    lines = [f"{row[0]:<{width}}  {row[1]:>8}  {row[2]:>8}  {row[3]:>5}" for row in rows]
    adds = results["model_adds_p50_ms"]
    lines.append(
        f"model adds (p50): {adds['http']:.2f} ms over raw HTTP, {adds['gradio_client']:.2f} ms via gradio_client"
    )
    return "\n".join(lines)


def add_served_model_arguments(parser: argparse.ArgumentParser, port: int) -> None:
    parser.add_argument(
        "--model", default=None, help="model folder or Hub id (default: MODEL_ID or newest under models/)"
    )
    parser.add_argument("--port", type=int, default=port)


def model_to_serve(args: argparse.Namespace) -> str:
    return args.model or os.environ.get("MODEL_ID") or str(newest_local_model())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="p50/p95 of /predict vs an empty endpoint, raw HTTP and gradio_client")
    add_served_model_arguments(parser, port=7861)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--load-clients", type=int, default=0, help="also run a load test with this many clients")
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    configure_logging("WARNING")
    model = model_to_serve(args)
    with server_process(model, args.port) as base_url:
        results = probe_api_latency(base_url, repeats=args.repeats, warmup=args.warmup)
        if args.load_clients:
            results["load"] = run_load(base_url, clients=args.load_clients, duration_s=args.load_seconds)
    if args.json:
        sys.stdout.write(json.dumps(results, indent=2) + "\n")
    else:
        sys.stdout.write(format_probe(results) + "\n")
        if "load" in results:
            load = results["load"]
            sys.stdout.write(
                f"load: {load['clients']} clients, {load['requests']} requests, {load['failed']} failed, "
                f"{load['throughput_rps']:.1f} req/s, p50 {load['latency_ms']['p50']:.1f} ms, "
                f"p95 {load['latency_ms']['p95']:.1f} ms\n"
            )
    return 0


def paced_http_clients(
    base_url: str, clients: int, duration_s: float, interval_s: float, texts: Sequence[str]
) -> dict[str, Any]:
    """``clients`` raw-HTTP clients (one keep-alive connection each) calling /v1/predict for
    ``duration_s``, each starting a request every ``interval_s`` (0: back to back); a request that
    overruns its slot starts the next one at once. Client-side and server-reported milliseconds."""
    client_ms: list[float] = []
    server_ms: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def client(index: int) -> None:
        # Spread the clients' phases over one interval so they do not all fire at once.
        next_start = time.monotonic() + interval_s * index / max(clients, 1)
        count = 0
        with httpx.Client(base_url=base_url, timeout=30) as http:
            while True:
                pause = next_start - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                if time.monotonic() >= deadline:
                    return
                next_start = max(next_start + interval_s, time.monotonic())
                started = time.perf_counter()
                try:
                    response = http.post("/v1/predict", json={"text": texts[(index + count) % len(texts)]})
                    response.raise_for_status()
                    handled_ms = float(response.json()["latency_ms"])
                except Exception as error:
                    with lock:
                        failures.append(f"{type(error).__name__}: {error}"[:200])
                else:
                    with lock:
                        client_ms.append((time.perf_counter() - started) * 1000.0)
                        server_ms.append(handled_ms)
                count += 1

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 60)
    return {"client_ms": client_ms, "server_ms": server_ms, "failures": failures}
