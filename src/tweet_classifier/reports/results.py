"""Results across runs: the fine-tuning summary table and the README's generated blocks.

Every number in the README comes from a command: `make results` runs the commands, saves each one's
output under ``docs/results/`` (markdown, or plain text shown as a code block), and ``splice_readme``
copies those files verbatim between
``<!-- BEGIN docs/results/NAME.md -->`` / ``<!-- END docs/results/NAME.md -->`` markers.
"""

from __future__ import annotations

import re
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tweet_classifier.artifact import METRICS_NAME, RUN_CONFIG_NAME, ModelManifest, read_json
from tweet_classifier.errors import TweetClassifierError

# Published test macro-F1 of the TweetEval leaderboard (Barbieri et al., Findings of EMNLP 2020, and
# the cardiffnlp/tweeteval repository), as quoted in ../shared/datasets/README.md.
LEADERBOARD = {
    "tweet_eval_hate": {"BERTweet": 56.4, "TimeLMs-2021": 55.1, "RoBERTa-base": 46.6, "SVM": 36.7},
    "tweet_eval_offensive": {"TimeLMs-2021": 82.2, "BERTweet": 79.5, "RoBERTa-base": 79.5, "SVM": 52.3},
}

BLOCK = re.compile(r"(<!-- BEGIN (?P<name>[\w./-]+) -->\n)(?P<body>.*?)(<!-- END (?P=name) -->)", re.DOTALL)


class ResultsError(TweetClassifierError):
    """A model folder or results file needed for a table is missing."""


def _run_name(model_dir: Path) -> str:
    run_config = model_dir / RUN_CONFIG_NAME
    if run_config.is_file():
        values = yaml.safe_load(run_config.read_text(encoding="utf-8")) or {}
        return str(values.get("name", model_dir.name))
    return model_dir.name


def load_run(model_dir: str | Path) -> dict[str, Any]:
    """The numbers of one trained model folder that the summary needs."""
    folder = Path(model_dir)
    metrics_path = folder / METRICS_NAME
    if not metrics_path.is_file():
        raise ResultsError(f"{metrics_path} is missing: train the model first (`tweet-classifier train`)")
    metrics = read_json(metrics_path)
    manifest = ModelManifest.load(folder)
    return {
        "name": _run_name(folder),
        "folder": str(folder),
        "labels": manifest.labels,
        "test_macro_f1": metrics["test"]["macro_f1"],
        "validation_macro_f1": metrics["validation"]["macro_f1"],
        "per_class_f1": {label: values["f1"] for label, values in metrics["test"]["per_class"].items()},
        "baseline_test_macro_f1": metrics.get("baseline", {}).get("test", {}).get("macro_f1"),
        "train_seconds": manifest.training.get("seconds"),
        "samples_per_second": manifest.training.get("samples_per_second"),
        "device": manifest.training.get("device", ""),
    }


def _mean_spread(values: Sequence[float]) -> str:
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def summarize_runs(model_dirs: Iterable[str | Path]) -> str:
    """A markdown table: baseline vs fine-tuned test macro-F1 (mean ± sample std over seeds of one
    config), per-class F1, training time, and the published leaderboard where there is one."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for model_dir in model_dirs:
        run = load_run(model_dir)
        grouped[run["name"]].append(run)
    if not grouped:
        raise ResultsError("no model folders given")
    lines = [
        "| config | runs | baseline test macro-F1 | fine-tuned test macro-F1 | gain | per-class F1 (fine-tuned) "
        "| train time | published (test macro-F1) |",
        "|---|---:|---:|---:|---:|---|---:|---|",
    ]
    for name, runs in grouped.items():
        tuned = [run["test_macro_f1"] for run in runs]
        baselines = [run["baseline_test_macro_f1"] for run in runs if run["baseline_test_macro_f1"] is not None]
        baseline = statistics.mean(baselines) if baselines else None
        gain = f"{100 * (statistics.mean(tuned) - baseline):+.1f}" if baseline is not None else "n/a"
        per_class = ", ".join(
            f"{label} {_mean_spread([run['per_class_f1'][label] for run in runs])}" for label in runs[0]["labels"]
        )
        seconds = [run["train_seconds"] for run in runs if run["train_seconds"]]
        time_text = f"{statistics.mean(seconds) / 60:.1f} min" if seconds else "n/a"
        published = ", ".join(f"{model} {score}" for model, score in LEADERBOARD.get(name, {}).items()) or "none"
        lines.append(
            f"| {name} | {len(runs)} | {_mean_spread(baselines) if baselines else 'n/a'} | {_mean_spread(tuned)} "
            f"| {gain} | {per_class} | {time_text} | {published} |"
        )
    devices = sorted({run["device"] for runs in grouped.values() for run in runs if run["device"]})
    if devices:
        lines += ["", f"Hardware: {'; '.join(devices)}. Scores in points of macro-F1 (×100)."]
    return "\n".join(lines) + "\n"


def splice_readme(readme_text: str, results_root: str | Path) -> tuple[str, list[str]]:
    """Replace every generated block with the current content of the file it names.

    Returns the new text and the names of the blocks whose file is missing (left unchanged).
    """
    root = Path(results_root)
    missing: list[str] = []

    def replace(match: re.Match[str]) -> str:
        source = root / match.group("name")
        if not source.is_file():
            missing.append(match.group("name"))
            return match.group(0)
        body = source.read_text(encoding="utf-8")
        if not body.endswith("\n"):
            body += "\n"
        if source.suffix != ".md":
            # Plain-text tables keep their alignment in a code block; configs are shown as YAML.
            language = "yaml" if source.suffix in (".yaml", ".yml") else "text"
            body = f"```{language}\n{body}```\n"
        return f"{match.group(1)}{body}{match.group(4)}"

    return BLOCK.sub(replace, readme_text), missing


# What each fine-tuning variant changes (scripts/train_variants.sh), for the table.
VARIANT_CHANGES = {
    "default": "configs/airline.yaml as is (seed 42)",
    "seed1": "seed 1 (split and initialisation)",
    "seed2": "seed 2 (split and initialisation)",
    "lr5e-5": "learning rate 5e-5 (default 1e-4)",
    "lr2e-4": "learning rate 2e-4",
    "lr3e-4": "learning rate 3e-4",
    "epochs2": "2 epochs (default 3)",
    "epochs5": "5 epochs",
    "no_class_weights": "no class-weighted loss",
    "no_sample_weights": "no label-confidence sample weights",
    "label_smoothing": "label smoothing 0.1",
    "freeze_embeddings": "embeddings frozen",
    "max_length_48": "max length 48 tokens (default 96)",
    "low_conf_drop": "drop labels with confidence < 0.7 (changes the test set too: not comparable)",
}


def collect_variants(root: str | Path) -> dict[str, dict[str, Any]]:
    """Read every trained variant folder under ``root`` into the rows the variants table needs."""
    rows: dict[str, dict[str, Any]] = {}
    for folder in sorted(Path(root).iterdir()):
        if (folder / METRICS_NAME).is_file():
            run = load_run(folder)
            rows[folder.name] = {
                "test_macro_f1": run["test_macro_f1"],
                "validation_macro_f1": run["validation_macro_f1"],
                "per_class_f1": run["per_class_f1"],
                "baseline_test_macro_f1": run["baseline_test_macro_f1"],
                "training": {"seconds": run["train_seconds"], "device": run["device"]},
            }
    if not rows:
        raise ResultsError(f"no trained variants under {root}: run scripts/train_variants.sh")
    return rows


def variants_table(rows: dict[str, dict[str, Any]], reference: str = "default") -> str:
    """Markdown: each variant's test/validation macro-F1 and its difference from the reference run."""
    if reference not in rows:
        raise ResultsError(f"the variants have no {reference!r} run to compare with")
    base = rows[reference]["test_macro_f1"]
    seeds = [row["test_macro_f1"] for name, row in rows.items() if name == reference or name.startswith("seed")]
    lines = [
        "| variant | change | test macro-F1 | Δ test | validation macro-F1 | train time |",
        "|---|---|---:|---:|---:|---:|",
    ]
    order = list(VARIANT_CHANGES)
    for name, row in sorted(rows.items(), key=lambda item: order.index(item[0]) if item[0] in order else len(order)):
        delta = "—" if name == reference else f"{100 * (row['test_macro_f1'] - base):+.1f}"
        lines.append(
            f"| {name} | {VARIANT_CHANGES.get(name, name)} | {100 * row['test_macro_f1']:.1f} | {delta} "
            f"| {100 * row['validation_macro_f1']:.1f} | {row['training'].get('seconds') or 0:.0f} s |"
        )
    devices = sorted({str(row["training"].get("device")) for row in rows.values() if row["training"].get("device")})
    if len(seeds) > 1:
        lines += [
            "",
            f"Seed-to-seed spread of the default (sample std over {len(seeds)} seeds, each with its own split): "
            f"{100 * statistics.stdev(seeds):.1f} points of test macro-F1; smaller differences are noise.",
        ]
    if devices:
        lines.append(f"Hardware: {'; '.join(devices)}.")
    return "\n".join(lines) + "\n"
