"""The three headline results of a model folder, read from its own files: quality, speed, data.

``read_impact(folder, served_backend)`` returns one ``Impact`` per result the folder can back up. Each
says which file and keys its numbers come from (the page shows that on hover and in a footnote). A
file that is missing, unreadable or lacks the keys leaves its result out: nothing falls back to a
number typed here.

* quality: ``metrics.json``: ``baseline.test.macro_f1`` (TF-IDF + logistic regression, trained by
  ``train`` on the same prepared splits) -> ``test.macro_f1`` (the fine-tuned model), same test rows;
* speed: ``benchmark.json`` (``tweet-classifier benchmark`` writes it into the model folder): p50 of
  one tweet through the plain ``transformers`` pipeline -> through the backend the server runs (the
  ``auto`` row when that is what ``auto`` picked, else the row of the configured backend);
* data: ``cleaning_report.json``: rows loaded -> rows kept (the sum of ``rows_removed`` over the
  cleaning steps) and the texts the ``repair:*`` steps changed; when the folder also has
  ``ablation.json`` (``scripts/ablation.py --json DIR/ablation.json``) the before -> after is the
  TF-IDF baseline's test macro-F1 with every cleaning step off -> the full pipeline, with the paired
  bootstrap interval of the difference.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tweet_classifier.artifact import ABLATION_NAME, BENCHMARK_NAME, CLEANING_REPORT_NAME, METRICS_NAME

logger = logging.getLogger(__name__)

# Row names in benchmark.json (tweet_classifier.inference.benchmark.PIPELINE / AUTO; not imported, because that
# module pulls in the exporter and this one runs in the server's UI).
PIPELINE_ROW = "pipeline"
AUTO_ROW = "auto"
# Row names in ablation.json (tweet_classifier.training.ablation.FULL_PIPELINE / NO_CLEANING): the server may
# not import training, so the names of the file's rows are read here; tests/serving/test_impact.py pins both.
ABLATION_FULL_ROW = "full pipeline"
ABLATION_BARE_ROW = "no cleaning at all"
REPAIR_PREFIX = "repair:"


@dataclass(frozen=True)
class Impact:
    """One headline result as before -> after, with the texts the page shows and where they come from."""

    key: str  # quality | speed | data
    title: str
    before: float
    after: float
    before_text: str
    after_text: str
    change_text: str  # "+0.041", "4.2x faster"
    caption: str  # one short line under the numbers
    source: str  # the file(s) and keys

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read_json_or_none(path: Path) -> Any:
    """The file's JSON, or ``None`` when it is absent or unreadable (logged: the number is left out)."""
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        logger.warning("impact row: %s is unreadable (%s); its number is left out", path, type(error).__name__)
        return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _number(value: Any) -> float | None:
    """A real number from JSON (bools and strings are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def quality_impact(folder: Path) -> Impact | None:
    metrics = _mapping(_read_json_or_none(folder / METRICS_NAME))
    test = _mapping(metrics.get("test"))
    model_f1 = _number(test.get("macro_f1"))
    baseline_f1 = _number(_mapping(_mapping(metrics.get("baseline")).get("test")).get("macro_f1"))
    if model_f1 is None or baseline_f1 is None:
        return None
    n = test.get("n")
    rows = f"the same {n:,} test tweets" if isinstance(n, int) else "the same test split"
    return Impact(
        key="quality",
        title="Test macro-F1",
        before=baseline_f1,
        after=model_f1,
        before_text=f"{baseline_f1:.3f}",
        after_text=f"{model_f1:.3f}",
        change_text=f"{model_f1 - baseline_f1:+.3f}",
        caption=f"TF-IDF baseline → fine-tuned model, {rows}",
        source=f"{METRICS_NAME}: baseline.test.macro_f1 → test.macro_f1",
    )


def _served_row(rows: Mapping[str, Mapping[str, Any]], chosen: Any, served_backend: str | None) -> tuple[str, Any]:
    """The benchmark row that measured what this server runs, and its name (``None`` when there is none)."""
    auto = rows.get(AUTO_ROW)
    if auto is not None and (served_backend is None or served_backend == chosen):
        return AUTO_ROW, auto
    if served_backend is not None and served_backend in rows:
        return served_backend, rows[served_backend]
    return "", None


def speed_impact(folder: Path, served_backend: str | None = None) -> Impact | None:
    """Pipeline p50 -> served backend p50 from ``benchmark.json``; ``served_backend`` is the backend the
    server runs for one text (``None``: assume ``auto``'s choice)."""
    benchmark = _mapping(_read_json_or_none(folder / BENCHMARK_NAME))
    listed = benchmark.get("rows")
    rows = {
        str(row["backend"]): row
        for row in (listed if isinstance(listed, list) else [])
        if isinstance(row, Mapping) and "backend" in row
    }
    name, served = _served_row(rows, benchmark.get("chosen"), served_backend)
    before = _number(_mapping(rows.get(PIPELINE_ROW)).get("p50_ms"))
    after = _number(_mapping(served).get("p50_ms"))
    if before is None or after is None or after <= 0:
        if benchmark:
            logger.info("impact row: %s has no pipeline or served-backend p50 (%s)", BENCHMARK_NAME, served_backend)
        return None
    backend = served_backend or str(benchmark.get("chosen") or AUTO_ROW)
    threads = benchmark.get("threads")
    on = f", {threads} CPU threads" if isinstance(threads, int) else ""
    texts, rounds = benchmark.get("latency_texts"), benchmark.get("rounds")
    measured = ""
    if isinstance(texts, int) and isinstance(rounds, int):
        measured = f" ({texts} test tweets, {rounds} round(s))"
    return Impact(
        key="speed",
        title="p50 latency, one tweet",
        before=before,
        after=after,
        before_text=f"{before:.1f} ms",
        after_text=f"{after:.1f} ms",
        change_text=f"{before / after:.1f}× faster",
        caption=f"transformers pipeline → served backend {backend}{on}",
        source=f"{BENCHMARK_NAME}: rows[{PIPELINE_ROW}].p50_ms → rows[{name}].p50_ms{measured}",
    )


def _ablation_f1(folder: Path) -> tuple[float, float, tuple[float, float] | None] | None:
    """(no cleaning, full pipeline, 95% interval of full - none) from ``ablation.json``, if it has both rows."""
    ablation = _mapping(_read_json_or_none(folder / ABLATION_NAME))
    listed = ablation.get("rows")
    rows = {row.get("step"): row for row in (listed if isinstance(listed, list) else []) if isinstance(row, Mapping)}
    full = _number(_mapping(rows.get(ABLATION_FULL_ROW)).get("test_macro_f1"))
    bare = _number(_mapping(rows.get(ABLATION_BARE_ROW)).get("test_macro_f1"))
    if full is None or bare is None:
        return None
    # delta_ci95 is the interval of (no cleaning - full); the gain of cleaning is its mirror image.
    interval = _mapping(rows.get(ABLATION_BARE_ROW)).get("delta_ci95")
    bounds = [_number(value) for value in interval] if isinstance(interval, list | tuple) else []
    gain_interval = (-bounds[1], -bounds[0]) if len(bounds) == 2 and None not in bounds else None
    return bare, full, gain_interval  # type: ignore[return-value]


def data_impact(folder: Path) -> Impact | None:
    report = _mapping(_read_json_or_none(folder / CLEANING_REPORT_NAME))
    listed = report.get("steps")
    steps = [
        step
        for step in (listed if isinstance(listed, list) else [])
        if isinstance(step, Mapping) and step.get("enabled", True)
    ]
    loaded_counts = _mapping(report.get("rows_loaded"))
    loaded = sum(int(count) for count in loaded_counts.values() if _number(count) is not None)
    if not steps or not loaded:
        return None
    removed = sum(int(_number(step.get("rows_removed")) or 0) for step in steps)
    repaired = sum(
        int(_number(step.get("rows_touched")) or 0)
        for step in steps
        if str(step.get("name", "")).startswith(REPAIR_PREFIX)
    )
    caption = f"{removed:,} of {loaded:,} rows removed, {repaired:,} texts repaired"
    source = f"{CLEANING_REPORT_NAME}: rows_loaded, Σ steps[].rows_removed, Σ steps[{REPAIR_PREFIX}*].rows_touched"
    ablation = _ablation_f1(folder) if (folder / ABLATION_NAME).is_file() else None
    if ablation is not None:
        bare, full, interval = ablation
        ci = f" (95% CI {interval[0]:+.3f} … {interval[1]:+.3f})" if interval else ""
        return Impact(
            key="data",
            title="Cleaning, baseline macro-F1",
            before=bare,
            after=full,
            before_text=f"{bare:.3f}",
            after_text=f"{full:.3f}",
            change_text=f"{full - bare:+.3f}{ci}",
            caption=caption,
            source=f"{source}; {ABLATION_NAME}: rows[no cleaning at all] → rows[full pipeline].test_macro_f1",
        )
    return Impact(
        key="data",
        title="Training data cleaned",
        before=float(loaded),
        after=float(loaded - removed),
        before_text=f"{loaded:,} rows",
        after_text=f"{loaded - removed:,} rows",
        change_text=f"{repaired:,} repaired",
        caption=caption,
        source=source,
    )


def read_impact(folder: str | Path | None, served_backend: str | None = None) -> list[Impact]:
    """Quality, speed and data, in that order, each only when the folder's files back it up."""
    if folder is None:
        return []
    path = Path(folder)
    found = (quality_impact(path), speed_impact(path, served_backend), data_impact(path))
    return [impact for impact in found if impact is not None]
