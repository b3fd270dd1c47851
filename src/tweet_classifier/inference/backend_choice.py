"""``backend="auto"``: which backend serves single texts and which serves batches, read from the parity
report ``export`` writes (``onnx/parity.json``), and the warning when an explicit backend lacks one."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import PARITY_NAME, read_json
from tweet_classifier.inference.backends import (
    BACKENDS,
    COMPILED_BACKEND,
    ONNX_DIR,
    REFERENCE_BACKEND,
    backend_available,
    compiled_package_problem,
    cpu_description,
)

logger = logging.getLogger(__name__)

PARITY_FORMAT_VERSION = 1


def read_parity(model_dir: Path) -> dict[str, Any] | None:
    path = model_dir / ONNX_DIR / PARITY_NAME
    if not path.is_file():
        return None
    try:
        report = read_json(path)
    except (UnicodeDecodeError, ValueError) as error:
        logger.warning("ignoring unreadable %s (%s); re-run `tweet-classifier export`", path, error)
        return None
    if not isinstance(report, dict) or report.get("format_version") != PARITY_FORMAT_VERSION:
        logger.warning("ignoring %s: unknown format; re-run `tweet-classifier export`", path)
        return None
    return report


def choose_backends(model_dir: Path, weights_sha256: str) -> tuple[str, str, str]:
    """``(single, batch, reason)`` for ``backend="auto"``, from the parity report's measured numbers."""
    report = read_parity(model_dir)
    if report is None:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, "no onnx/parity.json (run `tweet-classifier export`)"
    if report.get("weights_sha256") != weights_sha256:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, "onnx/parity.json was written for other weights (re-export)"
    rows: dict[str, dict[str, Any]] = report.get("backends", {})
    candidates = {
        name: row
        for name, row in rows.items()
        if name in BACKENDS and row.get("passed") and backend_available(model_dir, name)
    }
    failed = sorted(set(rows) - set(candidates))
    if not candidates:
        return REFERENCE_BACKEND, REFERENCE_BACKEND, f"no backend passed parity (failed: {failed})"
    single = min(candidates, key=lambda name: candidates[name]["p50_ms_batch1"])
    batch = max(candidates, key=lambda name: candidates[name]["texts_per_s_batch32"])
    reason = (
        f"fastest passing backends in {PARITY_NAME}: {single} at {candidates[single]['p50_ms_batch1']:.2f} ms "
        f"p50 for one text, {batch} at {candidates[batch]['texts_per_s_batch32']:.0f} texts/s in batches of 32"
        + (f"; excluded by parity or missing files: {failed}" if failed else "")
    )
    if rows.get(COMPILED_BACKEND, {}).get("passed") and COMPILED_BACKEND not in candidates:
        reason += f"; {COMPILED_BACKEND} is unavailable here: {compiled_package_problem(model_dir) or 'no package'}"
    current_cpu = cpu_description()
    if report.get("cpu") and report["cpu"] != current_cpu:
        reason += f"; note: measured on another CPU ({report['cpu']}), this one is {current_cpu}"
    return single, batch, reason


def warn_if_unverified(folder: Path, backend: str, weights_sha256: str) -> None:
    if backend == REFERENCE_BACKEND:
        return
    report = read_parity(folder)
    row = (report or {}).get("backends", {}).get(backend)
    if report is None or row is None:
        logger.warning("backend %s has no parity report for %s: run `tweet-classifier export`", backend, folder)
    elif report.get("weights_sha256") != weights_sha256:
        logger.warning("onnx/parity.json of %s was written for other weights: re-run `tweet-classifier export`", folder)
    elif not row.get("passed"):
        logger.warning(
            "backend %s failed parity for %s (agreement %.4f, macro-F1 drop %.4f); using it because it was asked for",
            backend,
            folder,
            row.get("agreement", math.nan),
            row.get("f1_drop", math.nan),
        )
