"""`make bench-bulk`: `tweet-classifier predict` against the plain `transformers` pipeline on the same files.

    .venv/bin/python scripts/bench_bulk.py --model models/airline [--repeat-rows 100000] [--json OUT]

The files: the airline test split as the model folder's canary rows hold it (`canary.jsonl`: the split's
normalized `text`, the whole split when `canary.json` says so), and a file of `--repeat-rows` rows made
by repeating it. Each job runs in a fresh Python process of its own, one at a time, so its peak RSS is
its own:

* `pipeline`: `transformers.pipeline("text-classification")` at batch 32 over the file read in chunks,
  labels written to a CSV: the end-to-end job a script would write without this project;
* `predict`: `bulk.local.predict_file`, what `tweet-classifier predict` runs (auto backend, length bucketing);
* `predict, input order`: the same with batches of 32 in input order (`plan_batches` replaced), to
  show what length bucketing gains;
* `predict-ray`: the same with `--engine ray` (`bulk.ray_engine.predict_on_ray`) on a local Ray cluster of
  one actor per core, one intra-op thread each; the cluster is started before the clock, like the model
  is loaded before it. Its peak RSS is the largest sum over the driver and every process under it (the
  Ray services and the actors, each holding a model), sampled every 0.2 s;
* `model only`: `Predictor.load` + warm-up, the model's own peak RSS;
* `api-sample`: the app itself (its FastAPI routes on the service the server builds, in process) answers
  one `POST /v1/predict_batch` of the file's first 256 rows, the largest request it takes; the table's
  last column is the share of `predict`'s labels equal to the app's on those rows.

Texts/s count the scoring (read, score, write) after the model is loaded, for every job alike.
Prints a markdown table with ratios to the pipeline of the same run.
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger("bench_bulk")
BATCH = 32
JOBS = ("pipeline", "predict", "predict-input-order", "predict-ray")
# Texts of the /v1/predict_batch sample: the largest request the app takes (serve.max_batch_texts).
API_SAMPLE = 256
# How often the Ray job samples its processes' RSS.
RSS_SAMPLE_S = 0.2


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _worker(job: str, model: Path, source: Path, output: Path, threads: int) -> dict[str, float]:
    """One job in this (fresh) process; returns its numbers."""
    if job == "pipeline":
        import torch
        from transformers import TextClassificationPipeline, pipeline

        torch.set_num_threads(threads)
        # The plain pipeline, not the folder's own (custom_pipelines): what transformers does unaided.
        classify = pipeline(
            "text-classification", model=str(model), device="cpu", pipeline_class=TextClassificationPipeline
        )
        started = time.perf_counter()
        rows = 0
        with output.open("w", encoding="utf-8") as handle:
            handle.write("label,score\n")
            for chunk in pd.read_csv(source, dtype=object, keep_default_na=False, chunksize=4096):
                texts = chunk["text"].tolist()
                for start in range(0, len(texts), BATCH):
                    for result in classify(texts[start : start + BATCH], batch_size=BATCH, truncation=True):
                        handle.write(f"{result['label']},{result['score']}\n")
                rows += len(texts)
        return {"seconds": time.perf_counter() - started, "rows": rows, "peak_rss_mb": _peak_rss_mb()}

    from tweet_classifier.inference import predictor
    from tweet_classifier.inference.bulk import local, sources

    if job == "predict-input-order":
        # What bucketing gains: the same job with batches of 32 in input order.
        predictor.plan_batches = lambda lengths, batch_size, *args, **kwargs: [
            list(range(start, min(start + batch_size, len(lengths)))) for start in range(0, len(lengths), batch_size)
        ]
    if job == "api-sample":
        return _api_worker(model, source, output)
    loaded = predictor.Predictor.load(model, num_threads=threads, batch_size=BATCH)
    if job == "model":
        return {"seconds": 0.0, "rows": 0, "peak_rss_mb": _peak_rss_mb(), "backend": loaded.backend_batch}
    if job == "predict-ray":
        return _ray_worker(loaded, model, source, output, threads)
    started = time.perf_counter()
    summary = local.predict_file(loaded, sources.open_source(str(source)), output, overwrite=True)
    return {
        "seconds": time.perf_counter() - started,
        "rows": summary.rows,
        "peak_rss_mb": _peak_rss_mb(),
        "backend": loaded.backend_batch,
    }


def _api_worker(model: Path, source: Path, output: Path) -> dict[str, float]:
    """One POST /v1/predict_batch of the first API_SAMPLE texts to the app itself (its FastAPI routes, the
    service as `python -m tweet_classifier.serving.server` builds it, in process), once the batch backend
    it serves batches with is ready."""
    from fastapi.testclient import TestClient

    from tweet_classifier.serving.http import create_app
    from tweet_classifier.serving.service import ClassifierService
    from tweet_classifier.serving.settings import ServeSettings

    texts = pd.read_csv(source, dtype=object, keep_default_na=False, nrows=API_SAMPLE)["text"].tolist()
    settings = ServeSettings.from_env(env={"MODEL_ID": str(model)}, feedback_file=output.with_suffix(".feedback.jsonl"))
    service = ClassifierService(settings)
    service.start(background_checks=False)
    try:
        if not (service.wait_until_loaded(600) and service.predictor.batch_ready.wait(600)):
            raise SystemExit(f"the app did not load {model} within 10 minutes")
        with TestClient(create_app(service, with_ui=False)) as client:
            response = client.post("/v1/predict_batch", json={"texts": texts})
        response.raise_for_status()
        results = response.json()["results"]
        backend = service.predictor.backend_batch
    finally:
        service.close()
    pd.DataFrame({"label": [result["label"] for result in results]}).to_csv(output, index=False)
    return {"seconds": 0.0, "rows": len(results), "peak_rss_mb": _peak_rss_mb(), "backend": backend}


def _ray_worker(loaded: Any, model: Path, source: Path, output: Path, threads: int) -> dict[str, float]:
    """`predict --engine ray` with `threads` actors on a local cluster; peak RSS of the whole process tree."""
    import threading

    import psutil

    from tweet_classifier.inference.bulk import ray_engine, sources

    ray_engine.start_ray(None, threads)
    root = psutil.Process()
    peak = [0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(RSS_SAMPLE_S):
            total = 0
            for process in [root, *root.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    continue  # a process that ended between the listing and the read
            peak[0] = max(peak[0], total / 2**20)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    args = argparse.Namespace(
        num_actors=threads, ray_address=None, num_threads=None, text_column="text", prefix="", encoding="utf-8"
    )
    args.output = output
    load = {"model": model, "revision": None, "backend": loaded.backend_batch, "batch_size": BATCH}
    started = time.perf_counter()
    summary = ray_engine.predict_on_ray(loaded, sources.open_source(str(source)), args, load, {"overwrite": True})
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    return {"seconds": seconds, "rows": summary.rows, "peak_rss_mb": peak[0], "backend": loaded.backend_batch}


def _run_job(job: str, model: Path, source: Path, work: Path, threads: int) -> dict[str, float]:
    output = work / f"{source.stem}-{job}.csv"
    command = [sys.executable, __file__, "--worker", job, "--model", str(model), "--source", str(source)]
    command += ["--output", str(output), "--threads", str(threads)]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _labels_agree(work: Path, source: Path, job: str, other: str) -> float:
    """The share of rows where two jobs' labels agree (over the shorter output, for the API sample)."""
    predicted = pd.read_csv(work / f"{source.stem}-{job}.csv", usecols=["label"])["label"].to_numpy()
    reference = pd.read_csv(work / f"{source.stem}-{other}.csv", usecols=["label"])["label"].to_numpy()
    rows = min(len(predicted), len(reference))
    return float((predicted[:rows] == reference[:rows]).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/airline"))
    parser.add_argument("--repeat-rows", type=int, default=100_000, help="rows of the repeated file (0: none)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--worker", choices=[*JOBS, "model", "api-sample"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from tweet_classifier.artifact import read_canary
    from tweet_classifier.inference.backends import default_num_threads

    threads = args.threads or default_num_threads()
    if args.worker:
        sys.stdout.write(json.dumps(_worker(args.worker, args.model, args.source, args.output, threads)) + "\n")
        return 0
    canary = read_canary(args.model)
    if canary is None:
        raise SystemExit(f"{args.model} has no canary.jsonl (the test split): re-run `tweet-classifier export`")
    if canary.provenance.get("sampling") != "the whole test split":
        logger.warning("%s/canary.jsonl holds %s, not the whole split", args.model, canary.provenance.get("sampling"))
    test = pd.DataFrame({"text": canary.texts})
    results: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-bulk-") as folder:
        work = Path(folder)
        files = {f"test split ({len(test):,} rows)": work / "test.csv"}
        test.to_csv(files[next(iter(files))], index=False)
        if args.repeat_rows:
            copies = args.repeat_rows // len(test) + 1
            repeated = pd.concat([test] * copies, ignore_index=True).iloc[: args.repeat_rows]
            files[f"repeated ({args.repeat_rows:,} rows)"] = work / "repeated.csv"
            repeated.to_csv(files[f"repeated ({args.repeat_rows:,} rows)"], index=False)
        model_only = _run_job("model", args.model, files[next(iter(files))], work, threads)
        for name, source in files.items():
            results[name] = {}
            for job in JOBS:
                logger.info("%s: %s", name, job)
                row = results[name][job] = _run_job(job, args.model, source, work, threads)
                logger.info(
                    "%s %s: %.0f texts/s, peak RSS %.0f MB", name, job, row["rows"] / row["seconds"], row["peak_rss_mb"]
                )
            results[name]["predict"]["agreement"] = _labels_agree(work, source, "predict", "pipeline")
            results[name]["predict-ray"]["agreement"] = _labels_agree(work, source, "predict-ray", "pipeline")
            results[name]["predict-ray"]["equal_to_predict"] = _labels_agree(work, source, "predict-ray", "predict")
            _run_job("api-sample", args.model, source, work, threads)
            results[name]["predict"]["equal_to_api"] = _labels_agree(work, source, "predict", "api-sample")
    lines = [
        f"Model `{args.model.name}`, batch backend `{model_only['backend']}`, {threads} threads, batch {BATCH}; "
        f"the model alone (load + warm-up) peaks at {model_only['peak_rss_mb']:.0f} MB RSS.",
        "",
        "| file | job | texts/s | x pipeline | peak RSS MB | RSS over the model's own | labels = pipeline "
        f"| labels = predict | labels = /v1/predict_batch (first {API_SAMPLE}) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, jobs in results.items():
        anchor = jobs["pipeline"]["rows"] / jobs["pipeline"]["seconds"]
        for job, row in jobs.items():
            speed = row["rows"] / row["seconds"]
            over = row["peak_rss_mb"] - model_only["peak_rss_mb"] if job != "pipeline" else None
            lines.append(
                f"| {name} | {job} | {speed:,.0f} | {speed / anchor:.2f}x | {row['peak_rss_mb']:.0f} | "
                f"{'' if over is None else f'{over:+.0f}'} | "
                + " | ".join(
                    "" if key not in row else format(row[key], ".4f")
                    for key in ("agreement", "equal_to_predict", "equal_to_api")
                )
                + " |"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model_only": model_only, "results": results}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
