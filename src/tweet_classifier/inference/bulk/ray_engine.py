"""``tweet-classifier predict --engine ray``: the same command with the scoring spread over a Ray actor pool.

Ray Data does the scoring: the chunks of a window become a dataset (``ray.data.from_items``, one row and
one block per chunk), ``map_batches`` runs ``ChunkScorer`` on an ``ActorPoolStrategy`` pool, each actor
holding one ``Predictor`` loaded once, and the scored window comes back to the driver in input order.

Reading and writing stay the local engine's (``local.predict_file``, given this module's scorer): the
driver reads the input with the same chunked readers and writes the same parts, so the output, the
bad-row handling, the counts and the resume after a kill are those of the local engine, row for row.
Ray's own ``read_csv``/``read_json`` were not used because they parse differently (Arrow type inference,
no ``surrogateescape`` for undecodable bytes, a bad JSONL line fails the whole read), and their block
boundaries are not ``--chunk-rows``: ONNX Runtime's dynamic int8 picks activation scales per batch, so
only the same chunks, length-sorted into the same batches (``plan_batches``), give bit-identical
probabilities. The driver reading is the price: this scales the model, which is where the time goes (a
few hundred texts/s per core; parsing a chunk is far cheaper).

Memory stays flat: a window holds ``--num-actors`` x ``WINDOW_CHUNKS_PER_ACTOR`` chunks. Each window is
one Ray Data execution, so its actors (and their model) start once per window; a window of 4,096-row
chunks is minutes of scoring per actor, against seconds of start.

Ray is a heavy optional dependency (``pip install '.[scale]'``): it is imported here, inside the functions,
so the Space, the Docker image and the local engine never need it.
"""

from __future__ import annotations

import argparse
import json
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import pandas as pd

from tweet_classifier.inference.bulk.formats import BulkError
from tweet_classifier.inference.bulk.local import predict_file
from tweet_classifier.inference.bulk.scoring import OutputColumns, ScoreChunks, Summary, score_frame
from tweet_classifier.inference.bulk.sources import Source
from tweet_classifier.inference.predictor import Predictor

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install '.[scale]' (or pip install 'ray[data]==2.60.0')"
# Two actors: the 2-core development machine, one core each; a cluster passes --num-actors.
DEFAULT_ACTORS = 2
# Chunks in flight per actor: enough that no actor waits for the next block while the window's last
# chunks are scored, few enough that a window stays a few tens of MB.
WINDOW_CHUNKS_PER_ACTOR = 4
# Each Ray Data row is one chunk, pickled: Ray converts a pandas batch's columns to Arrow types (seen:
# string[pyarrow], double[pyarrow]), which changed the written parquet schema, and Arrow strings cannot
# hold the lone surrogates that stand for undecodable bytes, nor a JSONL column mixing strings and numbers.
FRAME = "frame"


def import_ray() -> Any:
    try:
        import ray  # the optional `scale` extra: only --engine ray needs it (see the module docstring)
    except ImportError:
        raise BulkError(f"--engine ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


class ChunkScorer:
    """A Ray Data actor: one ``Predictor`` per actor, loaded once; scores each chunk of a batch apart."""

    def __init__(self, load: dict[str, Any], text_column: str, prefix: str, encoding: str) -> None:
        self.predictor = Predictor.load(**load)
        self.columns = OutputColumns(tuple(self.predictor.labels), prefix)
        self.text_column = text_column
        self.encoding = encoding

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        scored, counts = [], []
        for frame_bytes in batch[FRAME]:
            summary = Summary()
            frame = score_frame(
                self.predictor, pickle.loads(frame_bytes), self.text_column, self.columns, self.encoding, summary
            )
            scored.append(pickle.dumps(frame, protocol=pickle.HIGHEST_PROTOCOL))
            counts.append(json.dumps(summary.counts()))
        return {"number": list(batch["number"]), FRAME: scored, "counts": counts}


def ray_scorer(
    load: dict[str, Any],
    text_column: str,
    prefix: str,
    encoding: str,
    num_actors: int,
    cpus_per_actor: float,
) -> ScoreChunks:
    """A ``predict_file`` ``score_chunks`` that scores each window of chunks on a Ray Data actor pool."""
    ray = import_ray()
    from ray.data import ActorPoolStrategy  # importable once import_ray has succeeded

    def score_chunks(chunks: list[pd.DataFrame], summary: Summary) -> Iterator[pd.DataFrame]:
        items = [
            {"number": number, FRAME: pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)}
            for number, chunk in enumerate(chunks)
        ]
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkScorer,
            fn_constructor_kwargs={"load": load, "text_column": text_column, "prefix": prefix, "encoding": encoding},
            # One chunk per call: the actor builds exactly the local engine's batches from it.
            batch_size=1,
            batch_format="numpy",
            compute=ActorPoolStrategy(size=min(num_actors, len(chunks))),
            num_cpus=cpus_per_actor,
        )
        # Ray Data may finish chunks out of order: sort by chunk number, the parts go out in input order.
        results = sorted(dataset.iter_rows(), key=lambda row: int(row["number"]))
        if [int(row["number"]) for row in results] != list(range(len(chunks))):
            raise BulkError(f"Ray returned {len(results)} of {len(chunks)} chunks: run the same command to resume")
        for row in results:
            counts = json.loads(row["counts"])
            summary.rows += counts["rows"]
            summary.scored += counts["scored"]
            for kind, count in counts["errors"].items():
                summary.errors[kind] += count
            yield pickle.loads(row[FRAME])

    return score_chunks


def start_ray(address: str | None, num_cpus: int | None) -> bool:
    """Join the cluster at ``address``, or start a local one; True when this call started (and owns) it.
    A process already connected (its own ``ray.init``, as the tests do) keeps its connection."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address:
        logger.info("joining the Ray cluster at %s", address)
        ray.init(address=address, log_to_driver=False)
    else:
        logger.info("starting a local Ray cluster (%s CPUs)", num_cpus or "all")
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    return True


def stop_ray() -> None:
    import_ray().shutdown()


def predict_on_ray(
    predictor: Any, source: Source, args: argparse.Namespace, load: dict[str, Any], options: dict[str, Any]
) -> Summary:
    """``command.run`` for ``--engine ray``: ``predict_file`` with the chunks scored on the actor pool."""
    num_actors = args.num_actors or DEFAULT_ACTORS
    started = start_ray(args.ray_address, None)
    try:
        # The driver's predictor pinned the backend `auto` chose: every actor loads that same one.
        # One intra-op thread per actor unless --num-threads says otherwise: the actors are the parallelism.
        threads = args.num_threads or 1
        scorer = ray_scorer(
            load | {"backend": predictor.backend_batch, "num_threads": threads, "warn_unverified": False},
            args.text_column,
            args.prefix,
            args.encoding,
            num_actors,
            cpus_per_actor=threads,
        )
        window = num_actors * WINDOW_CHUNKS_PER_ACTOR
        return predict_file(predictor, source, args.output, score_chunks=scorer, window=window, **options)
    finally:
        if started:
            stop_ray()
