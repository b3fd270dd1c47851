"""What a retrain decided, as ``decision.json`` / ``decision.md`` and in W&B.

``RetrainReport`` is everything ``decision.json`` holds; ``render_markdown`` is the page a person reads;
``log_to_tracking`` puts the summary, the per-class table and the challenger's model Artifact into W&B
and never fails the decision.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import write_json_atomic
from tweet_classifier.config import RunConfig

logger = logging.getLogger(__name__)


REPORT_JSON = "decision.json"


REPORT_MARKDOWN = "decision.md"


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
    # Deferred: tracking imports torch and transformers (seconds); writing decision.md needs neither.
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
