"""Champion / challenger: retrain on the current data and promote only a model that is really better.

``tweet-classifier retrain`` trains a challenger with the current data and config, scores the champion
(a model folder or a Hub id) and the challenger on the SAME frozen test set (the prepared test split of
the current config), times both with the ``Predictor`` (one text per call, interleaved on the same
texts so machine noise hits both alike) and promotes the challenger only when

* its test macro-F1 beats the champion's by at least ``promotion.min_improvement``,
* no class's F1 drops by more than ``promotion.max_class_drop``, and
* its p95 latency for one text stays within ``promotion.p95_budget_ms``

(``promotion_gate.py``). Every check, both models' numbers and the per-class deltas go into
``decision.json`` and ``decision.md`` (and W&B, through ``tracking``: ``decision_report.py``). Only a
promoted challenger is pushed (``--push``), unless ``--force`` pushes a refused one, which the report
records as forced.

Exit codes: 0 promoted (and pushed when --push was given), 3 refused (the champion stays), 1 failed
(training, evaluation or the push broke; decision.json says where), 2 bad usage or config (nothing ran).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tweet_classifier import arguments
from tweet_classifier.artifact import resolve_model
from tweet_classifier.config import RunConfig, load_config
from tweet_classifier.hub import publish as hub
from tweet_classifier.hub.decision_report import (
    REPORT_JSON,
    REPORT_MARKDOWN,
    RetrainReport,
    log_to_tracking,
    write_report,
)
from tweet_classifier.hub.promotion_gate import PromotionError, decide, measure_latency
from tweet_classifier.hub_client import HubUnavailableError, check_repo_id

logger = logging.getLogger(__name__)

EXIT_PROMOTED = 0
EXIT_FAILED = 1
EXIT_REFUSED = 3

SNAPSHOT_SHA = re.compile(r"^[0-9a-f]{40}$")


# -- what the report records ---------------------------------------------------------------------------------


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


# -- the run ---------------------------------------------------------------------------------------------------


Trainer = Callable[..., Any]


def _default_trainer(config: RunConfig, output_dir: Path, prepared: Any) -> Path:
    # Deferred: training imports torch and transformers (seconds); `retrain --help` and bad flags need neither.
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
        # Deferred, as every stage this run drives: data (pandas), evaluation and export (torch, transformers,
        # onnx) cost seconds to import, which `retrain --help` and a bad --push must not pay.
        from tweet_classifier.data.prepare import prepare_data
        from tweet_classifier.inference.export import export_model
        from tweet_classifier.training.corrections import add_corrections, read_correction_records
        from tweet_classifier.training.evaluate import evaluate_loaded, evaluate_model, load_model

        prepared = prepare_data(config)
        report.test_set = fingerprint_test_set(prepared.test, prepared.labels)
        training_data, scored_corrections = prepared, None
        if corrections:
            stage = "add the corrections"
            records = read_correction_records(corrections)
            training_data, scored_corrections, used = add_corrections(prepared, records, config, corrections)
            report.corrections = used.to_dict()
        stage = "load the champion"
        champion_dir, _ = resolve_model(champion, champion_revision)
        report.champion["revision"] = champion_revision or _snapshot_revision(champion_dir)
        stage = "train the challenger"
        challenger_dir = Path(trainer(config, out / "challenger", training_data))
        report.challenger["model"] = str(challenger_dir)
        if config.promotion.export_challenger:
            stage = "export the challenger"
            export_model(challenger_dir, config)
        stage = "evaluate"
        champion_metrics = evaluate_model(champion_dir, prepared, "test", config)
        challenger_metrics = evaluate_model(challenger_dir, prepared, "test", config)
        report.champion["metrics"] = _metrics_summary(champion_metrics)
        report.challenger["metrics"] = _metrics_summary(challenger_metrics)
        if scored_corrections is not None and report.corrections is not None:
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
    try:
        result = hub.push_model_folder(
            challenger_dir,
            repo_id,
            revision=config.hub.revision,
            private=config.hub.private,
            config=config.hub,
            endpoint=endpoint,
        )
    except HubUnavailableError as error:
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
        # Fail now, not after an hour of training: a bad repo id, no token or offline mode.
        check_repo_id(args.push, "--push")
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
