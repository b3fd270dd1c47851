"""The model card (``README.md`` of a model folder), built only from the folder's own files.

Because it reads nothing but the folder (manifest, ``metrics.json``, ``run_config.yaml``,
``cleaning_report.json``, ``benchmark.json`` when present), ``hub.py`` can regenerate it after export and
benchmarking. The YAML front matter carries ``model-index`` so the Hub shows the test scores.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from tweet_classifier.artifact import (
    BENCHMARK_NAME,
    CARD_NAME,
    CLEANING_REPORT_NAME,
    FILE_DESCRIPTIONS,
    METRICS_NAME,
    RUN_CONFIG_NAME,
    ArtifactError,
    ModelManifest,
    read_canary,
    read_json,
)
from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.inference.calibration import review_outcome

logger = logging.getLogger(__name__)

# Licences of the data the model is trained on; the card repeats them because they bind the weights' use.
DATASET_LICENCES = {
    "twitter-airline-sentiment": (
        "CC BY-NC-SA 4.0 (Twitter US Airline Sentiment, Figure Eight / Crowdflower via Kaggle): "
        "non-commercial use only, share alike, attribute Figure Eight"
    ),
    "tweet_eval": (
        "TweetEval (Barbieri et al., 2020): the tweets stay under Twitter's terms of service and each task's "
        "original licence; research use"
    ),
}
DATASET_HUB_IDS = {"tweet_eval": "cardiffnlp/tweet_eval"}
# The licences above as Hub licence ids (model and dataset cards); "other" for the rest.
DATASET_LICENCE_IDS = {"twitter-airline-sentiment": "cc-by-nc-sa-4.0"}
TRAINING_KEYS = (
    "base_model",
    "max_length",
    "epochs",
    "max_steps",
    "batch_size",
    "learning_rate",
    "weight_decay",
    "warmup_ratio",
    "lr_scheduler",
    "label_smoothing",
    "class_weighted_loss",
    "sample_weights",
    "freeze_embeddings",
    "bf16",
    "group_by_length",
    "early_stopping_patience",
)


class ModelCardError(TweetClassifierError):
    """The folder lacks what a model card needs."""


def dataset_key(source: str) -> str:
    return Path(source).parts[0] if source else "unknown"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _read_optional_json(path: Path) -> Any:
    return read_json(path) if path.is_file() else None


def card_metadata(
    manifest: ModelManifest,
    metrics: Mapping[str, Any],
    run_config: Mapping[str, Any],
    examples: Sequence[str] = (),
    dataset_repo_id: str | None = None,
) -> Any:
    """``huggingface_hub.ModelCardData`` with the model-index (macro-F1 and accuracy on test) and the Hub
    widget's example inputs. ``dataset_repo_id`` (else the run config's ``hub.dataset_repo_id``) is the Hub
    dataset of the cleaned splits (``push-data``): ``datasets:`` and the model-index name it."""
    # Deferred: huggingface_hub loads only when the Hub is used (start-up time of the commands that never touch it).
    from huggingface_hub import EvalResult, ModelCardData

    data_config = run_config.get("data", {})
    source = str(manifest.dataset.get("source") or data_config.get("source", ""))
    source_key = dataset_key(source)
    dataset_type = (
        dataset_repo_id
        or (run_config.get("hub") or {}).get("dataset_repo_id")
        or DATASET_HUB_IDS.get(source_key, source_key)
    )
    subset = manifest.dataset.get("subset") or data_config.get("subset")
    test = metrics.get("test", {})
    common = {
        "task_type": "text-classification",
        "task_name": "Text Classification",
        "dataset_type": dataset_type,
        "dataset_name": f"{source_key}{f' ({subset})' if subset else ''}",
        "dataset_config": subset,
        "dataset_split": "test",
    }
    results = [
        EvalResult(
            metric_type="f1",
            metric_name="macro-F1",
            metric_value=round(test["macro_f1"], 4),
            metric_args={"average": "macro"},
            **common,
        ),
        EvalResult(metric_type="accuracy", metric_name="accuracy", metric_value=round(test["accuracy"], 4), **common),
    ]
    # Per-class F1 is in the card body: model-index ``config:`` names a dataset configuration, not a class.
    licence = DATASET_LICENCE_IDS.get(source_key, "other")
    base_model = manifest.base_model if "/" in manifest.base_model and " " not in manifest.base_model else None
    return ModelCardData(
        license=licence,
        language="en",
        library_name="transformers",
        pipeline_tag="text-classification",
        base_model=base_model,
        datasets=[dataset_type],
        tags=["text-classification", "sentiment-analysis", "tweets", "tweet-classifier"],
        metrics=["f1", "accuracy"],
        model_name=run_config.get("name", "tweet-classifier"),
        eval_results=results,
        widget=[{"text": text} for text in examples] or None,
    )


def widget_examples(folder: Path, per_label: int = 1) -> list[str]:
    """The first canary (test) text of each label, for the Hub's inference widget; none without canary rows."""
    try:
        canary = read_canary(folder)
    except ArtifactError:
        return []
    if canary is None:
        return []
    chosen: dict[str, list[str]] = {}
    for text, label in zip(canary.texts, canary.labels, strict=True):
        if len(chosen.setdefault(label, [])) < per_label:
            chosen[label].append(text)
    return [text for texts in chosen.values() for text in texts]


def render_model_card(model_dir: str | Path, repo_id: str | None = None, dataset_repo_id: str | None = None) -> str:
    """The card text of ``model_dir`` (front matter + sections), from its files only; snippets load
    ``repo_id`` (the folder's path when it is not being published); ``dataset_repo_id``: see ``card_metadata``."""
    # Deferred: huggingface_hub loads only when the Hub is used (start-up time of the commands that never touch it).
    from huggingface_hub import ModelCard

    folder = Path(model_dir)
    manifest = ModelManifest.load(folder)
    metrics = _read_optional_json(folder / METRICS_NAME)
    if not metrics or "test" not in metrics:
        raise ModelCardError(f"{folder}/metrics.json is missing or has no test metrics: rerun training or evaluation")
    run_config_path = folder / RUN_CONFIG_NAME
    run_config = yaml.safe_load(run_config_path.read_text(encoding="utf-8")) if run_config_path.is_file() else {}
    cleaning = _read_optional_json(folder / CLEANING_REPORT_NAME)
    benchmark = _read_optional_json(folder / BENCHMARK_NAME)
    metadata = card_metadata(manifest, metrics, run_config, widget_examples(folder), dataset_repo_id)
    body = _card_body(manifest, metrics, run_config or {}, cleaning, benchmark, repo_id or str(folder))
    body += _files_section(folder)
    card = ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}")
    return str(card)


def write_model_card(model_dir: str | Path, repo_id: str | None = None, dataset_repo_id: str | None = None) -> Path:
    """Write ``README.md`` into ``model_dir`` and check that its front matter parses back with the model-index."""
    # Deferred: huggingface_hub loads only when the Hub is used (start-up time of the commands that never touch it).
    from huggingface_hub import ModelCard

    folder = Path(model_dir)
    text = render_model_card(folder, repo_id, dataset_repo_id)
    path = folder / CARD_NAME
    path.write_text(text, encoding="utf-8")
    parsed = ModelCard.load(path)
    if not parsed.data.eval_results:
        raise ModelCardError(f"{path}: the model-index did not parse back; this is a bug in card.py")
    return path


def _card_body(
    manifest: ModelManifest,
    metrics: Mapping[str, Any],
    run_config: Mapping[str, Any],
    cleaning: Mapping[str, Any] | None,
    benchmark: Any,
    model_id: str,
) -> str:
    test = metrics["test"]
    validation = metrics.get("validation", {})
    baseline_f1 = metrics.get("baseline", {}).get("test", {}).get("macro_f1")
    source = str(manifest.dataset.get("source", ""))
    licence = DATASET_LICENCES.get(dataset_key(source), "see the dataset's own licence")
    name = run_config.get("name", "tweet-classifier")
    labels = ", ".join(f"`{label}`" for label in manifest.labels)
    sections = [
        f"# {name}: tweet classifier ({len(manifest.labels)} classes)",
        f"Fine-tuned from `{manifest.base_model}` on `{source}` to predict {labels}. "
        f"Test macro-F1 **{_pct(test['macro_f1'])}** (accuracy {_pct(test['accuracy'])}"
        + (
            f"; TF-IDF + logistic regression baseline {_pct(baseline_f1)} on the same split"
            if baseline_f1 is not None
            else ""
        )
        + ").",
        "## Intended use",
        "Classifying the sentiment (or the task's labels) of short English social-media posts, as a component "
        "of analytics dashboards and triage tools with a human in the loop. Not for decisions about individuals.",
        "## Limitations",
        "\n".join(
            [
                "- **Emoji**: the base vocabulary maps most emoji to `[UNK]`; the normalizer spells them out "
                "(`:thumbs_up:`) before tokenization, so unusual emoji carry less signal than words.",
                "- **Label noise**: the labels are crowd-sourced; part of them have low annotator confidence "
                "(down-weighted in training) and a confident-learning audit flags likely mislabels (see the "
                "cleaning summary). Test scores inherit this noise.",
                "- **Domain bias**: trained on tweets about a narrow topic and period (for the airline data, six US "
                "airlines in February 2015); expect lower accuracy on other domains, other years, sarcasm and "
                "languages other than English.",
                f"- **Licence of the training data**: {licence}.",
                f"- Texts longer than {manifest.max_chars} characters are refused; inputs are truncated to "
                f"{manifest.max_length} tokens.",
            ]
        ),
        "## Training procedure",
        _training_section(manifest, run_config),
        "## Evaluation",
        _evaluation_section(test, validation, baseline_f1),
    ]
    if metrics.get("calibration") and metrics.get("selective"):
        sections += ["## Calibration and review", _calibration_section(metrics["calibration"], metrics["selective"])]
    if cleaning:
        sections += ["## Data cleaning", _cleaning_section(cleaning)]
    if benchmark:
        sections += ["## Inference benchmark", _benchmark_section(benchmark)]
    sections += ["## How to use", _usage_section(model_id)]
    provenance = []
    if manifest.wandb_run_url:
        provenance.append(f"- Weights & Biases run: {manifest.wandb_run_url}")
    if manifest.git_commit:
        provenance.append(f"- Code: tweet-classifier at git commit `{manifest.git_commit}`")
    if manifest.dataset.get("sha256"):
        provenance.append(f"- Data file sha256: `{manifest.dataset['sha256']}`")
    provenance.append(f"- Normalizer version {manifest.normalizer_version}; created {manifest.created_at}")
    sections += ["## Provenance", "\n".join(provenance)]
    return "\n\n".join(sections) + "\n"


def _files_section(folder: Path) -> str:
    """The folder's files with what each is (the card always lists itself: it is written after this)."""
    present = sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts)
    )
    rows = []
    for name in dict.fromkeys([*present, CARD_NAME]):
        description = next((text for pattern, text in FILE_DESCRIPTIONS if fnmatch.fnmatchcase(name, pattern)), None)
        if description is not None:
            rows.append([f"`{name}`", description])
    return "\n## Files\n\n" + _table(["file", "what it is"], rows) + "\n"


def _training_section(manifest: ModelManifest, run_config: Mapping[str, Any]) -> str:
    train = run_config.get("train", {})
    rows = [[key, f"`{train[key]}`"] for key in TRAINING_KEYS if key in train]
    rows.append(["seed", f"`{run_config.get('seed')}`"])
    training = manifest.training
    facts = []
    if training:
        facts.append(
            f"Trained for {training.get('steps')} steps ({training.get('epochs')} epochs) in "
            f"{training.get('seconds')} s at {training.get('samples_per_second')} samples/s on "
            f"{training.get('device')}; best validation checkpoint at step {training.get('best_step')}."
        )
    facts.append(
        "Loss: cross-entropy with balanced class weights and per-sample weights (annotator confidence); "
        "early stopping on validation macro-F1; the best checkpoint is kept."
    )
    return "\n\n".join([*facts, _table(["hyper-parameter", "value"], rows)])


def _evaluation_section(test: Mapping[str, Any], validation: Mapping[str, Any], baseline_f1: float | None) -> str:
    summary_rows = [
        ["model (test)", _pct(test["macro_f1"]), _pct(test["accuracy"]), f"{test.get('ece', float('nan')):.3f}"]
    ]
    if validation:
        summary_rows.append(
            ["model (validation)", _pct(validation.get("macro_f1")), _pct(validation.get("accuracy")), ""]
        )
    if baseline_f1 is not None:
        summary_rows.append(["TF-IDF + logistic regression (test)", _pct(baseline_f1), "", ""])
    parts = [
        f"Test set: {test.get('n')} tweets. Macro-F1 is the primary metric.",
        _table(["system", "macro-F1", "accuracy", "ECE"], summary_rows),
        "Per class (test):",
        _table(
            ["class", "precision", "recall", "F1", "support"],
            [
                [label, _pct(values["precision"]), _pct(values["recall"]), _pct(values["f1"]), values["support"]]
                for label, values in test.get("per_class", {}).items()
            ],
        ),
    ]
    slices = test.get("slices") or {}
    if slices:
        parts += [
            "Slices (test; `small` slices have under 30 tweets and are noisy):",
            _table(
                ["slice", "n", "macro-F1", "accuracy"],
                [
                    [
                        f"{name}{' (small)' if values.get('small') else ''}",
                        values["n"],
                        _pct(values["macro_f1"]),
                        _pct(values["accuracy"]),
                    ]
                    for name, values in slices.items()
                ],
            ),
        ]
    return "\n\n".join(parts)


def _calibration_section(calibration: Mapping[str, Any], selective: Mapping[str, Any]) -> str:
    """ECE before/after temperature scaling and the coverage table, from ``metrics.json``."""
    test, validation = calibration["test"], calibration["validation"]
    kept = selective["test"]
    parts = [
        f"Temperature scaling fitted on validation (T = {calibration['temperature']:.3f}; "
        f"{calibration['ece_bins']} equal-width confidence bins). Every backend applies it.",
        _table(
            ["split", "ECE before", "ECE after", "NLL before", "NLL after"],
            [
                [
                    name,
                    f"{numbers['ece_before']:.4f}",
                    f"{numbers['ece_after']:.4f}",
                    f"{numbers['nll_before']:.4f}",
                    f"{numbers['nll_after']:.4f}",
                ]
                for name, numbers in (("validation", validation), ("test", test))
            ],
        ),
        f"**Review flag**: predictions whose calibrated confidence is under **{selective['threshold']:.3f}** carry "
        f"`needs_review: true`. {review_outcome(selective)} On test it acts on **{_pct(kept['coverage'])}%** "
        "of tweets automatically at macro-F1 "
        f"**{_pct(kept['macro_f1'])}** (accuracy {_pct(kept['accuracy'])}).",
        "Coverage vs macro-F1 on test (each threshold chosen on validation for its coverage):",
        _table(
            ["threshold", "validation coverage", "test coverage", "test macro-F1", "test accuracy"],
            [
                [
                    f"{row['threshold']:.3f}",
                    _pct(row["validation_coverage"]),
                    _pct(row["coverage"]),
                    _pct(row["macro_f1"]),
                    _pct(row["accuracy"]),
                ]
                for row in selective["coverage_table"]
            ],
        ),
    ]
    return "\n\n".join(parts)


def _cleaning_section(cleaning: Mapping[str, Any]) -> str:
    steps = cleaning.get("steps")
    if isinstance(steps, list) and steps and all(isinstance(step, Mapping) for step in steps):
        columns = [key for key in steps[0] if key != "examples" and not isinstance(steps[0][key], dict | list)]
        return _table(columns, [[step.get(column, "") for column in columns] for step in steps])
    rows = [[key, value] for key, value in cleaning.items() if isinstance(value, str | int | float | bool)]
    return _table(["item", "value"], rows) if rows else "See `cleaning_report.md` in this repository."


def _benchmark_section(benchmark: Any) -> str:
    rows = benchmark.get("rows") if isinstance(benchmark, Mapping) else benchmark
    if not isinstance(rows, list) or not rows or not all(isinstance(row, Mapping) for row in rows):
        return "See `benchmark.json` in this repository."
    columns = list(rows[0])
    note = benchmark.get("hardware") if isinstance(benchmark, Mapping) else None
    table = _table(columns, [[row.get(column, "") for column in columns] for row in rows])
    return f"Measured on {note}.\n\n{table}" if note else table


def _usage_section(model_id: str) -> str:
    return (
        "With plain `transformers`: the repository ships its pipeline (`hf_pipeline.py` with the project's "
        "normalizer, `text.py`), so raw tweets are normalized and truncated exactly as in training and in the "
        "app. It needs `pip install transformers torch ftfy emoji`; `trust_remote_code=True` runs that code "
        "(read it first):\n\n"
        "```python\n"
        "from transformers import pipeline\n\n"
        f'classifier = pipeline("text-classification", model="{model_id}", trust_remote_code=True, top_k=None)\n'
        'print(classifier("@united thanks, the crew was great!"))\n'
        "```\n\n"
        "With the project's `Predictor` (same normalizer, and the fastest backend that passed the parity gate):\n\n"
        "```python\n"
        "from tweet_classifier.inference.predictor import Predictor\n\n"
        f'predictor = Predictor.load("{model_id}")\n'
        'print(predictor.predict("@united thanks, the crew was great!"))\n'
        "```"
    )
