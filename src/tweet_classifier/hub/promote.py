"""Champion / challenger: retrain on the current data and promote only a model that is really better.

``tweet-classifier retrain`` trains a challenger with the current data and config, scores the champion
(a model folder or a Hub id) and the challenger on the SAME frozen test set (the prepared test split of
the current config), times both with the ``Predictor`` (one text per call, interleaved on the same
texts so machine noise hits both alike) and promotes the challenger only when

* its test macro-F1 beats the champion's by at least ``promotion.min_improvement``,
* no class's F1 drops by more than ``promotion.max_class_drop``, and
* its p95 latency for one text stays within ``promotion.p95_budget_ms``.

Every check, both models' numbers and the per-class deltas go into ``decision.json`` and
``decision.md`` (and W&B, through ``tracking``). Only a promoted challenger is pushed (``--push``),
unless ``--force`` pushes a refused one, which the report records as forced.

Exit codes: 0 promoted (and pushed when --push was given), 3 refused (the champion stays), 1 failed
(training, evaluation or the push broke; decision.json says where), 2 bad usage or config (nothing ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweet_classifier import arguments
from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.config import PromotionConfig, RunConfig, load_config
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

EXIT_PROMOTED = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3

REPORT_JSON = "decision.json"
REPORT_MARKDOWN = "decision.md"
SNAPSHOT_SHA = re.compile(r"^[0-9a-f]{40}$")


class PromotionError(TweetClassifierError):
    """Champion and challenger cannot be compared (different labels, no test texts)."""


@dataclass(frozen=True)
class LatencyStats:
    """Wall-clock milliseconds of ``Predictor.predict`` on one text (normalization to probabilities)."""

    n: int
    p50_ms: float
    p95_ms: float
    mean_ms: float
    backend: str

    @classmethod
    def from_timings(cls, timings_ms: Sequence[float], backend: str) -> LatencyStats:
        ordered = sorted(timings_ms)
        return cls(
            n=len(ordered),
            p50_ms=round(_percentile(ordered, 50), 3),
            p95_ms=round(_percentile(ordered, 95), 3),
            mean_ms=round(sum(ordered) / len(ordered), 3),
            backend=backend,
        )


def _percentile(ordered: Sequence[float], percent: float) -> float:
    """Linear-interpolation percentile (numpy's default) of already sorted values."""
    position = (len(ordered) - 1) * percent / 100
    lower, upper = math.floor(position), math.ceil(position)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class Decision:
    promote: bool
    checks: list[Check]
    macro_f1_delta: float
    per_class_delta: dict[str, float]

    @property
    def reasons(self) -> list[str]:
        return [f"{'PASS' if check.passed else 'FAIL'} {check.name}: {check.detail}" for check in self.checks]


@dataclass
class RetrainReport:
    """Everything ``decision.json`` holds; ``verdict`` is promoted / refused / forced / failed."""

    verdict: str
    exit_code: int
    config_name: str
    thresholds: dict[str, Any]
    champion: dict[str, Any] = field(default_factory=dict)
    challenger: dict[str, Any] = field(default_factory=dict)
    test_set: dict[str, Any] = field(default_factory=dict)
    promote: bool | None = None
    forced: bool = False
    reasons: list[str] = field(default_factory=list)
    checks: list[dict[str, Any]] = field(default_factory=list)
    deltas: dict[str, Any] = field(default_factory=dict)
    push: dict[str, Any] | None = None
    # retrain --corrections: what was used (corrections.CorrectionsUsed) and both models' F1 on them.
    corrections: dict[str, Any] | None = None
    wandb_run_url: str | None = None
    error: str | None = None
    created_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- the gate ------------------------------------------------------------------------------------------------


def decide(
    champion_metrics: Mapping[str, Any],
    challenger_metrics: Mapping[str, Any],
    challenger_latency: LatencyStats,
    promotion: PromotionConfig,
) -> Decision:
    """Apply the three promotion rules; every rule is reported, passed or not."""
    champion_classes = champion_metrics["per_class"]
    challenger_classes = challenger_metrics["per_class"]
    if list(champion_classes) != list(challenger_classes):
        raise PromotionError(
            f"champion labels {list(champion_classes)} differ from challenger labels {list(challenger_classes)}: "
            "they cannot be compared on one test set; pass a champion trained for this config's labels"
        )
    macro_delta = challenger_metrics["macro_f1"] - champion_metrics["macro_f1"]
    per_class_delta = {
        label: round(challenger_classes[label]["f1"] - champion_classes[label]["f1"], 6) for label in champion_classes
    }
    checks = [
        Check(
            "macro-F1 improvement",
            macro_delta >= promotion.min_improvement - 1e-12,
            f"{challenger_metrics['macro_f1']:.4f} vs {champion_metrics['macro_f1']:.4f} "
            f"(delta {macro_delta:+.4f}, needs >= {promotion.min_improvement:+.4f})",
        )
    ]
    for label, delta in per_class_delta.items():
        checks.append(
            Check(
                f"F1 of class {label}",
                -delta <= promotion.max_class_drop + 1e-12,
                f"{challenger_classes[label]['f1']:.4f} vs {champion_classes[label]['f1']:.4f} "
                f"(delta {delta:+.4f}, may drop at most {promotion.max_class_drop:.4f})",
            )
        )
    checks.append(
        Check(
            "p95 latency",
            challenger_latency.p95_ms <= promotion.p95_budget_ms,
            f"{challenger_latency.p95_ms:.2f} ms for one text on {challenger_latency.backend} "
            f"(budget {promotion.p95_budget_ms:.2f} ms, n={challenger_latency.n})",
        )
    )
    return Decision(all(check.passed for check in checks), checks, round(macro_delta, 6), per_class_delta)


# -- measuring -----------------------------------------------------------------------------------------------


def measure_latency(
    models: Mapping[str, str | Path],
    texts: Sequence[str],
    warmup: int,
    backend: str = "auto",
    num_threads: int | None = None,
) -> dict[str, LatencyStats]:
    """p50/p95/mean of ``Predictor.predict`` per model, interleaved text by text on the same texts."""
    from tweet_classifier.inference.predictor import InvalidInputError, Predictor

    predictors = {name: Predictor.load(path, backend=backend, num_threads=num_threads) for name, path in models.items()}
    usable = []
    for text in texts:
        try:
            for predictor in predictors.values():
                predictor.validate(text)
        except InvalidInputError:
            continue
        usable.append(text)
    if not usable:
        raise PromotionError("no test text is valid input for both models: check data.max_rows and inference caps")
    for predictor in predictors.values():
        for text in usable[:warmup]:
            predictor.predict(text)
    timings: dict[str, list[float]] = {name: [] for name in predictors}
    for text in usable:
        for name, predictor in predictors.items():
            started = time.perf_counter()
            predictor.predict(text)
            timings[name].append((time.perf_counter() - started) * 1000)
    return {
        name: LatencyStats.from_timings(timings[name], predictor.backend_single)
        for name, predictor in predictors.items()
    }


def fingerprint_test_set(frame: Any, labels: Sequence[str]) -> dict[str, Any]:
    """Size and sha256 of the frozen test split (text + label per row), so reports prove they used one set."""
    digest = hashlib.sha256()
    for text, label in zip(frame["text"], frame["label"], strict=True):
        digest.update(f"{text}\t{label}\n".encode())
    return {"n": len(frame), "sha256": digest.hexdigest(), "labels": list(labels)}


def _metrics_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("macro_f1", "accuracy", "n", "ece")
    summary = {key: report[key] for key in keys if key in report}
    summary["per_class"] = {label: dict(values) for label, values in report["per_class"].items()}
    return summary


def _snapshot_revision(folder: Path) -> str | None:
    """The commit SHA of a Hub snapshot folder (``.../snapshots/<sha>``), None for a plain folder."""
    resolved = folder.resolve()
    if resolved.parent.name == "snapshots" and SNAPSHOT_SHA.match(resolved.name):
        return resolved.name
    return None


# -- reports -------------------------------------------------------------------------------------------------


def render_markdown(report: RetrainReport) -> str:
    lines = [
        f"# Retraining decision: {report.verdict.upper()}",
        "",
        f"- config: `{report.config_name}`; created {report.created_at}",
        f"- champion: `{report.champion.get('model')}`"
        + (f" @ `{report.champion['revision']}`" if report.champion.get("revision") else ""),
        f"- challenger: `{report.challenger.get('model')}`",
    ]
    if report.test_set:
        lines.append(f"- frozen test set: n={report.test_set['n']}, sha256 `{report.test_set['sha256'][:16]}…`")
    if report.forced:
        lines.append("- **forced**: pushed with --force although the gate refused it")
    if report.push:
        lines.append(f"- pushed: {report.push.get('commit_url') or report.push}")
    if report.wandb_run_url:
        lines.append(f"- W&B: {report.wandb_run_url}")
    if report.error:
        lines.append(f"- error: {report.error}")
    if report.reasons:
        lines += ["", "## Checks", ""] + [f"- {reason}" for reason in report.reasons]
    champion_metrics = report.champion.get("metrics")
    challenger_metrics = report.challenger.get("metrics")
    if champion_metrics and challenger_metrics:
        lines += [
            "",
            "## Test metrics",
            "",
            "| | champion | challenger | delta |",
            "|---|---|---|---|",
            f"| macro-F1 | {champion_metrics['macro_f1']:.4f} | {challenger_metrics['macro_f1']:.4f} | "
            f"{report.deltas['macro_f1']:+.4f} |",
        ]
        for label, delta in report.deltas["per_class"].items():
            lines.append(
                f"| F1 {label} | {champion_metrics['per_class'][label]['f1']:.4f} | "
                f"{challenger_metrics['per_class'][label]['f1']:.4f} | {delta:+.4f} |"
            )
    if report.corrections:
        used = report.corrections
        lines += [
            "",
            "## Users' corrections",
            "",
            f"{used['added']} of {used['records']} corrections from `{used['source']}` joined the train split "
            f"(loss weight {used['weight']:g}; {used['relabelled_train_rows']} train rows took the corrected "
            f"label). Left out: {used['in_test']} in the frozen test set, {used['in_validation']} in validation, "
            f"{used['superseded']} superseded by a newer correction, {used['unknown_label']} with an unknown label, "
            f"{used['empty']} empty.",
        ]
        if "champion_macro_f1" in used:
            lines += [
                "",
                "| macro-F1 on the corrections | champion | challenger |",
                "|---|---|---|",
                f"| n={used['added']} (in the challenger's training data) | {used['champion_macro_f1']:.4f} | "
                f"{used['challenger_macro_f1']:.4f} |",
            ]
    champion_latency = report.champion.get("latency")
    challenger_latency = report.challenger.get("latency")
    if champion_latency and challenger_latency:
        lines += [
            "",
            "## Latency, one text per call (ms)",
            "",
            "| | p50 | p95 | mean | backend |",
            "|---|---|---|---|---|",
        ]
        for name, stats in (("champion", champion_latency), ("challenger", challenger_latency)):
            lines.append(
                f"| {name} | {stats['p50_ms']:.2f} | {stats['p95_ms']:.2f} | {stats['mean_ms']:.2f} | "
                f"{stats['backend']} |"
            )
    return "\n".join(lines) + "\n"


def write_report(report: RetrainReport, out_dir: Path) -> None:
    write_json_atomic(out_dir / REPORT_JSON, report.to_dict())
    (out_dir / REPORT_MARKDOWN).write_text(render_markdown(report), encoding="utf-8")


# W&B aliases the challenger's model Artifact gets, by verdict: `champion` / `production` name the version
# that now serves (what a deployment pulls: `<entity>/<project>/<name>-model:production`); a refused one is
# marked as such. W&B itself moves `latest` to the newest logged version, whatever the verdict.
ARTIFACT_ALIASES: dict[str, tuple[str, ...]] = {
    "promoted": ("champion", "production", "latest"),
    "forced": ("champion", "production", "forced", "latest"),
    "refused": ("challenger", "rejected"),
}


def log_to_tracking(report: RetrainReport, config: RunConfig, out_dir: Path) -> str | None:
    """Summary numbers and the per-class table into W&B, and the challenger's model folder as a version of
    the config's model Artifact aliased by the verdict (``ARTIFACT_ALIASES``); never fails the decision.

    The folder is the one the challenger's training run logged (plus the export, when the gate exported
    it): identical files are the same Artifact version, so the aliases land on that version."""
    from tweet_classifier.training import tracking

    run = tracking.start_run(config, run_name=f"retrain-{config.name}", directory=out_dir)
    try:
        summary: dict[str, Any] = {"retrain/verdict": report.verdict, "retrain/promote": bool(report.promote)}
        for role in ("champion", "challenger"):
            values = getattr(report, role)
            if values.get("metrics"):
                summary[f"{role}/test/macro_f1"] = values["metrics"]["macro_f1"]
            if values.get("latency"):
                summary[f"{role}/latency/p95_ms"] = values["latency"]["p95_ms"]
        if report.deltas:
            summary["retrain/delta_macro_f1"] = report.deltas["macro_f1"]
            run.log_table(
                "retrain/per_class",
                ["label", "champion_f1", "challenger_f1", "delta"],
                [
                    [
                        label,
                        report.champion["metrics"]["per_class"][label]["f1"],
                        report.challenger["metrics"]["per_class"][label]["f1"],
                        delta,
                    ]
                    for label, delta in report.deltas["per_class"].items()
                ],
            )
        run.log_summary(summary)
        challenger = report.challenger.get("model")
        if report.verdict in ARTIFACT_ALIASES and challenger and Path(challenger).is_dir():
            run.log_artifact(
                tracking.model_artifact_name(config),
                "model",
                Path(challenger),
                aliases=ARTIFACT_ALIASES[report.verdict],
                metadata={
                    "verdict": report.verdict,
                    "test_macro_f1": report.challenger.get("metrics", {}).get("macro_f1"),
                    "champion": report.champion.get("model"),
                    "champion_revision": report.champion.get("revision"),
                },
            )
        return run.url
    finally:
        run.finish()


# -- the run ---------------------------------------------------------------------------------------------------


Trainer = Callable[..., Any]


def _default_trainer(config: RunConfig, output_dir: Path, prepared: Any) -> Path:
    from tweet_classifier.training.train import train_model

    return Path(train_model(config, output_dir, prepared=prepared).model_dir)


def retrain(
    config: RunConfig,
    champion: str,
    out_dir: str | Path,
    *,
    champion_revision: str | None = None,
    push_repo: str | None = None,
    force: bool = False,
    endpoint: str | None = None,
    trainer: Trainer = _default_trainer,
    corrections: str | None = None,
) -> RetrainReport:
    """Train, compare, decide, report, and push when promoted (or forced). Never raises after work starts."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report = RetrainReport(
        verdict="failed",
        exit_code=EXIT_FAILED,
        config_name=config.name,
        thresholds=config.promotion.model_dump(),
        champion={"model": champion, "revision": champion_revision},
    )
    stage = "prepare data"
    try:
        from tweet_classifier.data.prepare import prepare_data
        from tweet_classifier.training.evaluate import evaluate_model, resolve_model_folder

        prepared = prepare_data(config)
        report.test_set = fingerprint_test_set(prepared.test, prepared.labels)
        training_data, scored_corrections = prepared, None
        if corrections:
            stage = "add the corrections"
            from tweet_classifier.training.corrections import add_corrections, read_correction_records

            records = read_correction_records(corrections)
            training_data, scored_corrections, used = add_corrections(prepared, records, config, corrections)
            report.corrections = used.to_dict()
        stage = "load the champion"
        champion_dir = resolve_model_folder(champion, champion_revision)
        report.champion["revision"] = champion_revision or _snapshot_revision(champion_dir)
        stage = "train the challenger"
        challenger_dir = Path(trainer(config, out / "challenger", training_data))
        report.challenger["model"] = str(challenger_dir)
        if config.promotion.export_challenger:
            stage = "export the challenger"
            from tweet_classifier.inference.export import export_model

            export_model(challenger_dir, config)
        stage = "evaluate"
        champion_metrics = evaluate_model(champion_dir, prepared, "test", config)
        challenger_metrics = evaluate_model(challenger_dir, prepared, "test", config)
        report.champion["metrics"] = _metrics_summary(champion_metrics)
        report.challenger["metrics"] = _metrics_summary(challenger_metrics)
        if scored_corrections is not None and report.corrections is not None:
            from tweet_classifier.training.evaluate import evaluate_loaded, load_model

            for name, folder in (("champion", champion_dir), ("challenger", challenger_dir)):
                scores = evaluate_loaded(load_model(folder), scored_corrections, config)
                report.corrections[f"{name}_macro_f1"] = float(scores["macro_f1"])
        stage = "measure latency"
        texts = list(prepared.test["raw_text"])[: config.promotion.latency_texts]
        latency = measure_latency(
            {"champion": champion_dir, "challenger": challenger_dir},
            texts,
            config.promotion.latency_warmup,
            config.inference.backend,
            # As configured for serving unless the gate pins its own count.
            config.promotion.latency_threads or config.inference.num_threads or None,
        )
        report.champion["latency"] = asdict(latency["champion"])
        report.challenger["latency"] = asdict(latency["challenger"])
        stage = "decide"
        decision = decide(champion_metrics, challenger_metrics, latency["challenger"], config.promotion)
        report.promote = decision.promote
        report.checks = [asdict(check) for check in decision.checks]
        report.reasons = decision.reasons
        report.deltas = {"macro_f1": decision.macro_f1_delta, "per_class": decision.per_class_delta}
        report.forced = force and not decision.promote
        if decision.promote or force:
            report.verdict, report.exit_code = ("promoted", EXIT_PROMOTED) if decision.promote else ("forced", 0)
        else:
            report.verdict, report.exit_code = "refused", EXIT_REFUSED
        if push_repo and (decision.promote or force):
            stage = "push"
            report.push = _push(challenger_dir, push_repo, config, endpoint)
    except Exception as error:  # a scheduled job must always leave a report behind
        report.verdict, report.exit_code = "failed", EXIT_FAILED
        report.error = f"{stage}: {type(error).__name__}: {error}".splitlines()[0]
        logger.error("retrain failed while trying to %s: %s", stage, report.error)
        logger.debug("retrain failure", exc_info=True)
    report.wandb_run_url = log_to_tracking(report, config, out)
    write_report(report, out)
    logger.info("retrain verdict %s (exit %d); report in %s", report.verdict, report.exit_code, out / REPORT_MARKDOWN)
    for reason in report.reasons:
        logger.info("  %s", reason)
    return report


def _push(challenger_dir: Path, repo_id: str, config: RunConfig, endpoint: str | None) -> dict[str, Any]:
    from tweet_classifier.hub import publish as hub

    try:
        result = hub.push_model_folder(
            challenger_dir,
            repo_id,
            revision=config.hub.revision,
            private=config.hub.private,
            config=config.hub,
            endpoint=endpoint,
        )
    except hub.HubUnavailableError as error:
        raise RuntimeError(str(error)) from None
    return {
        "repo_id": result.repo_id,
        "revision": result.revision,
        "commit_sha": result.commit_sha,
        "commit_url": result.commit_url,
    }


# -- command line ----------------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser, command: str) -> None:
    arguments.add_config_arguments(parser)
    parser.add_argument("--champion", required=True, help="the current model: a model folder or a Hub id ORG/NAME")
    parser.add_argument("--champion-revision", default=None, help="Hub revision of --champion (default: main)")
    parser.add_argument("--push", default=None, metavar="REPO", help="push a promoted challenger to this Hub repo")
    parser.add_argument("--force", action="store_true", help="push the challenger even if the gate refuses it")
    parser.add_argument("--out", default=None, help="where the challenger and decision.md/json go")
    parser.add_argument(
        "--corrections",
        default=None,
        metavar="FILE_OR_DATASET",
        help="users' corrections to add to the train split: the app's FEEDBACK_FILE or its FEEDBACK_REPO dataset",
    )
    parser.epilog = "exit codes: 0 promoted, 3 refused (champion stays), 1 failed, 2 bad usage or config"


def run(args: argparse.Namespace, command: str) -> int:
    config = load_config(args.config, args.overrides)
    if args.force and not args.push:
        raise PromotionError("--force only changes what is pushed: add --push ORG/NAME or drop --force")
    if args.push:
        from tweet_classifier.hub import publish as hub

        # Fail now, not after an hour of training: a bad repo id, no token or offline mode.
        hub.check_repo_id(args.push, "--push")
        hub.require_hub_access()
    out = Path(args.out) if args.out else Path("outputs") / "retrain" / config.name
    report = retrain(
        config,
        args.champion,
        out,
        champion_revision=args.champion_revision,
        push_repo=args.push,
        force=args.force,
        endpoint=os.environ.get("HF_ENDPOINT"),
        corrections=args.corrections,
    )
    # The command's product for CI: the verdict and where the report is.
    summary = {"verdict": report.verdict, "exit_code": report.exit_code, "report": str(out / REPORT_JSON)}
    if report.push:
        summary["commit_sha"] = report.push["commit_sha"]
    sys.stdout.write(json.dumps(summary) + "\n")
    return report.exit_code
