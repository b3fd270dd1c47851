"""The Hugging Face ``Trainer`` as this project runs it: weighted, label-smoothed cross-entropy, a guard that
stops on the first non-finite loss, macro-F1 as the metric that picks the best checkpoint, and the
``TrainingArguments`` a run config maps to."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as functional
from transformers import Trainer, TrainingArguments

from tweet_classifier.config import RunConfig, TrainConfig
from tweet_classifier.metrics import classification_report_dict
from tweet_classifier.training.device import DevicePlan
from tweet_classifier.training.errors import NonFiniteLossError


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
    per_example = functional.cross_entropy(
        logits.float(), targets, weight=class_weights, label_smoothing=label_smoothing, reduction="none"
    )
    weights = sample_weights.float() if sample_weights is not None else torch.ones_like(per_example)
    denominator = weights * (class_weights[targets] if class_weights is not None else 1.0)
    return (per_example * weights).sum() / denominator.sum().clamp_min(1e-12)


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


def compute_eval_metrics(labels: Sequence[str]) -> Any:
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
) -> TrainingArguments:
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
