"""Every backend against the plain ``transformers.pipeline``, on the same real test tweets, in one run.

``tweet-classifier benchmark --model DIR [--config C] [--json OUT] [--texts N]``

Per backend (the pipeline first, as the anchor): p50/p95/p99 latency of one text at a time
(normalization and tokenization included), texts/s at batch 32 measured two ways, load + warm-up time,
peak RSS, label agreement with the pipeline and macro-F1 on the test split. The two throughputs:

* ``texts/s @32, slices``: the caller hands over 32 texts per call, in input order (a client sending
  batches of 32 to the API). A backend can only reorder inside those 32 (``plan_batches`` splits them
  into runs of similar length).
* ``texts/s @32, whole list``: the caller hands over the whole test split in one call and the model runs
  batches of at most 32 (``pipeline(texts, batch_size=32)`` against ``Predictor.predict_batch`` with
  ``batch_size=32``), what a scoring script and ``tweet-classifier predict`` do. The pipeline batches in
  input order; the predictor sorts by token count first (``plan_batches``), so almost no padding is
  computed.

The last row, ``auto``, is what the app serves: ``Predictor.load(defer_batch=True)`` with the backends
``auto`` picks (one for single texts, one for batches). Its load time is the app's model start-up (ready
and warm for every request, imports included); ``batch_ready_s`` is when the batch backend, loading in
the background, has taken over batches (the latency and throughput passes start after it).

Each backend is measured in a fresh Python process (``--isolation subprocess``, the default) so that
load time includes the imports a real start pays and peak RSS is that backend's alone; ``--isolation
none`` measures in this process (fast, for tests: load times are then warm and RSS is the running
maximum of the whole process).

Noise: on a shared 2-core VM the same backend's p50 moves by 10-20% from one minute to the next.
``--rounds N`` measures every backend N times, interleaved (pipeline, backends, pipeline, ...), and
reports each figure's median over the rounds, so drift hits the anchor and the backends alike. Within a
round, texts/s is the faster of two passes over the texts: the first pass meets every batch shape for
the first time (oneDNN builds its bf16 kernels per shape), which a running server has long paid.

The pipeline sees the same normalized text as the backends (the ``text`` column): it has no normalizer
of its own, and feeding it raw tweets would measure the normalizer, not the inference engine.
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

from tweet_classifier.arguments import add_config_arguments
from tweet_classifier.artifact import BENCHMARK_NAME, inspect_model_folder, write_json_atomic
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.backend_choice import choose_backends, read_parity
from tweet_classifier.inference.backends import (
    BACKENDS,
    CASCADE_BACKEND,
    backend_available,
    cpu_description,
    default_num_threads,
)
from tweet_classifier.inference.parity import THROUGHPUT_PASSES, batch_throughput, single_latencies_ms
from tweet_classifier.inference.predictor import Predictor
from tweet_classifier.metrics import classification_report_dict, percentile

logger = logging.getLogger(__name__)

PIPELINE = "pipeline"
AUTO = "auto"
THROUGHPUT_BATCH = 32
# The two throughputs of each row: batches of 32 handed over one call each, and the whole list in one call.
THROUGHPUTS = ("texts_per_s", "whole_list_texts_per_s")
DEFAULT_MODEL = Path("models/airline")
# One-text latency over at most this many texts: percentiles settle long before, and it keeps runs short.
MAX_LATENCY_TEXTS = 500


class BenchmarkError(TweetClassifierError):
    """A backend could not be measured."""


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_backend(model_dir: Path, backend: str, texts: list[str], threads: int) -> dict[str, Any]:
    """Time one backend on ``texts``; returns the row (without the comparisons) plus its predicted labels.

    Load time starts before any import, so a fresh process's figure is what a cold start pays.
    """
    serves: list[str] = []
    batch_ready_s = None
    started = time.perf_counter()
    if backend == PIPELINE:
        import torch  # torch is heavy (seconds): imported only when this runs
        from transformers import TextClassificationPipeline, pipeline

        torch.set_num_threads(threads)
        # The plain pipeline, not the folder's own (custom_pipelines, hf_pipeline.py): the reference is what
        # transformers does with no help from this project.
        classifier = pipeline(
            "text-classification", model=str(model_dir), device="cpu", pipeline_class=TextClassificationPipeline
        )
        classifier(texts[0])

        def predict_one(text: str) -> str:
            return str(classifier(text)[0]["label"])

        def predict_many(batch: list[str]) -> list[str]:
            return [str(item["label"]) for item in classifier(batch, batch_size=THROUGHPUT_BATCH)]

    else:
        # auto loads the way the app does: ready once the single-text backend is warm, batches join later.
        predictor = Predictor.load(
            model_dir, backend=backend, num_threads=threads, batch_size=THROUGHPUT_BATCH, defer_batch=backend == AUTO
        )

        def predict_one(text: str) -> str:
            return predictor.predict(text).label

        def predict_many(batch: list[str]) -> list[str]:
            return [prediction.label for prediction in predictor.predict_batch(batch)]

    load_s = time.perf_counter() - started
    if backend == AUTO:
        predictor.batch_ready.wait()
        batch_ready_s = time.perf_counter() - started
        serves = [predictor.backend_single, predictor.backend_batch]
    latencies_ms = single_latencies_ms(predict_one, texts[:MAX_LATENCY_TEXTS])
    texts_per_s, labels = batch_throughput(predict_many, texts, THROUGHPUT_BATCH)
    # The whole list in one call: the model still runs batches of THROUGHPUT_BATCH (its batch_size).
    whole_list_texts_per_s, _ = batch_throughput(predict_many, texts, len(texts))
    row = {
        "backend": backend,
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p95_ms": round(percentile(latencies_ms, 95), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "texts_per_s": round(texts_per_s, 1),
        "whole_list_texts_per_s": round(whole_list_texts_per_s, 1),
        "load_s": round(load_s, 3),
        "rss_mb": round(_peak_rss_mb(), 1),
        "labels": labels,
    }
    if backend == AUTO:
        row |= {"serves": serves, "batch_ready_s": round(batch_ready_s or 0.0, 3)}
    return row


def _measure_in_subprocess(model_dir: Path, backend: str, texts_file: Path, threads: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        result_file = Path(scratch) / "result.json"
        command = [
            sys.executable,
            "-m",
            "tweet_classifier.inference.benchmark",
            str(model_dir),
            backend,
            str(texts_file),
            str(threads),
            str(result_file),
        ]
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0 or not result_file.is_file():
            tail = "\n".join(completed.stderr.strip().splitlines()[-5:])
            raise BenchmarkError(f"measuring {backend} failed (exit {completed.returncode}): {tail}")
        row: dict[str, Any] = json.loads(result_file.read_text(encoding="utf-8"))
        return row


def _worker_main(argv: list[str]) -> int:
    """Entry point of one measurement subprocess: model_dir backend texts.json threads result.json."""
    model_dir, backend, texts_file, threads, result_file = argv
    texts = json.loads(Path(texts_file).read_text(encoding="utf-8"))
    row = measure_backend(Path(model_dir), backend, texts, int(threads))
    write_json_atomic(result_file, row)
    return 0


def benchmark(
    model_dir: Path,
    texts: list[str],
    truth: list[str],
    isolation: str = "subprocess",
    threads: int | None = None,
    rounds: int = 1,
) -> dict[str, Any]:
    """Measure the pipeline, every available backend and ``auto``; returns ``{"chosen": ..., "rows": [...]}``."""
    if not texts:
        raise BenchmarkError("no texts to benchmark on: the test split is empty")
    if rounds < 1:
        raise BenchmarkError(f"rounds must be at least 1, got {rounds}")
    manifest, weights_sha256 = inspect_model_folder(model_dir)
    backends = [name for name in BACKENDS if backend_available(model_dir, name)]
    if len(backends) < len(BACKENDS):
        logger.warning(
            "no ONNX files in %s: run `tweet-classifier export --model %s` to include them", model_dir, model_dir
        )
    threads = threads or default_num_threads()
    measured: dict[str, list[dict[str, Any]]] = {name: [] for name in (PIPELINE, *backends, AUTO)}
    with tempfile.TemporaryDirectory() as scratch:
        texts_file = Path(scratch) / "texts.json"
        texts_file.write_text(json.dumps(texts), encoding="utf-8")
        for round_number in range(1, rounds + 1):
            for backend in measured:
                logger.info(
                    "round %d/%d: measuring %s on %d texts (%s)", round_number, rounds, backend, len(texts), isolation
                )
                if isolation == "subprocess":
                    measured[backend].append(_measure_in_subprocess(model_dir, backend, texts_file, threads))
                else:
                    measured[backend].append(measure_backend(model_dir, backend, texts, threads))
    rows = [_median_row(runs) for runs in measured.values()]
    anchor_labels = rows[0]["labels"]
    for row in rows:
        predicted = row.pop("labels")
        row["agreement"] = round(sum(a == b for a, b in zip(predicted, anchor_labels, strict=True)) / len(texts), 6)
        row["macro_f1"] = round(classification_report_dict(truth, predicted, manifest.labels)["macro_f1"], 6)
    single, batch, reason = choose_backends(model_dir, weights_sha256)
    parity = read_parity(model_dir) or {}
    return {
        "cpu": cpu_description(),
        "cascade": parity.get("backends", {}).get(CASCADE_BACKEND, {}).get("cascade"),
        "chosen": single,
        "chosen_batch": batch,
        "reason": reason,
        "texts": len(texts),
        "latency_texts": min(len(texts), MAX_LATENCY_TEXTS),
        "threads": threads,
        "isolation": isolation,
        "rounds": rounds,
        "throughput_passes": THROUGHPUT_PASSES,
        "rows": rows,
    }


def _median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One row per backend: each timing's median over the rounds (labels: the first round's), and the
    per-round p50, texts/s and load time, so the spread is on record."""
    row = dict(runs[0])
    for key in ("p50_ms", "p95_ms", "p99_ms", *THROUGHPUTS, "load_s", "rss_mb", "batch_ready_s"):
        if key in row:
            row[key] = round(percentile([run[key] for run in runs], 50), 3)
    row["per_round"] = {key: [run[key] for run in runs] for key in ("p50_ms", *THROUGHPUTS, "load_s")}
    return row


def markdown_table(result: dict[str, Any]) -> str:
    """The rows with each figure's ratio to the pipeline (higher is better for every ratio)."""
    anchor = result["rows"][0]
    header = (
        "| backend | p50 ms | p95 ms | p99 ms | texts/s @32, slices | texts/s @32, whole list | load + warm-up s "
        "| peak RSS MB | agreement | macro-F1 |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [header]
    for row in result["rows"]:
        if row["backend"] == AUTO:
            serves = dict.fromkeys(row.get("serves", []))
            later = f"; batch backend ready at {row['batch_ready_s']:.2f} s" if len(serves) > 1 else ""
            name = f"{AUTO} (serves {' + '.join(serves)}{later})"
        else:
            roles = [
                role for role, key in (("single", "chosen"), ("batch", "chosen_batch")) if row["backend"] == result[key]
            ]
            name = row["backend"] + (f" (chosen: {', '.join(roles)})" if roles else "")

        def faster(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]:.2f} ({anchor[key] / row[key]:.2f}x)" if row[key] else f"{row[key]:.2f}"

        def throughput(key: str, row: dict[str, Any] = row) -> str:
            return f"{row[key]:.0f} ({row[key] / anchor[key]:.2f}x)"

        lines.append(
            f"| {name} | {faster('p50_ms')} | {faster('p95_ms')} | {faster('p99_ms')} "
            f"| {throughput('texts_per_s')} | {throughput('whole_list_texts_per_s')} "
            f"| {faster('load_s')} | {row['rss_mb']:.0f} | {row['agreement']:.4f} | {row['macro_f1']:.4f} |"
        )
    return "\n".join(lines + _measured_on(result)) + "\n"


def _measured_on(result: dict[str, Any]) -> list[str]:
    """The lines under the table: the CPU it was measured on, and the cascade's margin and fallback share."""
    lines = []
    if cpu := result.get("cpu"):
        amx = "" if {"amx_int8", "amx_bf16"} & set(cpu["isa"]) else "; no AMX"
        lines.append(
            f"Measured on {cpu['model']} ({cpu['machine']}, {cpu['physical_cores']} physical cores; "
            f"{', '.join(cpu['isa'])}{amx}), {result['threads']} threads, {result['rounds']} interleaved rounds."
        )
    if cascade := result.get("cascade"):
        rule = (
            f"the smallest with at least {cascade['target_agreement']:.2%} label agreement with fp32 on the "
            "train calibration texts"
            if cascade["rule"] == "target_agreement"
            else f"{cascade['rule']}, step {cascade['step']} of the ladder"
        )
        sent = ", ".join(f"{share:.1%} {name}" for name, share in cascade["fallback_fraction"]["validation"].items())
        lines.append(f"Cascade margin {cascade['margin']:.3f} ({rule}); validation texts recomputed in fp32: {sent}.")
    return ["", *lines] if lines else []


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="model folder (default models/airline)")
    add_config_arguments(parser, required=False)
    parser.add_argument("--json", type=Path, default=None, metavar="OUT", help="also write the result as JSON here")
    parser.add_argument("--texts", type=int, default=0, metavar="N", help="first N test tweets (default: all)")
    parser.add_argument(
        "--isolation",
        choices=["subprocess", "none"],
        default="subprocess",
        help="measure each backend in a fresh process (honest load time and RSS) or in this one (fast)",
    )
    parser.add_argument("--threads", type=int, default=None, help="threads per backend (default inference.num_threads)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        metavar="N",
        help="measure every backend N times, interleaved, and report medians (default 1)",
    )


def run(args: argparse.Namespace, command: str) -> int:
    # Here, not at the top: this module is also each measured backend's fresh process (its peak RSS is the
    # backend's), which must not carry pandas and the data pipeline.
    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.inference.export import resolve_run_config

    model_dir: Path = args.model
    if args.texts < 0:
        raise BenchmarkError(f"--texts must be 0 (all) or a positive count, got {args.texts}")
    config = resolve_run_config(model_dir, args.config, args.overrides)
    test = prepare_data(config).test
    if args.texts:
        test = test.head(args.texts)
    result = benchmark(
        model_dir,
        test["text"].tolist(),
        test["label"].tolist(),
        isolation=args.isolation,
        threads=args.threads or config.inference.num_threads or None,
        rounds=args.rounds,
    )
    sys.stdout.write(markdown_table(result))
    sys.stdout.flush()
    if args.json is not None:
        write_json_atomic(args.json, result)
        logger.info("wrote %s", args.json)
    write_json_atomic(model_dir / BENCHMARK_NAME, result)
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
