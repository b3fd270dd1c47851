"""``scripts/train_speed.py``: training samples/s (forward + backward + optimizer step) of fp32 padded to
128 with plain AdamW against dynamic padding, fused AdamW and bf16 autocast, on the same batches."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import set_seed

from tweet_classifier import arguments
from tweet_classifier.config import RunConfig, load_config
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.training.base_model import build_model, load_tokenizer
from tweet_classifier.training.device import cpu_supports_bf16
from tweet_classifier.training.encoding import TweetCollator
from tweet_classifier.training.errors import TrainingError

logger = logging.getLogger(__name__)


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
        set_seed(config.seed)
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
    return [
        {
            "variant": variant.name,
            "samples_per_second": round(batches * batch_size / elapsed[variant.name], 1),
            "padded_tokens_per_batch": round(tokens[variant.name] / batches, 1),
            "seconds": round(elapsed[variant.name], 2),
        }
        for variant, *_ in runnable
    ]


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
