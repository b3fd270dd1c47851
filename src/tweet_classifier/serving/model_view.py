"""The model view: what the model folder says about itself (card metrics, cleaning report, manifest,
headline results), read for the UI's model tab and never computed here."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import (
    CLEANING_REPORT_MARKDOWN_NAME,
    CLEANING_REPORT_NAME,
    METRICS_NAME,
    read_json,
)
from tweet_classifier.serving.impact import read_impact
from tweet_classifier.serving.loading import PredictorLike

logger = logging.getLogger(__name__)


def read_model_view(predictor: PredictorLike, folder: Path | None) -> dict[str, Any]:
    """Model card numbers, cleaning report and manifest from the model ``folder`` (what exists of them)."""
    info: dict[str, Any] = {
        "model_version": predictor.model_version,
        "labels": list(predictor.labels),
        "manifest": _manifest_dict(predictor.manifest),
        "metrics": None,
        "cleaning_report_md": None,
        "cleaning_report": None,
        "impact": [],
    }
    if folder is None:
        return info
    for key, name in (("metrics", METRICS_NAME), ("cleaning_report", CLEANING_REPORT_NAME)):
        try:
            info[key] = read_json(folder / name) if (folder / name).is_file() else None
        except (OSError, ValueError):
            logger.warning("could not read %s", folder / name)
    report_md = folder / CLEANING_REPORT_MARKDOWN_NAME
    if report_md.is_file():
        info["cleaning_report_md"] = report_md.read_text(encoding="utf-8", errors="replace")[:50_000]
    info["impact"] = read_impact(folder, getattr(predictor, "backend_single", None))
    return info


def _manifest_dict(manifest: Any) -> dict[str, Any]:
    to_dict = getattr(manifest, "to_dict", None)
    return dict(to_dict()) if callable(to_dict) else {}
