"""Fine-tune the transformer with the Hugging Face ``Trainer`` and write a self-describing model folder.

``tweet-classifier train --config configs/airline.yaml [--output-dir DIR] [--resume]``

What makes a run fast on a CPU: dynamic padding (tweets are ~30 tokens, padding to 128 wastes 4x),
length-grouped batches, bf16 autocast on CPUs with AMX / AVX512-BF16, fused AdamW. What makes it robust:
checkpoints in ``<output_dir>.checkpoints/`` that ``--resume`` continues from (incomplete ones are skipped),
a guard that stops on the first non-finite loss, a clear error on a full disk, and a final folder that
appears whole (``artifact.atomic_folder``) or not at all.

Multi-GPU needs no code change: ``accelerate launch -m tweet_classifier train --config ...`` (every rank
prepares the same data; only the main process evaluates and writes the model folder).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tweet_classifier import arguments
from tweet_classifier.artifact import (
    CLEANING_REPORT_MARKDOWN_NAME,
    CLEANING_REPORT_NAME,
    METRICS_NAME,
    RUN_CONFIG_NAME,
    WEIGHTS_NAME,
    ModelManifest,
    atomic_folder,
    file_sha256,
    write_json_atomic,
)
from tweet_classifier.config import RunConfig, TrainConfig, data_dir, load_config, save_config
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.portable import write_portable_pipeline

if TYPE_CHECKING:
    import pandas as pd
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase, TrainerCallback

logger = logging.getLogger(__name__)

CHECKPOINTS_SUFFIX = ".checkpoints"
CHECKPOINT_PREFIX = "checkpoint-"
# What a checkpoint needs to resume exactly; trainer_state.json is written last, so it marks completion.
CHECKPOINT_REQUIRED_FILES = ("trainer_state.json", WEIGHTS_NAME, "optimizer.pt", "scheduler.pt")
TINY_MODEL_SIZE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}


class TrainingError(TweetClassifierError):
    """Training cannot start or had to stop; the message says why and what to change."""


class NonFiniteLossError(TrainingError):
    """The loss became NaN or infinite."""


class DiskFullError(TrainingError):
    """The disk filled up while writing checkpoints or the model folder."""


@dataclass(frozen=True)
class DevicePlan:
    """Where and in which precision the run trains."""

    device: str  # "cpu" or "cuda"
    bf16: bool
    fused_adamw: bool
    description: str


@dataclass
class TrainResult:
    model_dir: Path
    metrics: dict[str, Any]
    manifest: ModelManifest
    checkpoints_dir: Path
    wandb_run_dir: Path | None = None
    training: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------- hardware


def cpu_supports_bf16() -> bool:
    """AMX or AVX512-BF16: bf16 matmuls run natively; elsewhere bf16 autocast is emulated and slower."""
    import torch

    for check in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"):
        probe = getattr(torch.cpu, check, None)
        if probe is not None and probe():
            return True
    return False


def plan_device(train_config: TrainConfig) -> DevicePlan:
    import torch

    if torch.cuda.is_available():
        bf16 = train_config.bf16 and torch.cuda.is_bf16_supported()
        name = torch.cuda.get_device_name(0)
        return DevicePlan("cuda", bf16, train_config.fused_adamw, f"cuda ({name}){' bf16' if bf16 else ''}")
    bf16 = train_config.bf16 and cpu_supports_bf16()
    if train_config.bf16 and not bf16:
        logger.info("this CPU has neither AMX nor AVX512-BF16: training in fp32")
    capability = torch.backends.cpu.get_cpu_capability()
    threads = torch.get_num_threads()
    return DevicePlan(
        "cpu", bf16, train_config.fused_adamw, f"cpu ({capability}, {threads} threads){' bf16' if bf16 else ''}"
    )


# --------------------------------------------------------------------------------------------- model


def load_tokenizer(train_config: TrainConfig) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(train_config.base_model, revision=train_config.base_revision)
    except (OSError, ValueError) as error:
        raise TrainingError(_base_model_hint(train_config, error)) from None


def _base_model_hint(train_config: TrainConfig, error: Exception) -> str:
    return (
        f"could not load base model {train_config.base_model!r} (revision {train_config.base_revision or 'main'}): "
        f"{error}. Check train.base_model / train.base_revision; offline, point HF_HUB_CACHE at the mirror "
        "and set HF_HUB_OFFLINE=1"
    )


def build_model(
    train_config: TrainConfig, labels: Sequence[str], tokenizer: PreTrainedTokenizerBase
) -> PreTrainedModel:
    """The classifier: the base model with a new head, or a tiny random BERT (``train.tiny_model``, tests)."""
    import torch
    from transformers import AutoModelForSequenceClassification, BertConfig, BertForSequenceClassification

    label_kwargs: dict[str, Any] = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {label: index for index, label in enumerate(labels)},
    }
    if train_config.tiny_model:
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512, **TINY_MODEL_SIZE, **label_kwargs)
        model = BertForSequenceClassification(config)
    else:
        try:
            # fp32 master weights whatever the checkpoint's dtype: bf16 comes from autocast, not from the weights.
            model = AutoModelForSequenceClassification.from_pretrained(
                train_config.base_model, revision=train_config.base_revision, dtype=torch.float32, **label_kwargs
            )
        except (OSError, ValueError) as error:
            raise TrainingError(_base_model_hint(train_config, error)) from None
    if train_config.freeze_embeddings:
        for parameter in model.base_model.embeddings.parameters():
            parameter.requires_grad = False
    return model


# --------------------------------------------------------------------------------------------- data


class EncodedSplit:
    """Token ids (unpadded), label ids and sample weights of one split; items are dicts for the collator."""

    def __init__(self, features: list[dict[str, Any]]) -> None:
        self.features = features

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.features[index]


def encode_split(
    frame: pd.DataFrame,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    max_length: int,
    use_weights: bool,
) -> EncodedSplit:
    label_index = {label: index for index, label in enumerate(labels)}
    unknown = sorted(set(frame["label"].astype(str)) - set(label_index))
    if unknown:
        raise TrainingError(f"labels {unknown} are not in the label list {list(labels)}; fix data.labels")
    encoded = tokenizer(frame["text"].astype(str).tolist(), truncation=True, max_length=max_length)
    weights = frame["weight"].astype(float).tolist() if use_weights and "weight" in frame else [1.0] * len(frame)
    features = []
    for row, label in enumerate(frame["label"].astype(str)):
        item = {name: values[row] for name, values in encoded.items()}
        item["labels"] = label_index[label]
        item["sample_weight"] = weights[row]
        features.append(item)
    return EncodedSplit(features)


class TweetCollator:
    """Pads token fields to the longest text of the batch (or to ``pad_to_length``) and stacks targets."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        pad_to_multiple_of: int | None = None,
        pad_to_length: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_to_length = pad_to_length

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        token_fields = [
            {key: value for key, value in item.items() if key.endswith("_ids") or key.endswith("_mask")}
            for item in features
        ]
        if self.pad_to_length is not None:
            batch = self.tokenizer.pad(
                token_fields, padding="max_length", max_length=self.pad_to_length, return_tensors="pt"
            )
        else:
            batch = self.tokenizer.pad(
                token_fields, padding=True, pad_to_multiple_of=self.pad_to_multiple_of, return_tensors="pt"
            )
        result = dict(batch)
        result["labels"] = torch.tensor([item["labels"] for item in features], dtype=torch.long)
        result["sample_weight"] = torch.tensor([item.get("sample_weight", 1.0) for item in features], dtype=torch.float)
        return result


def balanced_class_weights(label_values: Sequence[str], labels: Sequence[str]) -> list[float]:
    """``n / (k * count)`` per class (scikit-learn's "balanced"); a class absent from train gets 1."""
    counts = dict.fromkeys(labels, 0)
    for value in label_values:
        counts[str(value)] = counts.get(str(value), 0) + 1
    total = sum(counts[label] for label in labels)
    return [total / (len(labels) * counts[label]) if counts[label] else 1.0 for label in labels]


def weighted_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    class_weights: torch.Tensor | None,
    sample_weights: torch.Tensor | None,
    label_smoothing: float,
) -> torch.Tensor:
    """Cross-entropy with class weights, per-sample weights and label smoothing, normalised by total weight."""
    import torch.nn.functional as functional

    per_example = functional.cross_entropy(
        logits.float(), targets, weight=class_weights, label_smoothing=label_smoothing, reduction="none"
    )
    weights = sample_weights.float() if sample_weights is not None else torch_ones_like(per_example)
    denominator = weights * (class_weights[targets] if class_weights is not None else 1.0)
    return (per_example * weights).sum() / denominator.sum().clamp_min(1e-12)


def torch_ones_like(tensor: torch.Tensor) -> torch.Tensor:
    import torch

    return torch.ones_like(tensor)


# --------------------------------------------------------------------------------------------- trainer


def _make_trainer_class() -> type:
    """Defined lazily so importing this module does not import transformers' Trainer."""
    import torch
    from transformers import Trainer

    class TweetTrainer(Trainer):
        # Our compute_loss returns a per-batch mean; the Trainer divides it for gradient accumulation.
        loss_is_scaled_for_ga = False

        def __init__(
            self,
            *args: Any,
            class_weights: torch.Tensor | None = None,
            label_smoothing: float = 0.0,
            **kwargs: Any,
        ) -> None:
            super().__init__(*args, **kwargs)
            self.class_weights = class_weights
            self.label_smoothing = label_smoothing

        def compute_loss(
            self,
            model: torch.nn.Module,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: torch.Tensor | int | None = None,
        ) -> torch.Tensor | tuple[torch.Tensor, Any]:
            inputs = dict(inputs)
            targets = inputs.pop("labels")
            sample_weights = inputs.pop("sample_weight", None)
            outputs = model(**inputs)
            class_weights = self.class_weights.to(outputs.logits.device) if self.class_weights is not None else None
            loss = weighted_cross_entropy(outputs.logits, targets, class_weights, sample_weights, self.label_smoothing)
            return (loss, outputs) if return_outputs else loss

        def training_step(
            self, model: torch.nn.Module, inputs: dict[str, Any], num_items_in_batch: torch.Tensor | int | None = None
        ) -> torch.Tensor:
            loss = super().training_step(model, inputs, num_items_in_batch)
            # Checked before the optimizer step, so the weights of the last checkpoint stay clean.
            if not torch.isfinite(loss).all():
                step = self.state.global_step + 1
                raise NonFiniteLossError(
                    f"training loss became {loss.item()} at step {step} (learning rate "
                    f"{self._get_learning_rate():.3g}): lower train.learning_rate, check the data for broken rows, "
                    "or set train.bf16=false; the last good checkpoint stays in "
                    f"{self.args.output_dir} (fix the cause, then rerun with --resume)"
                )
            return loss

    return TweetTrainer


def compute_eval_metrics(labels: Sequence[str]) -> Any:
    from tweet_classifier.metrics import classification_report_dict

    def compute(prediction: Any) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        predicted = [labels[index] for index in np.asarray(logits).argmax(axis=-1)]
        truth = [labels[int(index)] for index in np.asarray(prediction.label_ids).reshape(-1)]
        report = classification_report_dict(truth, predicted, labels)
        return {"macro_f1": report["macro_f1"], "accuracy": report["accuracy"]}

    return compute


def steps_per_epoch(n_train: int, train_config: TrainConfig, world_size: int = 1) -> int:
    return max(1, math.ceil(n_train / (train_config.batch_size * world_size)))


def resolve_eval_steps(n_train: int, train_config: TrainConfig, world_size: int = 1) -> int:
    if train_config.eval_steps is not None:
        eval_steps = train_config.eval_steps
    else:
        eval_steps = max(1, steps_per_epoch(n_train, train_config, world_size) // train_config.evals_per_epoch)
    if train_config.max_steps > 0:
        eval_steps = min(eval_steps, train_config.max_steps)
    return eval_steps


def training_arguments(
    config: RunConfig, checkpoints_dir: Path, plan: DevicePlan, eval_steps: int, report_to: list[str]
) -> Any:
    from transformers import TrainingArguments

    train = config.train
    return TrainingArguments(
        output_dir=str(checkpoints_dir),
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.eval_batch_size,
        learning_rate=train.learning_rate,
        weight_decay=train.weight_decay,
        # A float below 1 is a fraction of the total steps in transformers 5.
        warmup_steps=train.warmup_ratio,
        lr_scheduler_type=train.lr_scheduler,
        optim="adamw_torch_fused" if plan.fused_adamw else "adamw_torch",
        bf16=plan.bf16,
        use_cpu=plan.device == "cpu",
        train_sampling_strategy="group_by_length" if train.group_by_length else "random",
        eval_strategy="steps",
        eval_steps=eval_steps,
        save_strategy="steps",
        save_steps=eval_steps,
        save_total_limit=train.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model="macro_f1",
        greater_is_better=True,
        logging_strategy="steps",
        logging_steps=train.logging_steps,
        logging_first_step=True,
        report_to=report_to,
        run_name=config.name,
        seed=config.seed,
        dataloader_num_workers=train.dataloader_workers,
        remove_unused_columns=False,
        disable_tqdm=False,
        # Nothing secret may reach training_args.bin (saved in every checkpoint).
        push_to_hub=False,
        hub_token=None,
        save_only_model=False,
        # Every parameter takes part in each forward pass; the search for unused ones costs a graph walk.
        ddp_find_unused_parameters=False,
    )


# --------------------------------------------------------------------------------------------- checkpoints


def checkpoints_dir_for(model_dir: Path) -> Path:
    return model_dir.with_name(model_dir.name + CHECKPOINTS_SUFFIX)


def _checkpoint_step(path: Path) -> int:
    suffix = path.name.removeprefix(CHECKPOINT_PREFIX)
    return int(suffix) if suffix.isdigit() else -1


def checkpoint_is_complete(path: Path) -> bool:
    """All files a resume needs are there, the trainer state parses and the weights file reads."""
    for name in CHECKPOINT_REQUIRED_FILES:
        file = path / name
        if not file.is_file() or file.stat().st_size == 0:
            return False
    try:
        json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        from safetensors import safe_open

        with safe_open(str(path / WEIGHTS_NAME), framework="pt") as weights:
            weights.keys()
    except Exception:  # any parse error means "not usable", whatever the library raises
        return False
    return True


def newest_complete_checkpoint(checkpoints_dir: Path) -> Path | None:
    """The highest-step checkpoint that can be resumed; incomplete newer ones are removed with a warning."""
    if not checkpoints_dir.is_dir():
        return None
    candidates = sorted(
        (path for path in checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*") if _checkpoint_step(path) >= 0),
        key=_checkpoint_step,
        reverse=True,
    )
    for candidate in candidates:
        if checkpoint_is_complete(candidate):
            return candidate
        logger.warning("skipping incomplete or corrupt checkpoint %s (removing it)", candidate)
        shutil.rmtree(candidate, ignore_errors=True)
    return None


# --------------------------------------------------------------------------------------------- provenance


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        completed = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = completed.stdout.strip()
    return commit or None


def dataset_summary(config: RunConfig, prepared: Any) -> dict[str, Any]:
    source = Path(config.data.source)
    path = source if source.is_absolute() else data_dir() / source
    summary: dict[str, Any] = {
        "source": config.data.source,
        "subset": config.data.subset,
        "split_strategy": config.data.split.strategy,
        "sizes": {split: len(getattr(prepared, split)) for split in ("train", "validation", "test")},
        "max_rows": config.data.max_rows,
    }
    if path.is_file():
        summary["sha256"] = file_sha256(path)
    return summary


# --------------------------------------------------------------------------------------------- the run


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
    import torch
    from transformers import EarlyStoppingCallback, set_seed

    from tweet_classifier.training import tracking

    resume_from = _resume_point(checkpoints_dir, resume)
    if prepared is None:
        from tweet_classifier.data.prepare import prepare_data

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
        trainer_class = _make_trainer_class()
        trainer = trainer_class(
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
            from transformers.integrations import WandbCallback

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
            return TrainResult(model_dir, {}, _manifest(config, labels, prepared, {}, None), checkpoints_dir)

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
        result = _write_model_folder(config, model_dir, trainer, tokenizer, prepared, labels, training, run)
        result.checkpoints_dir = checkpoints_dir
        result.wandb_run_dir = run.run_dir
    finally:
        run.finish()
    if not train_config.keep_checkpoints:
        shutil.rmtree(checkpoints_dir, ignore_errors=True)
    return result


def _resume_point(checkpoints_dir: Path, resume: bool) -> Path | None:
    if not resume:
        if checkpoints_dir.is_dir() and any(checkpoints_dir.glob(f"{CHECKPOINT_PREFIX}*")):
            raise TrainingError(
                f"checkpoints of an earlier run are in {checkpoints_dir}: pass --resume to continue that run, "
                "or delete the folder to start over"
            )
        return None
    checkpoint = newest_complete_checkpoint(checkpoints_dir)
    if checkpoint is None:
        logger.warning("--resume: no complete checkpoint in %s; training from the start", checkpoints_dir)
    else:
        logger.info("resuming from %s", checkpoint)
    return checkpoint


def _manifest(
    config: RunConfig,
    labels: Sequence[str],
    prepared: Any,
    training: Mapping[str, Any],
    wandb_url: str | None,
) -> ModelManifest:
    from tweet_classifier.text import NORMALIZER_VERSION

    return ModelManifest(
        labels=list(labels),
        base_model=config.train.base_model
        if not config.train.tiny_model
        else f"tiny-random-bert ({config.train.base_model} tokenizer)",
        base_revision=config.train.base_revision,
        normalizer=config.normalize.model_dump(),
        normalizer_version=NORMALIZER_VERSION,
        max_length=config.train.max_length,
        max_chars=config.inference.max_chars,
        dataset=dataset_summary(config, prepared),
        training=dict(training),
        git_commit=git_commit(),
        wandb_run_url=wandb_url,
    )


def _write_model_folder(
    config: RunConfig,
    model_dir: Path,
    trainer: Any,
    tokenizer: PreTrainedTokenizerBase,
    prepared: Any,
    labels: list[str],
    training: dict[str, Any],
    run: Any,
) -> TrainResult:
    from tweet_classifier.training import card, tracking
    from tweet_classifier.training.baseline import run_baseline
    from tweet_classifier.training.calibration import write_calibration
    from tweet_classifier.training.evaluate import predict_probabilities, score_predictions

    # keep_fp32_wrapper=False: with bf16 training accelerate patches forward() with autocast, and the scores
    # below (metrics.json, the card, the canary's expected macro-F1) must be what the saved weights give in
    # fp32, as `evaluate` and the server's torch-fp32 backend compute them.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)
    model.eval()
    scores: dict[str, dict[str, Any]] = {}
    split_probabilities: dict[str, np.ndarray] = {}
    test_predicted: list[str] = []
    for split in ("validation", "test"):
        frame = getattr(prepared, split)
        probabilities = predict_probabilities(
            model,
            tokenizer,
            frame["text"].astype(str).tolist(),
            max_length=config.train.max_length,
            batch_size=config.evaluate.batch_size,
            bf16=config.evaluate.bf16,
        )
        scores[split] = score_predictions(frame, probabilities, labels, config)
        split_probabilities[split] = probabilities
        test_predicted = [labels[index] for index in probabilities.argmax(axis=1)]
    worst = scores["test"].pop("worst_examples")
    scores["validation"].pop("worst_examples")
    scores["validation"].pop("slices")
    baseline = run_baseline(prepared, config)
    metrics: dict[str, Any] = {
        "validation": scores["validation"],
        "test": scores["test"],
        "baseline": {"test": {"macro_f1": float(baseline.metrics["test"]["macro_f1"])}},
    }
    report = prepared.report.to_dict()
    tracking.log_final_results(run, metrics, report, worst)
    tracking.log_test_predictions(run, prepared.test, split_probabilities["test"], labels)
    manifest = _manifest(config, labels, prepared, training, run.url)
    run.set_config({"git_commit": manifest.git_commit})
    logger.info(
        "test macro-F1 %.4f (TF-IDF baseline %.4f), validation macro-F1 %.4f",
        metrics["test"]["macro_f1"],
        metrics["baseline"]["test"]["macro_f1"],
        metrics["validation"]["macro_f1"],
    )
    with atomic_folder(model_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        manifest.save(staging)
        # Temperature and review threshold from the validation split (calibration.json, hashed to these weights).
        metrics |= write_calibration(
            staging,
            prepared.validation["label"].astype(str).tolist(),
            split_probabilities["validation"],
            prepared.test["label"].astype(str).tolist(),
            split_probabilities["test"],
            labels,
            config,
        )
        # After calibration: the pipeline carries the fitted temperature too.
        write_portable_pipeline(staging)
        save_config(config, staging / RUN_CONFIG_NAME)
        write_json_atomic(staging / METRICS_NAME, metrics)
        write_json_atomic(staging / CLEANING_REPORT_NAME, report)
        (staging / CLEANING_REPORT_MARKDOWN_NAME).write_text(prepared.report.to_markdown(), encoding="utf-8")
        write_serving_files(staging, prepared, tokenizer, config, test_predicted, written_by="train")
        card.write_model_card(staging)
    logger.info("model folder written: %s", model_dir)
    tracking.log_model_and_data(run, model_dir, prepared, config, metrics)
    return TrainResult(model_dir, metrics, manifest, checkpoints_dir_for(model_dir), training=training)


def canary_rows(test: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, str]:
    """The test split itself, or a label-stratified sample of ``max_rows`` of it, and how it was chosen."""
    if len(test) <= max_rows:
        return test, "the whole test split"
    from sklearn.model_selection import train_test_split

    try:
        sample, _ = train_test_split(test, train_size=max_rows, stratify=test["label"], random_state=seed)
        how = f"a label-stratified sample of {max_rows} test rows (seed {seed})"
    except ValueError:  # a class too small to stratify: a plain random sample keeps the cap
        sample = test.sample(n=max_rows, random_state=seed)
        how = f"a random sample of {max_rows} test rows (seed {seed})"
    # Split order, so the sample streams in the same order as the split it came from.
    return sample.sort_index(), how


def write_serving_files(
    folder: Path,
    prepared: Any,
    tokenizer: Any,
    config: RunConfig,
    test_predicted: Sequence[str] | None,
    written_by: str,
) -> None:
    """What the server needs from the training data, written into the model folder so it never needs the data:

    * ``reference.json``: drift reference from the train split (raw-text traits, ``[UNK]`` share of the
      normalized text by this tokenizer, labels), binned by the same ``monitor`` code the server uses;
    * ``canary.jsonl`` + ``canary.json``: the test rows as the model was scored on them (normalized
      ``text``, ``label``; capped at ``serve.canary_max_rows``) and their provenance, with the macro-F1
      torch fp32 scores on exactly these rows (the card's test macro-F1 when they are the whole split).

    ``test_predicted``: torch fp32 labels of the whole test split, in split order (None: not scored here).
    """
    from tweet_classifier.artifact import REFERENCE_NAME, write_canary
    from tweet_classifier.metrics import classification_report_dict
    from tweet_classifier.serving.monitor import DriftReference, unk_share

    train_split = prepared.train
    token_ids = tokenizer(train_split["text"].astype(str).tolist(), add_special_tokens=False)["input_ids"]
    reference = DriftReference.from_split(
        train_split["raw_text"].astype(str).tolist(),
        [unk_share(ids, tokenizer.unk_token_id) for ids in token_ids],
        train_split["label"].astype(str).tolist(),
        source=f"training split ({len(train_split)} rows of {config.data.source})",
    )
    reference.save(folder / REFERENCE_NAME)
    test = prepared.test.reset_index(drop=True)
    rows, how = canary_rows(test, config.serve.canary_max_rows, config.seed)
    expected = None
    if test_predicted is not None:
        predicted = [test_predicted[position] for position in rows.index]
        expected = classification_report_dict(rows["label"].astype(str).tolist(), predicted, prepared.labels)[
            "macro_f1"
        ]
    write_canary(
        folder,
        rows["text"].astype(str).tolist(),
        rows["label"].astype(str).tolist(),
        {
            "split": "test",
            "split_rows": len(test),
            "sampling": how,
            "text": "normalized text, as the model was scored on it (the split's `text` column)",
            "data": {key: value for key, value in dataset_summary(config, prepared).items() if key != "sizes"},
            "expected_macro_f1": expected,
            "expected_backend": "torch-fp32",
            "written_by": written_by,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        },
    )
    logger.info("wrote the drift reference (%d train rows) and %d canary rows (%s)", reference.n, len(rows), how)


# --------------------------------------------------------------------------------------------- speed


@dataclass(frozen=True)
class SpeedVariant:
    name: str
    bf16: bool
    dynamic_padding: bool
    fused_adamw: bool
    pad_length: int = 128


SPEED_VARIANTS = (
    SpeedVariant("fp32, padded to 128, AdamW", bf16=False, dynamic_padding=False, fused_adamw=False),
    SpeedVariant("fp32, dynamic padding, fused AdamW", bf16=False, dynamic_padding=True, fused_adamw=True),
    SpeedVariant("bf16 autocast, dynamic padding, fused AdamW", bf16=True, dynamic_padding=True, fused_adamw=True),
)


def measure_training_speed(
    config: RunConfig,
    texts: Sequence[str],
    labels: Sequence[str],
    label_values: Sequence[str],
    batches: int = 6,
    warmup_batches: int = 2,
    variants: Sequence[SpeedVariant] = SPEED_VARIANTS,
) -> list[dict[str, Any]]:
    """Training samples/s (forward + backward + optimizer step) of each variant on the same batches."""
    import torch

    train_config = config.train
    tokenizer = load_tokenizer(train_config)
    batch_size = train_config.batch_size
    needed = batch_size * (batches + warmup_batches)
    if len(texts) < needed:
        raise TrainingError(f"speed test needs {needed} texts for {batches}+{warmup_batches} batches, got {len(texts)}")
    label_index = {label: index for index, label in enumerate(labels)}
    encoded = tokenizer(list(texts[:needed]), truncation=True, max_length=train_config.max_length)
    features = [
        {"input_ids": ids, "attention_mask": mask, "labels": label_index[str(value)]}
        for ids, mask, value in zip(encoded["input_ids"], encoded["attention_mask"], label_values[:needed], strict=True)
    ]
    runnable = []
    for variant in variants:
        if variant.bf16 and not cpu_supports_bf16() and not torch.cuda.is_available():
            logger.warning("skipping %r: no bf16 support on this CPU", variant.name)
            continue
        set_seed_everywhere(config.seed)
        model = build_model(train_config, labels, tokenizer)
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=train_config.learning_rate, fused=variant.fused_adamw)
        collator = TweetCollator(tokenizer, pad_to_length=None if variant.dynamic_padding else variant.pad_length)
        runnable.append((variant, model, optimizer, collator))
    elapsed = {variant.name: 0.0 for variant, *_ in runnable}
    tokens = {variant.name: 0 for variant, *_ in runnable}
    # Variants take turns batch by batch, so a burst of load from other processes hits all of them alike.
    for batch_number in range(batches + warmup_batches):
        batch_features = features[batch_number * batch_size : (batch_number + 1) * batch_size]
        for variant, model, optimizer, collator in runnable:
            batch = collator(batch_features)
            batch.pop("sample_weight")
            started = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant.bf16):
                loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if batch_number >= warmup_batches:
                elapsed[variant.name] += time.perf_counter() - started
                tokens[variant.name] += int(batch["input_ids"].numel())
    results = [
        {
            "variant": variant.name,
            "samples_per_second": round(batches * batch_size / elapsed[variant.name], 1),
            "padded_tokens_per_batch": round(tokens[variant.name] / batches, 1),
            "seconds": round(elapsed[variant.name], 2),
        }
        for variant, *_ in runnable
    ]
    return results


def set_seed_everywhere(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


def format_speed_table(rows: Sequence[Mapping[str, Any]], baseline_index: int = 0) -> str:
    reference = rows[baseline_index]["samples_per_second"] if rows else 1.0
    lines = [f"{'variant':<46} {'samples/s':>10} {'tokens/batch':>13} {'speed-up':>9}"]
    for row in rows:
        lines.append(
            f"{row['variant']:<46} {row['samples_per_second']:>10.1f} {row['padded_tokens_per_batch']:>13.0f} "
            f"{row['samples_per_second'] / reference:>8.1f}x"
        )
    return "\n".join(lines) + "\n"


def speed_main(argv: Sequence[str] | None = None) -> int:
    """``scripts/train_speed.py``: training samples/s of fp32 + padding to 128 vs bf16 + dynamic padding + fused."""
    import sys

    parser = argparse.ArgumentParser(prog="train_speed", description=speed_main.__doc__)
    arguments.add_config_arguments(parser)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per variant")
    parser.add_argument("--warmup-batches", type=int, default=2, help="untimed batches first (allocator, kernels)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    arguments.configure_logging(args.log_level)
    # The label-noise audit does not change the texts; skip it so the measurement starts quickly.
    config = load_config(args.config, ["cleaning.label_noise.policy=off", *args.overrides])
    from tweet_classifier.data.prepare import prepare_data

    try:
        prepared = prepare_data(config)
        # Shuffled with the run seed so the batches have the split's real length mix.
        sample = prepared.train.sample(frac=1.0, random_state=config.seed)
        rows = measure_training_speed(
            config,
            sample["text"].astype(str).tolist(),
            prepared.labels,
            sample["label"].astype(str).tolist(),
            batches=args.batches,
            warmup_batches=args.warmup_batches,
        )
    except TweetClassifierError as error:
        logger.error("%s", error)
        return arguments.EXIT_USAGE
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(format_speed_table(rows))
    return arguments.EXIT_OK


# --------------------------------------------------------------------------------------------- CLI


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
