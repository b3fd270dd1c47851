"""Data for the app's native plots: pure functions from the monitor's timeline and ``metrics.json`` to
long-format DataFrames, and each plot's fixed settings (so the layout in ``ui.py`` stays a list).

Long format, one row per (time, series): Gradio's ``LinePlot``/``BarPlot`` take one y column and a
``color`` column naming the series. Missing values are dropped rather than sent as nulls, so a series
without data yet has no rows and draws nothing.

Everything but ``value`` stays constant after the page is built: Gradio's frontend rebuilds the whole
Vega view (a visible flash) when another property changes, and only swaps the data for a new value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

LATENCY_SERIES = {
    "request p50": ("request_p50", "#0284c7"),
    "request p95": ("request_p95", "#7dd3fc"),
    "compute p50": ("compute_p50", "#4f46e5"),
    "compute p95": ("compute_p95", "#c4b5fd"),
}
OFFLINE_F1 = "offline, same rows"
F1_COLORS = {"canary": "#0284c7", "corrections": "#f59e0b", OFFLINE_F1: "#94a3b8"}
THRESHOLD = "threshold"
# Every series the PSI plot can show (monitor.drift_bins' features + the predicted label): a colour
# map that misses one leaves Vega without a colour for it.
PSI_FEATURES = (
    "n_chars",
    "n_words",
    "unk_share",
    "has_url",
    "has_mention",
    "has_emoji",
    "has_hashtag",
    "predicted_label",
)
PSI_COLORS = dict(
    zip(
        (*PSI_FEATURES, THRESHOLD),
        ("#0284c7", "#0891b2", "#4f46e5", "#7c3aed", "#db2777", "#f59e0b", "#65a30d", "#0f766e", "#dc2626"),
        strict=True,
    )
)
MIX_SOURCES = ("training labels", "live predictions")
WHOLE_TEST = "whole test split"
TEXT_SHAPE = "text shape"
PER_GROUP = "per group"


def _times(seconds: Sequence[float]) -> pd.Series:
    # tz-aware UTC: Gradio sends epoch milliseconds and the browser shows its local time.
    return pd.to_datetime(pd.Series(seconds, dtype=float), unit="s", utc=True)


def _long(times: pd.Series, columns: Mapping[str, Sequence[Any]], value: str, series: str) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"time": times, value: pd.Series(values, dtype=float), series: name}).dropna(subset=[value])
        for name, values in columns.items()
    ]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns, UTC]"), value: [], series: []})
    return pd.concat(frames, ignore_index=True)


def latency_frame(timeline: Mapping[str, Any]) -> pd.DataFrame:
    columns = {name: timeline[key] for name, (key, _) in LATENCY_SERIES.items()}
    return _long(_times(timeline["t"]), columns, "ms", "series")


def throughput_frame(timeline: Mapping[str, Any]) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": _times(timeline["t"]), "requests/s": pd.Series(timeline["requests_per_s"], dtype=float)}
    )


def f1_frame(timeline: Mapping[str, Any], offline_test_f1: float | None) -> pd.DataFrame:
    """Canary and corrections macro-F1 over time, and the model card's test macro-F1 as a flat line:
    what the canary should approach when its rows are the test split."""
    columns: dict[str, Sequence[Any]] = {
        "canary": timeline["canary_macro_f1"],
        "corrections": timeline["corrections_macro_f1"],
    }
    if offline_test_f1 is not None:
        columns[OFFLINE_F1] = [offline_test_f1] * len(timeline["t"])
    return _long(_times(timeline["t"]), columns, "macro-F1", "source")


def psi_frame(timeline: Mapping[str, Any]) -> pd.DataFrame:
    """PSI per feature over time, plus the threshold as a flat line (only once there is any PSI)."""
    columns: dict[str, Sequence[Any]] = dict(timeline["psi"])
    if columns:
        columns[THRESHOLD] = [timeline["psi_threshold"]] * len(timeline["t"])
    return _long(_times(timeline["t"]), columns, "PSI", "feature")


def label_mix_frame(timeline: Mapping[str, Any], labels: Sequence[str]) -> pd.DataFrame:
    """Two stacked bars of label shares: the training split's labels and the recent predictions."""
    rows = []
    for source, key in zip(MIX_SOURCES, ("training", "live"), strict=True):
        shares = timeline["label_mix"].get(key) or {}
        if shares:
            rows += [{"source": source, "share": float(shares.get(label, 0.0)), "label": label} for label in labels]
    return pd.DataFrame(rows, columns=["source", "share", "label"])


def slices_frame(metrics: Mapping[str, Any] | None) -> pd.DataFrame:
    """Test macro-F1 per slice (``metrics.json`` ``test.slices``), the whole test split first.

    A slice that holds every test row (``has_mention`` on airline tweets) repeats the whole split and
    is left out; small slices keep their bar and say so in their name."""
    test = (metrics or {}).get("test") or {}
    n_test = test.get("n")
    rows = []
    if test.get("macro_f1") is not None:
        rows.append({"slice": f"all test ({n_test})", "macro-F1": test["macro_f1"], "kind": WHOLE_TEST, "n": n_test})
    for name, values in (test.get("slices") or {}).items():
        if not isinstance(values, Mapping) or values.get("macro_f1") is None or values.get("n") == n_test:
            continue
        kind = PER_GROUP if name.startswith("group=") else TEXT_SHAPE
        small = ", small" if values.get("small") else ""
        label = f"{name.removeprefix('group=')} ({values.get('n')}{small})"
        rows.append({"slice": label, "macro-F1": values["macro_f1"], "kind": kind, "n": values.get("n")})
    return pd.DataFrame(rows, columns=["slice", "macro-F1", "kind", "n"])


# ---- component settings ------------------------------------------------------------------------
# The title is drawn by Vega inside the chart: Gradio's block label sits above a chart of the full
# block height and pushes the bottom legend out of the (clipped) block.
_COMMON: dict[str, Any] = {"height": 280, "buttons": ["fullscreen", "export"], "x_title": "", "show_label": False}
LATENCY_PLOT = _COMMON | {
    "x": "time",
    "y": "ms",
    "color": "series",
    "y_title": "ms",
    "y_lim": [0, None],
    "color_map": {name: color for name, (_, color) in LATENCY_SERIES.items()},
    "tooltip": "all",
    "label": "Latency per time bucket (p50 / p95)",
    "title": "Latency per time bucket (p50 / p95)",
    "elem_id": "tc-plot-latency",
}
THROUGHPUT_PLOT = _COMMON | {
    "x": "time",
    "y": "requests/s",
    "y_title": "requests/s",
    "y_lim": [0, None],
    "tooltip": "all",
    "label": "Throughput",
    "title": "Throughput",
    "elem_id": "tc-plot-throughput",
}
F1_PLOT = _COMMON | {
    "x": "time",
    "y": "macro-F1",
    "color": "source",
    "y_lim": [0, 1],
    "color_map": F1_COLORS,
    "tooltip": "all",
    "label": "Live macro-F1 as labels accumulate",
    "title": "Live macro-F1 as labels accumulate",
    "elem_id": "tc-plot-f1",
}
PSI_PLOT = _COMMON | {
    "x": "time",
    "y": "PSI",
    "color": "feature",
    "y_lim": [0, None],
    "color_map": PSI_COLORS,
    "tooltip": "all",
    "label": "Drift: PSI per feature vs the training split (red: threshold)",
    "title": "Drift: PSI per feature vs the training split (red: threshold)",
    "elem_id": "tc-plot-psi",
}
MIX_PLOT = _COMMON | {
    "x": "source",
    "y": "share",
    "color": "label",
    "y_lim": [0, 1],
    "sort": list(MIX_SOURCES),
    "tooltip": "all",
    "buttons": ["fullscreen"],
    "label": "Label mix: training split vs live predictions",
    "title": "Label mix: training split vs live predictions",
    "elem_id": "tc-plot-mix",
}
SLICES_PLOT = _COMMON | {
    "x": "slice",
    "y": "macro-F1",
    "color": "kind",
    "y_lim": [0, 1],
    "height": 340,
    "x_label_angle": -35,
    "tooltip": ["n"],
    "label": "Test macro-F1 per slice (metrics.json)",
    "title": "Test macro-F1 per slice (metrics.json)",
    "elem_id": "tc-plot-slices",
}
