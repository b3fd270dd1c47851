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
* `model only`: `Predictor.load` + warm-up, the model's own peak RSS.

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

import pandas as pd

logger = logging.getLogger("bench_bulk")
BATCH = 32
JOBS = ("pipeline", "predict", "predict-input-order")


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
    loaded = predictor.Predictor.load(model, num_threads=threads, batch_size=BATCH)
    if job == "model":
        return {"seconds": 0.0, "rows": 0, "peak_rss_mb": _peak_rss_mb(), "backend": loaded.backend_batch}
    started = time.perf_counter()
    summary = local.predict_file(loaded, sources.open_source(str(source)), output, overwrite=True)
    return {
        "seconds": time.perf_counter() - started,
        "rows": summary.rows,
        "peak_rss_mb": _peak_rss_mb(),
        "backend": loaded.backend_batch,
    }


def _run_job(job: str, model: Path, source: Path, work: Path, threads: int) -> dict[str, float]:
    output = work / f"{source.stem}-{job}.csv"
    command = [sys.executable, __file__, "--worker", job, "--model", str(model), "--source", str(source)]
    command += ["--output", str(output), "--threads", str(threads)]
    finished = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(finished.stdout.strip().splitlines()[-1])


def _labels_agree(work: Path, source: Path) -> float:
    predicted = pd.read_csv(work / f"{source.stem}-predict.csv", usecols=["label"])["label"]
    piped = pd.read_csv(work / f"{source.stem}-pipeline.csv", usecols=["label"])["label"]
    return float((predicted.to_numpy() == piped.to_numpy()).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/airline"))
    parser.add_argument("--repeat-rows", type=int, default=100_000, help="rows of the repeated file (0: none)")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument("--worker", choices=[*JOBS, "model"], help=argparse.SUPPRESS)
    parser.add_argument("--source", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    from tweet_classifier.artifact import read_canary
    from tweet_classifier.inference.predictor import default_num_threads

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
            results[name]["predict"]["agreement"] = _labels_agree(work, source)
    lines = [
        f"Model `{args.model.name}`, batch backend `{model_only['backend']}`, {threads} threads, batch {BATCH}; "
        f"the model alone (load + warm-up) peaks at {model_only['peak_rss_mb']:.0f} MB RSS.",
        "",
        "| file | job | texts/s | x pipeline | peak RSS MB | RSS over the model's own | labels = pipeline |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, jobs in results.items():
        anchor = jobs["pipeline"]["rows"] / jobs["pipeline"]["seconds"]
        for job, row in jobs.items():
            speed = row["rows"] / row["seconds"]
            over = row["peak_rss_mb"] - model_only["peak_rss_mb"] if job != "pipeline" else None
            lines.append(
                f"| {name} | {job} | {speed:,.0f} | {speed / anchor:.2f}x | {row['peak_rss_mb']:.0f} | "
                f"{'' if over is None else f'{over:+.0f}'} | "
                f"{'' if 'agreement' not in row else format(row['agreement'], '.4f')} |"
            )
    sys.stdout.write("\n".join(lines) + "\n")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model_only": model_only, "results": results}, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
