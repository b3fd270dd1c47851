"""What the UI shows, rendered: pure functions from the service's dicts to HTML, Markdown, figures and
plot data. Nothing here calls the service or gradio; ``ui.build_demo`` wires them to the page.

Every piece of user or model text that lands in HTML or Markdown goes through ``html.escape`` here.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from tweet_classifier.inference.calibration import review_outcome
from tweet_classifier.inference.explain import WordAttribution, highlighted_segments
from tweet_classifier.serving.csv_batch import CsvResult
from tweet_classifier.serving.impact import Impact


def escape(value: object) -> str:
    """``value`` as text safe inside HTML (quotes too: it may land in an attribute)."""
    return html.escape(str(value), quote=True)


def format_ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} ms"


def format_f1(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_header(metrics: dict[str, Any]) -> str:
    status = metrics.get("status", "loading")
    version = metrics.get("model_version", "loading…" if status == "loading" else "unavailable")
    backend = metrics.get("backend", {})
    badges = [f"model {version}", f"status {status}"]
    if backend:
        badges.append(f"backend {backend.get('single')}/{backend.get('batch')}")
    badge_html = "".join(f'<span class="tc-badge">{escape(badge)}</span>' for badge in badges)
    labels = ", ".join(metrics.get("labels", []))
    subtitle = f"Classes: {labels}" if labels else "Noisy tweets in, calibrated labels out"
    return (
        '<div class="tc-header"><div><h1>Tweet classifier</h1>'
        f"<p>{escape(subtitle)} · live F1, latency and drift measured by this server</p></div>"
        f'<div class="tc-badges">{badge_html}</div></div>'
    )


def render_impact(impacts: Sequence[Impact]) -> str:
    """The headline results as before -> after cards, each with its source on hover (``title``) and in
    a numbered footnote (phones have no hover). ``data-value`` holds the unrounded number."""
    if not impacts:
        return ""
    cards, notes = [], []
    for number, impact in enumerate(impacts, start=1):
        cards.append(
            f'<div class="tc-impact-card" id="tc-impact-{escape(impact.key)}" '
            f'title="Source: {escape(impact.source)}">'
            f'<div class="tc-impact-k">{escape(impact.title)}<sup>{number}</sup></div><div class="tc-impact-v">'
            f'<span class="tc-before" data-value="{impact.before!r}">{escape(impact.before_text)}</span>'
            '<span class="tc-arrow" aria-label="to">→</span>'
            f'<span class="tc-after" data-value="{impact.after!r}">{escape(impact.after_text)}</span>'
            f'<span class="tc-change">{escape(impact.change_text)}</span></div>'
            f'<div class="tc-impact-s">{escape(impact.caption)}</div></div>'
        )
        notes.append(f"<sup>{number}</sup>&#8239;{escape(impact.source)}")
    return (
        f'<div class="tc-impact" id="tc-impact">{"".join(cards)}</div>'
        f'<div class="tc-impact-notes">{" · ".join(notes)}</div>'
    )


def _card(key: str, value: str, sub: str = "") -> str:
    return (
        f'<div class="tc-card"><div class="tc-k">{escape(key)}</div><div class="tc-v">{escape(value)}</div>'
        f'<div class="tc-s">{escape(sub)}</div></div>'
    )


def render_stats(metrics: dict[str, Any]) -> str:
    """The always-visible strip of live numbers."""
    if "latency_ms" not in metrics:
        return f'<div class="tc-stats" id="tc-stats">{_card("status", metrics.get("status", "loading"))}</div>'
    # Until the first cold_requests are over, show the cold numbers rather than dashes.
    phase = "warm" if metrics["latency_ms"]["warm"]["request_ms"]["n"] else "cold"
    warm = metrics["latency_ms"][phase]
    canary = metrics["live_f1"]["canary"]
    corrections = metrics["live_f1"]["corrections"]
    drift = metrics["drift"]
    cards = [
        _card("requests served", f"{metrics['requests_served']:,}", f"{metrics['throughput']['requests_per_s']:.2f}/s"),
        _card(
            "p50 / p95 request",
            format_ms(warm["request_ms"]["p50"]),
            f"p95 {format_ms(warm['request_ms']['p95'])} ({phase})",
        ),
        _card(
            "p50 model compute",
            format_ms(warm["compute_ms"]["p50"]),
            f"p99 {format_ms(warm['compute_ms']['p99'])} ({phase})",
        ),
        _card(
            "canary macro-F1",
            format_f1(canary["macro_f1"]),
            f"{canary['n']:,} of {canary['total']:,} · {canary['status']}",
        ),
        _card("corrections macro-F1", format_f1(corrections["macro_f1"]), f"{corrections['n']:,} corrections"),
        _review_card(metrics.get("review")),
        _card("in flight / queued", f"{metrics['in_flight']} / {metrics['queue_depth'] or 0}", "right now"),
        _card("drift", drift["status"], _drift_subtitle(drift)),
    ]
    return f'<div class="tc-stats" id="tc-stats">{"".join(cards)}</div>'


def _review_card(review: dict[str, Any] | None) -> str:
    share = (review or {}).get("share")
    kept = ((review or {}).get("canary") or {}).get("macro_f1")
    value = "–" if share is None else f"{100 * share:.1f}%"
    return _card("sent to a person", value, f"kept canary macro-F1 {format_f1(kept)}")


def _review_html(review: dict[str, Any] | None, threshold: float | None) -> str:
    if review is None:
        return ""
    canary = review["canary"]
    share = "–" if review["share"] is None else f"{100 * review['share']:.1f}%"
    canary_share = "–" if canary["share"] is None else f"{100 * canary['share']:.1f}%"
    where = "no threshold (uncalibrated model)" if threshold is None else f"threshold {threshold:.3f}"
    return (
        "<h3>Review</h3>"
        + _table(
            ["stream", "texts", "sent to a person", "macro-F1 of the kept ones"],
            [
                ["users", review["texts"], share, "unlabelled"],
                [
                    "canary",
                    canary["total"],
                    canary_share,
                    format_f1(canary["macro_f1"]),
                ],
            ],
        )
        + f"<p>{escape(where)}</p>"
    )


def _drift_subtitle(drift: dict[str, Any]) -> str:
    if drift["status"] == "unavailable":
        return "no training reference in the model"
    return f"over {drift['n']:,} recent inputs"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join("<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<table class="tc-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def render_live_panel(metrics: dict[str, Any]) -> str:
    """Latency (warm vs cold), live F1 per class, and the drift table with its plain-language verdict."""
    if "latency_ms" not in metrics:
        return f"<p>{escape(metrics.get('detail', 'The model is loading.'))}</p>"
    latency = metrics["latency_ms"]
    rows = []
    for phase in ("warm", "cold"):
        for name, label in (("request_ms", "whole request"), ("compute_ms", "model compute")):
            values = latency[phase][name]
            rows.append(
                [
                    phase,
                    label,
                    values["n"],
                    format_ms(values["p50"]),
                    format_ms(values["p95"]),
                    format_ms(values["p99"]),
                ]
            )
    latency_html = _table(["phase", "what", "n", "p50", "p95", "p99"], rows)
    f1_rows = []
    for source in ("canary", "corrections"):
        stream = metrics["live_f1"][source]
        per_class = stream.get("per_class_f1", {})
        f1_rows.append(
            [
                source,
                stream["n"],
                format_f1(stream["macro_f1"]),
                *(format_f1(per_class.get(label)) for label in metrics["labels"]),
            ]
        )
    f1_html = _table(["source", "n", "macro-F1", *metrics["labels"]], f1_rows) + _canary_note(
        metrics["live_f1"]["canary"]
    )
    drift = metrics["drift"]
    verdict_class = "tc-warn" if drift["status"] == "drift" else "tc-ok"
    drift_rows = [
        [feature, f"{psi:.3f}", "yes" if feature in drift["drifted"] else ""] for feature, psi in drift["psi"].items()
    ]
    drift_html = f'<div class="{verdict_class}">{escape(drift["message"])}</div>' + (
        _table(["feature", "PSI vs training", "drifted"], drift_rows) if drift_rows else ""
    )
    throughput = metrics["throughput"]
    return (
        f"<h3>Latency</h3>{latency_html}"
        f"<p>{throughput['requests_per_s']:.2f} requests/s, {throughput['texts_per_s']:.2f} texts/s over the last "
        f"{throughput['window_s']:.0f} s · {metrics['requests_failed']} failed · {metrics['requests_rejected']} "
        "rejected as busy</p>"
        f"<h3>Live F1</h3>{f1_html}{_review_html(metrics.get('review'), metrics.get('review_threshold'))}"
        f"<h3>Drift</h3>{drift_html}"
    )


def _canary_note(canary: dict[str, Any]) -> str:
    """Where the canary rows come from and what they scored offline, or why there is no canary."""
    source = canary.get("source") or {}
    if str(canary.get("status", "")).startswith("unavailable"):
        reason = canary["status"].removeprefix("unavailable: ")
        return f'<p class="tc-warn">Live canary F1 is off: {escape(reason)}</p>'
    if not source:
        return ""
    parts = [f"Canary rows: {source.get('sampling', 'labelled rows')}"]
    data = source.get("data") or {}
    if data.get("source"):
        parts.append(f"of {data['source']}")
    expected = source.get("expected_macro_f1")
    if isinstance(expected, float):
        parts.append(
            f"· offline macro-F1 on these rows {format_f1(expected)} ({source.get('expected_backend', 'torch-fp32')}, "
            "the model card's number when they are the whole test split)"
        )
    return f"<p>{escape(' '.join(parts))}</p>"


def confusion_matrix_figure(labels: Sequence[str], matrix: Sequence[Sequence[int]], title: str) -> Figure:
    figure = Figure(figsize=(4.8, 4.0), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(matrix, cmap="Blues")
    peak = max((max(row) for row in matrix), default=0)
    for row_index, row in enumerate(matrix):
        for column_index, count in enumerate(row):
            color = "white" if peak and count > peak / 2 else "black"
            axes.text(column_index, row_index, str(count), ha="center", va="center", color=color)
    axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.colorbar(image, ax=axes, shrink=0.8)
    return figure


def class_balance_figure(counts: dict[str, int], title: str) -> Figure:
    figure = Figure(figsize=(4.8, 3.2), layout="constrained")
    axes = figure.subplots()
    names = list(counts)
    bars = axes.bar(names, [counts[name] for name in names], color="#0284c7")
    axes.bar_label(bars)
    axes.set_ylabel("examples")
    axes.set_title(title)
    return figure


def render_batch_summary(result: CsvResult) -> str:
    lines = [
        f"**{result.n_rows:,} rows classified**; {result.n_invalid:,} skipped as invalid (see the `error` column).",
    ]
    if result.report is None:
        lines.append("No usable label column, so no F1 for this upload.")
    else:
        report = result.report
        lines.append(
            f"**Macro-F1 {report['macro_f1']:.3f}**, accuracy {report['accuracy']:.3f} over {result.n_scored:,} "
            f"labelled rows ({result.n_unknown_labels:,} rows had an unknown label and were not scored)."
        )
        lines.append("\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|")
        for label, values in report["per_class"].items():
            lines.append(
                f"| {escape(label)} | {values['precision']:.3f} | {values['recall']:.3f} | {values['f1']:.3f} "
                f"| {values['support']} |"
            )
    return "\n".join(lines)


def render_model_card(info: dict[str, Any]) -> str:
    manifest = info.get("manifest") or {}
    lines = [f"### Model `{escape(info['model_version'])}`"]
    details = {
        "base model": manifest.get("base_model"),
        "labels": ", ".join(info["labels"]),
        "max length (tokens)": manifest.get("max_length"),
        "normalizer version": manifest.get("normalizer_version"),
        "created": manifest.get("created_at"),
        "git commit": manifest.get("git_commit"),
    }
    lines += [f"- **{name}**: {escape(value)}" for name, value in details.items() if value]
    metrics = info.get("metrics") or {}
    test = metrics.get("test")
    if test:
        lines.append(
            f"\n**Test macro-F1 {test['macro_f1']:.3f}**, accuracy {test.get('accuracy', 0):.3f} (n={test.get('n')})"
        )
        baseline = (metrics.get("baseline") or {}).get("test", {}).get("macro_f1")
        if baseline is not None:
            lines.append(f"; TF-IDF baseline macro-F1 {baseline:.3f}")
        lines.append("\n| class | precision | recall | F1 | support |\n|---|---|---|---|---|")
        for label, values in test.get("per_class", {}).items():
            lines.append(
                f"| {escape(label)} | {values['precision']:.3f} | {values['recall']:.3f} | {values['f1']:.3f} "
                f"| {values['support']} |"
            )
    else:
        lines.append("\nThis model folder has no metrics.json (run `tweet-classifier evaluate`).")
    return "\n".join(lines)


def model_figures(info: dict[str, Any]) -> tuple[Figure | None, Figure | None]:
    test = (info.get("metrics") or {}).get("test") or {}
    matrix = test.get("confusion_matrix")
    confusion = confusion_matrix_figure(matrix["labels"], matrix["matrix"], "Test confusion matrix") if matrix else None
    counts = {label: values["support"] for label, values in test.get("per_class", {}).items()}
    balance = class_balance_figure(counts, "Test split class balance") if counts else None
    return confusion, balance


def render_review(result: dict[str, Any], threshold: float | None) -> str:
    """The review flag in plain words: act on it, or hand the tweet to a person."""
    confidence = max(result["scores"].values())
    if threshold is None:
        return (
            '<div class="tc-warn" id="tc-review">No review threshold: this model has no calibration.json '
            "(run <code>tweet-classifier calibrate</code>), so nothing is flagged.</div>"
        )
    if result["needs_review"]:
        return (
            '<div class="tc-warn" id="tc-review"><b>Needs a person.</b> The model is unsure '
            f"(confidence {confidence:.2f}, under the review threshold {threshold:.2f}): have someone read this "
            "tweet before acting on the label.</div>"
        )
    return (
        '<div class="tc-ok" id="tc-review"><b>Safe to act on automatically.</b> '
        f"Confidence {confidence:.2f} is at or above the review threshold {threshold:.2f}.</div>"
    )


def highlighted_words(text: str, result: dict[str, Any]) -> list[tuple[str, float | None]]:
    """``gr.HighlightedText`` value: the tweet as typed, each word shaded by its attribution."""
    words = [WordAttribution(**word) for word in result.get("explanation") or []]
    return highlighted_segments(text, words)


def render_calibration(info: dict[str, Any]) -> str:
    """ECE before/after and the review threshold's coverage on test, from metrics.json."""
    metrics = info.get("metrics") or {}
    calibration, selective = metrics.get("calibration"), metrics.get("selective")
    if not calibration or not selective:
        return "No calibration in this model folder: run `tweet-classifier calibrate --model DIR`."
    test, kept = calibration["test"], selective["test"]
    lines = [
        f"**Calibration**: temperature {calibration['temperature']:.3f} (fitted on validation); test ECE "
        f"**{test['ece_before']:.4f} → {test['ece_after']:.4f}** ({calibration['ece_bins']} equal-width bins).",
        f"**Review**: below confidence {selective['threshold']:.3f} a prediction needs a person. "
        f"{review_outcome(selective)} On test the model acts on **{100 * kept['coverage']:.1f}%** of tweets "
        f"automatically at macro-F1 **{format_f1(kept['macro_f1'])}**.",
        "\n| threshold | test coverage | test macro-F1 |\n|---|---|---|",
    ]
    lines += [
        f"| {row['threshold']:.3f} | {100 * row['coverage']:.1f}% | {format_f1(row['macro_f1'])} |"
        for row in selective["coverage_table"]
    ]
    return "\n".join(lines)


def reliability_frame(info: dict[str, Any]) -> Any:
    """Reliability diagram data for ``gr.LinePlot``: mean confidence vs accuracy per bin, before and after
    temperature scaling, and the diagonal a calibrated model follows."""
    test = ((info.get("metrics") or {}).get("calibration") or {}).get("test") or {}
    rows = [
        {"confidence": bin_row["confidence"], "accuracy": bin_row["accuracy"], "series": series}
        for key, series in (("reliability_before", "uncalibrated"), ("reliability_after", "temperature-scaled"))
        for bin_row in test.get(key, [])
        if bin_row["n"]
    ]
    if not rows:
        return None
    rows += [{"confidence": value, "accuracy": value, "series": "perfectly calibrated"} for value in (0.0, 1.0)]
    return pd.DataFrame(rows)
