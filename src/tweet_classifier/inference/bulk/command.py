"""The ``predict`` command line: parse and check the options, load the model, run the chosen engine, log
the counts. The format, the bad-row handling and the resume are described in ``inference.bulk``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from tweet_classifier.inference.bulk import ray_engine
from tweet_classifier.inference.bulk.formats import BulkError
from tweet_classifier.inference.bulk.local import DEFAULT_CHUNK_ROWS, predict_file
from tweet_classifier.inference.bulk.sources import open_source
from tweet_classifier.inference.predictor import Predictor

logger = logging.getLogger(__name__)


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--revision", default=None, help="Hub revision of --model")
    parser.add_argument("--input", required=True, help="CSV/TSV/JSONL/parquet file, dataset folder or Hub dataset id")
    parser.add_argument("--output", required=True, type=Path, help="output file; its suffix sets the format")
    parser.add_argument("--input-format", default="auto", choices=["auto", "csv", "tsv", "jsonl", "parquet", "hub"])
    parser.add_argument("--text-column", default="text", help="column holding the text (default: text)")
    parser.add_argument("--subset", default=None, help="dataset config name (Hub datasets)")
    parser.add_argument("--split", default=None, help="dataset split (Hub datasets with more than one)")
    parser.add_argument("--encoding", default="utf-8", help="encoding of CSV/TSV/JSONL input (default: utf-8)")
    parser.add_argument("--backend", default="auto", help="inference backend (default: auto, from parity.json)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per model call (default: 32)")
    parser.add_argument("--num-threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows read and written at a time")
    parser.add_argument("--limit", type=int, default=None, help="score only the first N rows")
    parser.add_argument("--prefix", default="", help="prefix for the added columns, e.g. pred_")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.add_argument(
        "--engine",
        default="local",
        choices=["local", "ray"],
        help="local: this process; ray: a Ray actor pool, one Predictor per actor (pip install '.[scale]')",
    )
    parser.add_argument("--ray-address", default=None, help="--engine ray: join this cluster (default: start one)")
    parser.add_argument("--num-actors", type=int, default=None, help="--engine ray: actors, one model each (default 2)")


def run(args: argparse.Namespace, command: str) -> int:
    for name in ("batch_size", "chunk_rows", "limit", "num_threads", "num_actors"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise BulkError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if args.engine != "ray" and (args.ray_address or args.num_actors):
        raise BulkError("--ray-address and --num-actors apply to --engine ray: add --engine ray or drop them")
    source = open_source(args.input, args.input_format, args.text_column, args.encoding, args.subset, args.split)
    load = {
        "model": args.model,
        "revision": args.revision,
        "backend": args.backend,
        "num_threads": args.num_threads,
        "batch_size": args.batch_size,
    }
    predictor = Predictor.load(**load)
    options = {
        "text_column": args.text_column,
        "chunk_rows": args.chunk_rows,
        "limit": args.limit,
        "prefix": args.prefix,
        "encoding": args.encoding,
        "overwrite": args.overwrite,
    }
    if args.engine == "ray":
        summary = ray_engine.predict_on_ray(predictor, source, args, load, options)
    else:
        summary = predict_file(predictor, source, args.output, **options)
    errors = sum(summary.errors.values())
    logger.info(
        "wrote %s: %d rows, %d scored, %d with an error (%s), %.0f texts/s",
        args.output,
        summary.rows,
        summary.scored,
        errors,
        ", ".join(f"{kind} {count}" for kind, count in summary.errors.items() if count) or "none",
        summary.texts_per_s,
    )
    return 0
