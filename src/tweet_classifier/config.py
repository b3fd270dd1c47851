"""Typed, strict, layered run configuration.

A run is described by one or more YAML files (later files win) plus ``--set section.key=value``
overrides. YAML holds values only. Every section is a pydantic model that forbids unknown keys and
refuses type changes, so a typo fails loudly with the key and the value it was given.
"""

from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

DEFAULT_BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: only true/false.

    PyYAML follows YAML 1.1, where ``off``, ``on``, ``yes`` and ``no`` are booleans, so
    ``policy: off`` or ``--set cleaning.label_noise.policy=off`` would arrive as False and fail validation.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
# YAML 1.2 floats: YAML 1.1 needs a dot before the exponent, so `learning_rate: 5e-5` stayed a string.
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # a SafeLoader subclass: no arbitrary objects


class ConfigError(TweetClassifierError):
    """A configuration file or override is invalid; the message names the key and the fix."""


class _Section(BaseModel):
    # strict: a YAML string never silently becomes a number; extra=forbid: typos fail.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class SplitConfig(_Section):
    # official: keep the dataset's own train/validation/test; stratified: label-stratified random
    # split grouped by normalized text; temporal: earliest rows train, latest rows test.
    strategy: Literal["official", "stratified", "temporal"] = "stratified"
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    # Hub split names used when strategy is official.
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: str = "test"
    # Rows are also grouped by a coarse key (case-folded, URL/handle placeholders, punctuation and
    # spacing removed) so near-identical texts never land in two splits. With a threshold, texts whose
    # character-shingle Jaccard similarity (MinHash LSH estimate) is at least this are grouped too.
    coarse_grouping: bool = True
    near_duplicate_threshold: float | None = Field(None, gt=0.0, le=1.0)


class VoteColumns(_Section):
    # Annotator votes as the label confidence: one count column per label name, and optionally the
    # column with the number of annotators (default: the sum of the count columns).
    counts: dict[str, str]
    total: str | None = None


class DataConfig(_Section):
    # A file (csv/jsonl/parquet) or a dataset folder relative to DATA_DIR, an absolute path,
    # or a Hub dataset id such as "cardiffnlp/tweet_eval".
    source: str
    # Hub dataset config name (e.g. "hate" for tweet_eval).
    subset: str | None = None
    # auto: from the file suffix (.csv, .tsv, .jsonl, .parquet); a suffix-less file needs a format.
    format: Literal["auto", "csv", "tsv", "jsonl", "parquet", "hub"] = "auto"
    # A codec name, or "auto": detected by charset-normalizer (the cleaning report names the choice).
    encoding: str = "utf-8"
    # Delimited files (csv/tsv) only. delimiter: one character (default "," for csv, a tab for tsv);
    # header: false for files without a header row, whose columns are then named by column_names
    # (with a header row, column_names renames the columns); quoting "none" reads quotes as ordinary
    # characters (texts with unbalanced '"').
    delimiter: str | None = Field(None, min_length=1, max_length=1)
    header: bool = True
    column_names: list[str] | None = None
    quoting: Literal["minimal", "none"] = "minimal"
    text_column: str = "text"
    label_column: str = "label"
    id_column: str | None = None
    confidence_column: str | None = None
    timestamp_column: str | None = None
    # A column whose values get their own slice metrics (e.g. "airline").
    group_column: str | None = None
    # Label names in model order. Integer labels are mapped through this list; a value outside it
    # is an error. Empty means "read the names from the dataset" (ClassLabel) or sorted values.
    labels: list[str] = Field(default_factory=list)
    # Debug aid (as in transformers' run_classification): keep only the first N rows of each split.
    max_rows: int | None = Field(None, gt=0)
    split: SplitConfig = SplitConfig()
    # Per-label annotator vote counts turned into the confidence cleaning.low_confidence uses
    # (votes for the row's label / annotators); an alternative to confidence_column.
    vote_columns: VoteColumns | None = None

    @property
    def has_confidence(self) -> bool:
        """A per-row label confidence is configured (a confidence column or annotator votes)."""
        return self.confidence_column is not None or self.vote_columns is not None

    @model_validator(mode="after")
    def _check_reading_keys(self) -> DataConfig:
        if not self.header and not self.column_names:
            raise ValueError("data.header is false: name the columns in data.column_names, e.g. [label, text]")
        if self.column_names is not None and len(set(self.column_names)) != len(self.column_names):
            raise ValueError(f"data.column_names has repeated names: {self.column_names}")
        if self.vote_columns is not None and self.confidence_column is not None:
            raise ValueError("set data.confidence_column or data.vote_columns, not both")
        return self


class NormalizeConfig(_Section):
    """Settings of ``text.normalize_tweet``; saved with every model so serving matches training."""

    fix_mojibake: bool = True
    unescape_html: bool = True
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFKC"
    # Replace URLs and @handles with fixed placeholders (TweetEval's own convention).
    replace_urls: bool = True
    url_token: str = "http"
    replace_handles: bool = True
    handle_token: str = "@user"
    # The base model's vocabulary maps most emoji to [UNK]; spell them out instead.
    demojize: bool = True
    lowercase: bool = False
    collapse_whitespace: bool = True
    # Cap runs of one character ("soooooo" -> "sooo") so noisy elongations share tokens.
    max_char_repeat: int = Field(3, ge=0)


class TextRepair(_Section):
    # A regular expression and its replacement, applied to raw text before normalization.
    name: str
    pattern: str
    replacement: str


class LowConfidenceConfig(_Section):
    # drop: remove rows under the threshold; weight: keep them with weight = confidence;
    # keep: do nothing.
    policy: Literal["drop", "weight", "keep"] = "weight"
    threshold: float = Field(0.7, ge=0.0, le=1.0)


class LabelNoiseConfig(_Section):
    # Confident-learning audit with out-of-fold baseline probabilities (cleanlab).
    policy: Literal["off", "report", "drop", "downweight"] = "report"
    folds: int = Field(5, ge=2, le=20)
    downweight_factor: float = Field(0.3, ge=0.0, le=1.0)
    max_examples: int = Field(50, ge=0)
    # The out-of-fold models use a lighter TF-IDF than the baseline (k fits instead of one) and a
    # fixed C: the audit needs calibrated-enough probabilities, not the last point of F1.
    oof_max_features: int = Field(50_000, gt=0)
    oof_char_ngram_max: int = Field(4, ge=1, le=8)
    oof_c: float = Field(1.0, gt=0)


class CleaningConfig(_Section):
    drop_empty: bool = True
    drop_exact_duplicates: bool = True
    # Records that share an id but disagree on the label: drop all of them or keep the first.
    id_conflicts: Literal["drop", "keep_first", "off"] = "drop"
    # An id column with fewer distinct values than this fraction of rows (or any value in scientific
    # notation, as a spreadsheet writes 18-digit tweet ids: 5.70E+17) is mangled: not used to de-duplicate.
    id_min_distinct_fraction: float = Field(0.5, ge=0.0, le=1.0)
    # Texts equal after normalization with different labels: weighted majority vote by
    # confidence, or drop the whole group.
    text_conflicts: Literal["vote", "drop", "off"] = "vote"
    # Texts equal after normalization with the same label: keep one.
    dedupe_normalized: bool = True
    low_confidence: LowConfidenceConfig = LowConfidenceConfig()
    repairs: list[TextRepair] = Field(default_factory=list)
    # Undo the residue of a lossy UTF-8 -> Windows-1252 -> Mac Roman export (lossy_mojibake.py) where
    # exactly one character produces it; before the repairs above. A no-op on text without residue.
    repair_lossy_mojibake: bool = True
    # Official-split datasets: test texts that also occur in train.
    test_overlap: Literal["report", "remove_from_train"] = "remove_from_train"
    label_noise: LabelNoiseConfig = LabelNoiseConfig()
    examples_per_step: int = Field(3, ge=0, le=50)
    # Geotag column whose "[0.0, 0.0]" values (a placeholder, not a place) the report counts, if present.
    coordinates_column: str | None = "tweet_coord"


class BaselineConfig(_Section):
    word_ngram_max: int = Field(2, ge=1, le=3)
    char_ngram_min: int = Field(2, ge=1, le=6)
    char_ngram_max: int = Field(5, ge=1, le=8)
    # Split evenly between the word and the char block.
    max_features: int = Field(200_000, gt=0)
    # Ignore n-grams seen in fewer documents: hapaxes are mostly typos and ids, and dropping them
    # cuts the airline feature count ~3x and the logistic regression fit time with it.
    min_df: int = Field(2, ge=1)
    # Inverse regularisation strengths tried on validation. Measured picks: airline 1, TweetEval hate 2,
    # offensive 0.5 (the old lower edge, hence 0.25); 8 was never picked and is the slowest fit.
    c_grid: list[float] = Field(default_factory=lambda: [0.25, 0.5, 1.0, 2.0, 4.0])
    class_weight: Literal["balanced", "none"] = "balanced"
    max_iter: int = Field(2000, gt=0)


class TrainConfig(_Section):
    base_model: str = DEFAULT_BASE_MODEL
    # Pin the base model to a Hub revision (commit SHA, tag or branch).
    base_revision: str | None = None
    output_dir: str = "models/airline"
    # Airline tweets: 99.9% are <= 57 tokens raw (max 67); 96 leaves room for spelled-out emoji.
    # Padding is dynamic, so the cap costs nothing on shorter batches.
    max_length: int = Field(96, ge=8, le=512)
    epochs: float = Field(3.0, gt=0)
    # -1 means "derived from epochs".
    max_steps: int = Field(-1, ge=-1)
    batch_size: int = Field(32, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    # Small models such as MiniLM-L6 want a higher rate than BERT-base's usual 2e-5..5e-5.
    learning_rate: float = Field(1e-4, gt=0, lt=1)
    weight_decay: float = Field(0.01, ge=0)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = "linear"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    class_weighted_loss: bool = True
    # Use the cleaning pipeline's confidence weights as per-sample loss weights.
    sample_weights: bool = True
    freeze_embeddings: bool = False
    # bf16 autocast on CPUs with AMX/AVX512-BF16 and on GPUs that support it.
    bf16: bool = True
    group_by_length: bool = True
    # Fused AdamW (one kernel for all parameters; CPU and CUDA in torch >= 2.4).
    fused_adamw: bool = True
    # Evaluate (and checkpoint) every eval_steps optimizer steps; None: evals_per_epoch times an epoch.
    eval_steps: int | None = Field(None, gt=0)
    evals_per_epoch: int = Field(2, ge=1, le=100)
    # Checkpoints live in "<output_dir>.checkpoints/" for --resume; removed after a finished run unless kept.
    keep_checkpoints: bool = False
    early_stopping_patience: int = Field(2, ge=0)
    logging_steps: int = Field(25, gt=0)
    save_total_limit: int = Field(2, ge=1)
    dataloader_workers: int = Field(0, ge=0)
    # Build a randomly initialised model of this size instead of loading base_model (tests).
    tiny_model: bool = False


class EvaluateConfig(_Section):
    ece_bins: int = Field(10, ge=2, le=100)
    short_text_words: int = Field(8, ge=1)
    worst_examples: int = Field(25, ge=0)
    batch_size: int = Field(64, ge=1)
    # bf16 autocast for scoring where the hardware supports it; fp32 by default so reported numbers are exact.
    bf16: bool = False


class ReviewConfig(_Section):
    """Selective prediction (calibration.py): the confidence threshold under which a prediction carries
    ``needs_review: true`` is the lowest at which the kept validation predictions still reach ``target``
    on ``metric`` (after temperature scaling). Only thresholds whose kept set is big enough to measure the
    metric are considered: at least ``min_coverage`` of validation, at least ``min_kept`` rows and, for the
    macro metrics, at least ``min_per_class`` true rows of every label. Where none of those reaches
    ``target`` the threshold is the one with the best metric among them (``target_reached: false`` in
    calibration.json, a warning, and the card says so). Fitted at the end of training and by
    `tweet-classifier calibrate`; stored in the model folder's calibration.json, so changing it needs a
    re-calibration."""

    metric: Literal["macro_f1", "accuracy", "macro_precision"] = "macro_f1"
    # 0.85 macro-F1 on the kept tweets: what the airline MiniLM model delivers on validation at about 80%
    # coverage (0.79 on all tweets; 0.9 is not reached at any coverage of at least a fifth of validation).
    target: float = Field(0.85, gt=0.0, le=1.0)
    # A threshold acting on under a fifth of the traffic automates too little to be worth having, and the
    # most confident slice is where the class mix is most skewed (the airline model's top 40% is almost
    # all "negative"), so its macro metric says little about the classes the flag is for.
    min_coverage: float = Field(0.2, ge=0.0, le=1.0)
    # The binomial standard error of an accuracy near 0.9 is 0.021 on 200 rows (0.03 on 100): under 200
    # kept rows the estimate is too noisy to set a threshold on.
    min_kept: int = Field(200, ge=1)
    # For macro_f1 / macro_precision every class's score counts with the same weight: with fewer than 20
    # true rows of a class one row moves its F1 by about 0.05, and a missing class scores 0.
    min_per_class: int = Field(20, ge=0)


class InferenceConfig(_Section):
    backend: Literal[
        "auto", "torch-fp32", "torch-bf16", "torch-bf16-compiled", "onnx-fp32", "onnx-int8", "onnx-int8-cascade"
    ] = "auto"
    max_chars: int = Field(2_000, gt=0)
    batch_size: int = Field(32, ge=1)
    min_agreement: float = Field(0.995, gt=0, le=1)
    max_f1_drop: float = Field(0.005, ge=0, le=1)
    # The cascade's margin is the smallest whose cascade agrees with fp32 on this share of the train
    # calibration texts (cascade_margin.py); export raises it while the cascade fails the gate above.
    cascade_agreement: float = Field(0.999, gt=0, le=1)
    # Threads for torch and ONNX Runtime; 0 means one per physical core (oversubscribing hurts latency).
    num_threads: int = Field(0, ge=0)
    # Validation texts timed one by one (and in batches) at export time, so loading never re-benchmarks.
    parity_latency_texts: int = Field(200, ge=10)
    # ... in this many rounds that take turns between the backends; auto uses each figure's median.
    parity_rounds: int = Field(3, ge=1, le=20)
    # export compiles the bf16 model ahead of time (AOTInductor, ~35 s for MiniLM-L6 on 2 cores; needs a
    # C++ compiler, skipped with a warning without one) for the torch-bf16-compiled batch backend.
    compile_batch: bool = True


class ServeConfig(_Section):
    """The Gradio app and the FastAPI server (serve.py, monitor.py); see ``load_serving_config`` for the
    layers (the model's run config, the caller's files and ``--set``, then FEEDBACK_FILE / FEEDBACK_REPO)."""

    # Model calls running at once per process. On a 2-core CPU more than 2 only adds contention;
    # measured with scripts/api_latency.py and the load test (see README).
    concurrency_limit: int = Field(2, ge=1, le=64)
    # Events waiting in Gradio's queue (and /v1 requests waiting for a slot) before "busy" answers.
    queue_max_size: int = Field(64, ge=1)
    # A request that waited this long for a model slot is answered "busy" instead of running late
    # (its client has most likely given up); must be well under graceful_shutdown_s.
    max_queue_wait_s: float = Field(10.0, gt=0)
    # The first N requests after start-up are "cold" (caches, allocator, lazy init) and kept apart.
    cold_requests: int = Field(20, ge=0)
    latency_window: int = Field(2_000, ge=10)
    throughput_window_s: float = Field(60.0, gt=0)
    # Cap on every request body but CSV uploads, counted while it streams (chunked bodies too). The
    # largest valid /v1 batch (256 texts of 2,000 characters, every one \u-escaped) is about 3 MB, and
    # parsing 4 MiB of hostile JSON takes well under a second, so /healthz never waits behind it.
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    max_csv_bytes: int = Field(5 * 1024 * 1024, gt=0)
    max_csv_rows: int = Field(5_000, ge=1)
    # Checked row by row while the upload is parsed, before the whole file is in memory.
    max_csv_columns: int = Field(64, ge=1)
    max_csv_cell_chars: int = Field(10_000, ge=1)
    # Disk that uploads and downloadable results (Gradio's upload folder) may hold; past it, uploads
    # are answered "busy" until files age out. Each file is deleted upload_ttl_s after it was written.
    max_upload_disk_bytes: int = Field(512 * 1024 * 1024, gt=0)
    upload_ttl_s: int = Field(900, ge=60)
    max_batch_texts: int = Field(256, ge=1)
    # Words an explanation scores (explain.py: one batch of this many + 1 texts); later words are not scored.
    explain_max_words: int = Field(64, ge=1, le=512)
    # Browser origins (scheme://host[:port]) allowed to call the API cross-site; empty: same-origin only.
    allowed_origins: list[str] = Field(default_factory=list)
    # Connection deadlines uvicorn lacks: the request head must arrive within header_timeout_s of the
    # connection opening (or of the previous response), the body within body_timeout_s of the head
    # (a 5 MB upload needs 0.7 Mbit/s). Idle keep-alive connections close after keep_alive_s.
    header_timeout_s: float = Field(10.0, gt=0)
    body_timeout_s: float = Field(60.0, gt=0)
    keep_alive_s: int = Field(5, ge=1)
    feedback_file: str = "runs/feedback.jsonl"
    # One bound for the corrections file and the live corrections F1: both hold the same records.
    feedback_max_records: int = Field(10_000, ge=10)
    feedback_max_bytes: int = Field(20 * 1024 * 1024, ge=1024)
    # A Hub dataset (ORG/NAME) the corrections are also committed to, so they survive a Space restart
    # (a Space's disk is wiped); env FEEDBACK_REPO. Needs a write token in HF_TOKEN.
    feedback_repo: str | None = None
    # How often the background scheduler commits new corrections there (huggingface_hub's CommitScheduler).
    feedback_push_minutes: float = Field(1.0, gt=0)
    # Canary: small batches so user requests are never stuck behind it; it pauses while users wait.
    canary_batch_size: int = Field(8, ge=1)
    canary_max_rows: int = Field(5_000, ge=1)
    drift_window: int = Field(1_000, ge=10)
    drift_min_samples: int = Field(50, ge=1)
    # PSI above 0.25 is the usual "major shift" line; 0.1-0.25 "moderate".
    drift_psi_threshold: float = Field(0.25, gt=0)
    metrics_refresh_s: float = Field(2.0, gt=0)
    # The live plots: the last timeline_buckets buckets of timeline_bucket_s seconds each (5 s x 120 =
    # the last 10 minutes), a fixed amount of memory whatever the traffic (monitor.py, timeline.py).
    timeline_bucket_s: float = Field(5.0, gt=0)
    timeline_buckets: int = Field(120, ge=2, le=10_000)
    # SIGTERM: requests already running finish; waiting ones may still start during the first half of
    # this grace and are answered "busy" after it, so nothing is cut off when it ends.
    graceful_shutdown_s: float = Field(30.0, ge=0)
    # Serve the public API functions as MCP tools too (Gradio's MCP server, streamable HTTP at
    # /gradio_api/mcp/); needs the `mcp` package (requirements.txt pins it).
    mcp_server: bool = True

    @model_validator(mode="after")
    def _check_serving_limits(self) -> ServeConfig:
        for origin in self.allowed_origins:
            if origin != "*" and not re.fullmatch(r"https?://[^/\s?#]+", origin):
                raise ValueError(
                    f"serve.allowed_origins entry {origin!r} is not an origin: write scheme://host[:port] "
                    "(for example https://example.org), with no path"
                )
        if self.graceful_shutdown_s and self.max_queue_wait_s >= self.graceful_shutdown_s:
            raise ValueError(
                f"serve.max_queue_wait_s ({self.max_queue_wait_s:g}) must be below serve.graceful_shutdown_s "
                f"({self.graceful_shutdown_s:g}): a request that waited that long would be cut off at shutdown"
            )
        return self


class TrackingConfig(_Section):
    enabled: bool = True
    project: str = "tweet-classifier"
    entity: str | None = None
    # auto: online with WANDB_API_KEY and a reachable server, otherwise offline.
    mode: Literal["auto", "online", "offline", "disabled"] = "auto"
    # Bounded checks so an unreachable server costs seconds, not a hung run.
    reachability_timeout_s: float = Field(3.0, gt=0, le=60)
    init_timeout_s: float = Field(30.0, gt=0, le=600)


class HubConfig(_Section):
    repo_id: str | None = None
    private: bool = False
    revision: str = "main"
    # Transient Hub errors (5xx, 429, dropped connections) are retried with exponential backoff:
    # base, 2*base, 4*base ... capped at retry_max_delay_s. Tests shrink the base delay.
    max_retries: int = Field(4, ge=0, le=10)
    retry_base_delay_s: float = Field(2.0, ge=0, le=60)
    retry_max_delay_s: float = Field(60.0, ge=0, le=600)
    # Space that `deploy-space` uploads the app to (ORG/NAME).
    space_id: str | None = None
    # Hub dataset of the cleaned splits (`push-data` pushes there by default); model cards name it in
    # `datasets:` and the model-index when set.
    dataset_repo_id: str | None = Field(None, pattern=r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


class PromotionConfig(_Section):
    # The challenger must beat the champion's test macro-F1 by at least this much ...
    min_improvement: float = Field(0.005, ge=0, le=1)
    # ... lose no more than this much F1 on any single class ...
    max_class_drop: float = Field(0.02, ge=0, le=1)
    # ... and answer one text (Predictor, batch 1) within this p95 latency.
    p95_budget_ms: float = Field(50.0, gt=0)
    # Test texts timed for latency (the first N of the frozen test split), after warm-up calls.
    latency_texts: int = Field(200, ge=10)
    latency_warmup: int = Field(10, ge=0)
    # Intra-op threads of each timed Predictor; None: inference.num_threads, as the app serves it.
    latency_threads: int | None = Field(None, ge=1)
    # Export the challenger to ONNX (with parity.json) before timing it, so the gate times the backend
    # the app would pick and a promoted push carries the ONNX files.
    export_challenger: bool = True
    # retrain --corrections: the loss weight of each user correction in the train split (1: a training row).
    corrections_weight: float = Field(1.0, gt=0, le=100)


class RunConfig(_Section):
    name: str
    seed: int = 42
    data: DataConfig
    normalize: NormalizeConfig = NormalizeConfig()
    cleaning: CleaningConfig = CleaningConfig()
    baseline: BaselineConfig = BaselineConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    review: ReviewConfig = ReviewConfig()
    inference: InferenceConfig = InferenceConfig()
    serve: ServeConfig = ServeConfig()
    tracking: TrackingConfig = TrackingConfig()
    hub: HubConfig = HubConfig()
    promotion: PromotionConfig = PromotionConfig()

    @model_validator(mode="after")
    def _check_split_fractions(self) -> RunConfig:
        split = self.data.split
        if split.validation_fraction + split.test_fraction >= 0.8:
            raise ValueError(
                "data.split.validation_fraction + data.split.test_fraction must be below 0.8, "
                f"got {split.validation_fraction} + {split.test_fraction}"
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def data_dir() -> Path:
    """Folder that relative data paths resolve against: ``$DATA_DIR`` or ``data/``."""
    return Path(os.environ.get("DATA_DIR", "data"))


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``overlay`` into a copy of ``base``; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_yaml_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (pass an existing YAML file to --config)")
    try:
        loaded = _load_yaml(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text: save it as UTF-8") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: fix the syntax") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}")
    return loaded


def parse_override(override: str) -> tuple[list[str], Any]:
    """Split ``section.key=value`` into its key path and a YAML-typed value."""
    key, sep, raw_value = override.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r} must look like section.key=value")
    try:
        value = _load_yaml(raw_value) if raw_value.strip() else ""
    except yaml.YAMLError:
        value = raw_value
    return key.split("."), value


def apply_override(values: dict[str, Any], override: str) -> dict[str, Any]:
    path, value = parse_override(override)
    nested: dict[str, Any] = value
    for part in reversed(path):
        nested = {part: nested}
    return deep_merge(values, nested)


def _format_validation_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "<root>"
        if item["type"] == "extra_forbidden":
            problems.append(f"unknown config key '{key}' (value {item['input']!r}): remove it or fix the spelling")
        elif item["type"] == "missing":
            problems.append(f"missing config key '{key}': add it to the config")
        elif not item["loc"]:
            # A cross-field check on the whole config: its message names the keys; the input is everything.
            problems.append(f"invalid config: {item['msg'].removeprefix('Value error, ')}")
        else:
            problems.append(f"config key '{key}' has invalid value {item['input']!r}: {item['msg']}")
    return "; ".join(problems)


def build_config(values: Mapping[str, Any]) -> RunConfig:
    try:
        return RunConfig.model_validate(dict(values))
    except ValidationError as error:
        raise ConfigError(_format_validation_error(error)) from None


def load_config(paths: Sequence[str | Path], overrides: Iterable[str] = ()) -> RunConfig:
    """Load and layer YAML files (later wins), apply ``key=value`` overrides, validate."""
    if not paths:
        raise ConfigError("no config given: pass --config configs/airline.yaml (or another file)")
    values: dict[str, Any] = {}
    for path in paths:
        values = deep_merge(values, _read_yaml_file(Path(path)))
    for override in overrides:
        values = apply_override(values, override)
    return build_config(values)


# The inference settings the server uses; the others (parity gate, latency rounds, compile) are export's.
SERVING_INFERENCE_KEYS = ("backend", "max_chars", "batch_size", "num_threads")
SERVING_SECTIONS = ("serve", "inference")
# Environment variables on top of every config layer, by the serve key they set.
SERVING_ENV = {"FEEDBACK_FILE": "feedback_file", "FEEDBACK_REPO": "feedback_repo", "ALLOWED_ORIGINS": "allowed_origins"}
# Environment variables that hold a comma-separated list.
SERVING_LIST_ENV = ("ALLOWED_ORIGINS",)


def _serving_sections(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``serve:`` and ``inference:`` of a caller's layer; anything else would be validated and then unused."""
    extra = sorted(set(values) - set(SERVING_SECTIONS))
    if extra:
        raise ConfigError(
            f"{where}: {', '.join(repr(key) for key in extra)} is not a serving setting; the server reads only the "
            "serve: and inference: sections, so remove the others (training settings belong in a run config)"
        )
    inference = values.get("inference") or {}
    if not isinstance(inference, Mapping):
        raise ConfigError(f"{where}: inference must be a mapping of settings, got {inference!r}")
    unused = sorted(set(inference) - set(SERVING_INFERENCE_KEYS))
    if unused:
        raise ConfigError(
            f"{where}: inference.{unused[0]} is used only by `tweet-classifier export`: remove it here "
            f"(the server uses inference.{', inference.'.join(SERVING_INFERENCE_KEYS)})"
        )
    return {key: dict(values[key]) for key in SERVING_SECTIONS if isinstance(values.get(key), Mapping)}


def _validated_section(section: type[_Section], values: Mapping[str, Any], name: str) -> _Section:
    try:
        return section.model_validate(dict(values))
    except ValidationError as error:
        problems = _format_validation_error(error).replace("config key '", f"config key '{name}.")
        raise ConfigError(problems) from None


def load_serving_config(
    model_run_config: str | Path | None,
    paths: Sequence[str | Path] = (),
    overrides: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> tuple[ServeConfig, InferenceConfig]:
    """The server's settings, later layers winning: defaults, the model's own ``run_config.yaml`` (its
    ``serve:`` and ``inference:``, as trained), the caller's files (only those two sections), ``--set``
    overrides, then the environment (``SERVING_ENV``). Every key a caller gives is one the server uses.

    A model's config this version cannot read (an older or newer tweet-classifier) is skipped with a
    warning, section by section: the model still serves, with the caller's settings and the defaults.
    """
    layered: dict[str, Any] = {"serve": {}, "inference": {}}
    if model_run_config is not None and Path(model_run_config).is_file():
        model_values = _read_yaml_file(Path(model_run_config))
        for name, section in (("serve", ServeConfig), ("inference", InferenceConfig)):
            candidate = model_values.get(name) or {}
            if name == "inference" and isinstance(candidate, Mapping):
                candidate = {key: value for key, value in candidate.items() if key in SERVING_INFERENCE_KEYS}
            try:
                layered[name] = _validated_section(section, candidate, name).model_dump(exclude_unset=True)
            except ConfigError as error:
                logger.warning("ignoring the %s: section of %s: %s", name, model_run_config, error)
    for path in paths:
        layered = deep_merge(layered, _serving_sections(_read_yaml_file(Path(path)), f"config file {path}"))
    for override in overrides:
        layered = deep_merge(layered, _serving_sections(apply_override({}, override), f"--set {override}"))
    environ = os.environ if env is None else env
    for variable, key in SERVING_ENV.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        setting = [item.strip() for item in value.split(",") if item.strip()] if variable in SERVING_LIST_ENV else value
        try:
            _validated_section(ServeConfig, {key: setting}, "serve")
        except ConfigError as error:
            raise ConfigError(f"environment variable {variable}: {error}") from None
        layered["serve"][key] = setting
    serve = _validated_section(ServeConfig, layered["serve"], "serve")
    inference = _validated_section(InferenceConfig, layered["inference"], "inference")
    return serve, inference  # type: ignore[return-value]


def save_config(config: RunConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML next to an output."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(config.to_yaml(), encoding="utf-8")
    return target
