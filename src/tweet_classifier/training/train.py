"""Fine-tune the transformer with the Hugging Face ``Trainer`` and write a self-describing model folder.

``tweet-classifier train --config configs/airline.yaml [--output-dir DIR] [--resume]``

What makes a run fast on a CPU: dynamic padding (tweets are ~30 tokens, padding to 128 wastes 4x),
length-grouped batches, bf16 autocast on CPUs with AMX / AVX512-BF16, fused AdamW. What makes it robust:
checkpoints in ``<output_dir>.checkpoints/`` that ``--resume`` continues from (incomplete ones are skipped),
a guard that stops on the first non-finite loss, a clear error on a full disk, and a final folder that
appears whole (``artifact.atomic_folder``) or not at all.

The run is assembled from one module per job: ``device`` (where and in which precision), ``base_model``
(tokenizer and classifier), ``encoding`` (splits and the collator), ``trainer`` (the ``Trainer`` subclass
and its arguments), ``checkpoints`` (resume), ``model_folder`` (scores, calibration, the folder).

Multi-GPU needs no code change: ``accelerate launch -m tweet_classifier train --config ...`` (every rank
prepares the same data; only the main process evaluates and writes the model folder).
"""

from __future__ import annotations

import argparse
import errno
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tweet_classifier import arguments
from tweet_classifier.artifact import RUN_CONFIG_NAME
from tweet_classifier.config import RunConfig, load_config, save_config
from tweet_classifier.training.checkpoints import checkpoints_dir_for
from tweet_classifier.training.errors import DiskFullError

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from tweet_classifier.training.model_folder import TrainResult

logger = logging.getLogger(__name__)


def _is_disk_full(error: BaseException) -> bool:
    if isinstance(error, OSError) and error.errno in {errno.ENOSPC, errno.EDQUOT}:
        return True
    # torch.save / safetensors report a full disk as a RuntimeError carrying the OS message.
    return isinstance(error, RuntimeError) and "No space left on device" in str(error)


def train_model(
    config: RunConfig,
    output_dir: str | Path | None = None,
    resume: bool = False,
    prepared: Any | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> TrainResult:
    """Train, evaluate and write the model folder. ``callbacks`` are extra Trainer callbacks (tests)."""
    model_dir = Path(output_dir or config.train.output_dir)
    if output_dir is not None:
        config = config.model_copy(update={"train": config.train.model_copy(update={"output_dir": str(model_dir)})})
    checkpoints_dir = checkpoints_dir_for(model_dir)
    try:
        return _train_model(config, model_dir, checkpoints_dir, resume, prepared, callbacks)
    except (OSError, RuntimeError) as error:
        if _is_disk_full(error):
            raise DiskFullError(
                f"no space left on the device while writing {getattr(error, 'filename', None) or model_dir}: "
                f"free disk space (checkpoints are in {checkpoints_dir}) or pass --output-dir on a larger disk, "
                "then rerun with --resume; any previous model folder was left as it was"
            ) from error
        raise


def _train_model(
    config: RunConfig,
    model_dir: Path,
    checkpoints_dir: Path,
    resume: bool,
    prepared: Any | None,
    callbacks: Sequence[TrainerCallback],
) -> TrainResult:
    # Start-up time: torch, transformers and the data pipeline load when a run starts, not when the CLI
    # builds the `train` parser (`tweet-classifier train --help`).
    import torch
    from transformers import EarlyStoppingCallback, set_seed
    from transformers.integrations import WandbCallback

    from tweet_classifier.data.prepare import prepare_data
    from tweet_classifier.training import tracking
    from tweet_classifier.training.base_model import build_model, load_tokenizer
    from tweet_classifier.training.checkpoints import resume_point
    from tweet_classifier.training.device import plan_device
    from tweet_classifier.training.encoding import TweetCollator, encode_split
    from tweet_classifier.training.model_folder import TrainResult, build_manifest, write_model_folder
    from tweet_classifier.training.trainer import (
        TweetTrainer,
        balanced_class_weights,
        compute_eval_metrics,
        resolve_eval_steps,
        training_arguments,
    )

    resume_from = resume_point(checkpoints_dir, resume)
    if prepared is None:
        prepared = prepare_data(config)
    labels = list(prepared.labels)
    train_config = config.train
    plan = plan_device(train_config)
    logger.info(
        "training on %s: %d train / %d validation rows", plan.description, len(prepared.train), len(prepared.validation)
    )

    # Seed before the model exists so the new classification head is reproducible.
    set_seed(config.seed)
    tokenizer = load_tokenizer(train_config)
    model = build_model(train_config, labels, tokenizer)
    train_split = encode_split(prepared.train, tokenizer, labels, train_config.max_length, train_config.sample_weights)
    validation_split = encode_split(prepared.validation, tokenizer, labels, train_config.max_length, use_weights=False)
    class_weights = (
        torch.tensor(balanced_class_weights(prepared.train["label"].astype(str).tolist(), labels))
        if train_config.class_weighted_loss
        else None
    )

    # Under torchrun / accelerate launch every rank runs this function; only rank 0 tracks and writes.
    rank, world_size = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    run_name = f"{config.name}-{model_dir.name}"
    run = tracking.start_run(config, run_name=run_name) if rank == 0 else tracking.TrackingRun()
    try:
        eval_steps = resolve_eval_steps(len(train_split), train_config, world_size)
        args = training_arguments(config, checkpoints_dir, plan, eval_steps, tracking.report_to(run))
        trainer = TweetTrainer(
            model=model,
            args=args,
            data_collator=TweetCollator(tokenizer, pad_to_multiple_of=8 if plan.bf16 else None),
            train_dataset=train_split,
            eval_dataset=validation_split,
            processing_class=tokenizer,
            compute_metrics=compute_eval_metrics(labels),
            class_weights=class_weights,
            label_smoothing=train_config.label_smoothing,
        )
        if run.active:
            trainer.remove_callback(WandbCallback)
            trainer.add_callback(tracking.GuardedWandbCallback())
        if train_config.early_stopping_patience > 0:
            trainer.add_callback(EarlyStoppingCallback(early_stopping_patience=train_config.early_stopping_patience))
        for callback in callbacks:
            trainer.add_callback(callback)
        if trainer.is_world_process_zero():
            checkpoints_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, checkpoints_dir / RUN_CONFIG_NAME)

        started = time.perf_counter()
        output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        train_seconds = time.perf_counter() - started
        if not trainer.is_world_process_zero():
            return TrainResult(model_dir, {}, build_manifest(config, labels, prepared, {}, None), checkpoints_dir)

        training = {
            "seconds": round(train_seconds, 1),
            "train_runtime_s": output.metrics.get("train_runtime"),
            "samples_per_second": output.metrics.get("train_samples_per_second"),
            "steps": trainer.state.global_step,
            "epochs": round(float(trainer.state.epoch or 0.0), 3),
            "best_step": trainer.state.best_global_step,
            "best_validation_macro_f1": trainer.state.best_metric,
            "resumed_from": resume_from.name if resume_from else None,
            "bf16": plan.bf16,
            "fused_adamw": plan.fused_adamw,
            "device": plan.description,
            "world_size": trainer.args.world_size,
            "torch": torch.__version__,
        }
        result = write_model_folder(config, model_dir, trainer, tokenizer, prepared, labels, training, run)
        result.checkpoints_dir = checkpoints_dir
        result.wandb_run_dir = run.run_dir
    finally:
        run.finish()
    if not train_config.keep_checkpoints:
        shutil.rmtree(checkpoints_dir, ignore_errors=True)
    return result


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    arguments.add_config_arguments(parser)
    parser.add_argument("--output-dir", default=None, help="model folder to write (default: train.output_dir)")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the newest complete checkpoint in <output-dir>.checkpoints/",
    )


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    result = train_model(config, output_dir=args.output_dir, resume=args.resume)
    if not result.metrics:  # a non-main rank of a distributed run: rank 0 reports
        return arguments.EXIT_OK
    logger.info(
        "done in %.0f s: test macro-F1 %.4f vs baseline %.4f -> %s",
        result.training.get("seconds", 0.0),
        result.metrics.get("test", {}).get("macro_f1", float("nan")),
        result.metrics.get("baseline", {}).get("test", {}).get("macro_f1", float("nan")),
        result.model_dir,
    )
    return arguments.EXIT_OK
