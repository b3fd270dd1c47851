"""``build_demo(service)``: the Gradio Blocks layout and its API endpoints. Layout only.

Every handler is a few lines that call ``service.ClassifierService`` (validation, limits, live numbers
live there); what the page shows is rendered by ``ui_render`` (pure functions, every user or model text escaped).
Errors become ``gr.Error`` with an escaped message; unexpected ones are logged and shown generically.
"""

from __future__ import annotations

import functools
import html
import logging
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import gradio as gr
from matplotlib.figure import Figure

from tweet_classifier.errors import TweetClassifierError
from tweet_classifier.serving import live_plots
from tweet_classifier.serving.errors import INTERNAL_ERROR_MESSAGE, BadRequestError
from tweet_classifier.serving.service import ClassifierService
from tweet_classifier.serving.ui_render import (
    confusion_matrix_figure,
    escape,
    format_f1,
    highlighted_words,
    model_figures,
    reliability_frame,
    render_batch_summary,
    render_calibration,
    render_header,
    render_impact,
    render_live_panel,
    render_model_card,
    render_review,
    render_stats,
)

logger = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# Real-world tweet shapes: a handle, a URL, an emoji, an elongation, HTML entities, a non-Latin script.
EXAMPLE_TWEETS = [
    "@united thanks for rebooking me so fast, the crew at SFO was amazing 👏",
    "@AmericanAir 3 hours on the tarmac and still no update. This is ridiculous http://t.co/abc123",
    "@SouthwestAir what time does the first flight to Denver leave tomorrow?",
    "@JetBlue lost my bag AGAIN &amp; nobody answers the phone 😡😡",
    "@VirginAmerica sooooo good to be flying with you again!!! #happy",
    "@Delta ¿pueden ayudarme a cambiar mi vuelo?",
]

THEME = gr.themes.Soft(
    primary_hue="sky",
    secondary_hue="indigo",
    neutral_hue="slate",
    font=["Inter", "ui-sans-serif", "system-ui", "sans-serif"],
)

UI_CSS = """
.tc-header {display:flex; justify-content:space-between; align-items:center; gap:1rem; flex-wrap:wrap;
  padding:1rem 1.25rem; border-radius:14px; color:white;
  background:linear-gradient(120deg,#0369a1 0%,#4f46e5 100%);}
.tc-header h1 {margin:0; font-size:1.5rem; color:white;}
.tc-header p {margin:.2rem 0 0 0; opacity:.9;}
.tc-badges {display:flex; gap:.5rem; flex-wrap:wrap;}
.tc-badge {background:rgba(255,255,255,.18); border-radius:999px; padding:.25rem .75rem; font-size:.85rem;}
.tc-stats {display:grid; grid-template-columns:repeat(auto-fit,minmax(150px,1fr)); gap:.75rem;}
.tc-card {border:1px solid var(--border-color-primary); border-radius:12px; padding:.6rem .9rem;
  background:var(--background-fill-secondary);}
.tc-card .tc-k {font-size:.78rem; text-transform:uppercase; letter-spacing:.04em; opacity:.7;}
.tc-card .tc-v {font-size:1.35rem; font-weight:650;}
.tc-card .tc-s {font-size:.78rem; opacity:.7;}
.tc-warn {border-left:4px solid #f59e0b; background:rgba(245,158,11,.12); padding:.6rem .9rem; border-radius:8px;}
.tc-ok {border-left:4px solid #10b981; background:rgba(16,185,129,.10); padding:.6rem .9rem; border-radius:8px;}
.tc-table {border-collapse:collapse; width:100%; font-size:.9rem;}
.tc-table th, .tc-table td {border-bottom:1px solid var(--border-color-primary); padding:.3rem .5rem; text-align:left;}
.tc-impact {display:grid; grid-template-columns:repeat(auto-fit,minmax(240px,1fr)); gap:.6rem;}
.tc-impact-card {border:1px solid var(--border-color-primary); border-radius:12px; padding:.55rem .85rem;
  background:var(--background-fill-secondary); cursor:help;}
.tc-impact-k {font-size:.74rem; text-transform:uppercase; letter-spacing:.05em; opacity:.72;}
.tc-impact-v {display:flex; align-items:baseline; flex-wrap:wrap; gap:.15rem .45rem; margin:.1rem 0;}
.tc-before {font-size:1.05rem; opacity:.62;}
.tc-arrow {opacity:.55;}
.tc-after {font-size:1.55rem; font-weight:700; color:var(--color-accent);}
.tc-change {font-size:.82rem; font-weight:600; padding:.05rem .45rem; border-radius:999px;
  background:rgba(16,185,129,.14); color:#047857;}
.tc-impact-s {font-size:.78rem; opacity:.72;}
.tc-impact-notes {font-size:.7rem; opacity:.6; margin-top:.25rem; line-height:1.35;}
"""


def guarded(function: Callable[..., ResultT]) -> Callable[..., ResultT]:
    """Turn service errors into escaped ``gr.Error``s; log anything else and show a generic message."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> ResultT:
        try:
            return function(*args, **kwargs)
        except gr.Error:
            raise
        except TweetClassifierError as error:
            # gr.Error renders its message as HTML. quote=False keeps quotes readable for API clients;
            # they are harmless outside attributes.
            raise gr.Error(html.escape(str(error), quote=False), print_exception=False) from None
        except Exception:
            error_id = uuid.uuid4().hex[:12]
            logger.exception("request %s failed", error_id)
            raise gr.Error(INTERNAL_ERROR_MESSAGE.format(error_id=error_id), print_exception=False) from None

    return wrapper


def live_plot_values(timeline: dict[str, Any] | None, labels: Sequence[str], offline_f1: float | None) -> tuple:
    """The five live plots' DataFrames (latency, throughput, F1, label mix, PSI), in layout order."""
    if timeline is None:
        return (gr.skip(),) * 5
    return (
        live_plots.latency_frame(timeline),
        live_plots.throughput_frame(timeline),
        live_plots.f1_frame(timeline, offline_f1),
        live_plots.label_mix_frame(timeline, labels),
        live_plots.psi_frame(timeline),
    )


def uploaded_file(path: str) -> Path:
    """``path`` if it lies in Gradio's upload folder. Gradio checks this itself once the app has
    launched (serve.py sets that when mounting); this second check keeps a server path out even if
    that ever changes."""
    # Deferred: gradio loads only where the UI or a client is built (start-up time).
    from gradio.utils import get_upload_folder

    resolved = Path(path).resolve()
    if not resolved.is_relative_to(Path(get_upload_folder()).resolve()):
        raise BadRequestError("that file was not uploaded here: upload the CSV with the file box")
    return resolved


def batch_output_folder() -> Path:
    """A new folder for one result file inside Gradio's upload folder: Gradio serves it from there
    without a copy and deletes it with the uploads (``delete_cache``)."""
    # Deferred: gradio loads only where the UI or a client is built (start-up time).
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()) / f"tweet-classifier-{uuid.uuid4().hex}"


# ---- layout ----------------------------------------------------------------------------------------
def build_demo(service: ClassifierService) -> gr.Blocks:
    """The app: classify, batch CSV, live metrics and model views, plus the stable API endpoints."""
    config = service.config
    max_chars = service.settings.inference.max_chars
    model_slot = {"concurrency_limit": config.concurrency_limit, "concurrency_id": "model"}
    # UI events are not part of the public API; the gr.api endpoints below are.
    ui_only: dict[str, Any] = {"api_visibility": "private"}

    # Uploads and result files are deleted upload_ttl_s after they were written (checked every minute).
    with gr.Blocks(title="Tweet classifier", delete_cache=(60, config.upload_ttl_s)) as demo:
        header = gr.HTML(render_header(service.metrics()), elem_id="tc-header")
        impact = gr.HTML("", elem_id="tc-impact-row")
        impact_shown = gr.State(False)
        stats = gr.HTML(render_stats(service.metrics()), elem_id="tc-stats-panel")
        last_prediction = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Classify", id="classify") as classify_tab, gr.Row(equal_height=False):
                with gr.Column(scale=3):
                    text = gr.Textbox(
                        label="Tweet",
                        lines=4,
                        max_length=max_chars,
                        placeholder="Paste a tweet: handles, URLs, emoji and all",
                        elem_id="tc-text",
                    )
                    with gr.Row():
                        gr.ClearButton([text], value="Clear")
                        classify = gr.Button("Classify", variant="primary", elem_id="tc-classify")
                    gr.Examples(EXAMPLE_TWEETS, inputs=[text], label="Example tweets")
                with gr.Column(scale=2):
                    label = gr.Label(label="Prediction (all class probabilities)", elem_id="tc-label")
                    review_note = gr.HTML(elem_id="tc-review-panel")
                    words = gr.HighlightedText(
                        label="Words that drove it (red: for the label, purple: against; leave-one-word-out)",
                        elem_id="tc-words",
                        show_legend=False,
                    )
                    latency = gr.Markdown(elem_id="tc-latency")
                    normalized = gr.Textbox(label="What the model saw (normalized text)", interactive=False)
                    with gr.Accordion("Wrong? Tell us the right label", open=False):
                        correct = gr.Radio(choices=[], label="The right label is")
                        send_correction = gr.Button("Send correction")
                        correction_status = gr.Markdown()
            with gr.Tab("Batch (CSV)", id="batch") as batch_tab:
                gr.Markdown(
                    f"Upload a UTF-8 CSV (at most {config.max_csv_rows:,} rows, "
                    f"{config.max_csv_bytes // 1_000_000} MB) "
                    "with a text column and, optionally, a label column to score this upload."
                )
                with gr.Row():
                    upload = gr.File(label="CSV file", file_types=[".csv"], type="filepath")
                    with gr.Column():
                        text_column = gr.Textbox(label="Text column", value="text")
                        label_column = gr.Textbox(label="Label column (optional)", value="label")
                        run_batch = gr.Button("Classify file", variant="primary")
                batch_summary = gr.Markdown()
                with gr.Row():
                    download = gr.File(label="Predictions (CSV)")
                    batch_matrix = gr.Plot(label="Confusion matrix of this upload")
                batch_preview = gr.Dataframe(label="First rows", interactive=False)
            with gr.Tab("Live metrics", id="metrics") as live_tab:
                with gr.Row():
                    latency_plot = gr.LinePlot(**live_plots.LATENCY_PLOT, scale=3)
                    throughput_plot = gr.LinePlot(**live_plots.THROUGHPUT_PLOT, scale=2)
                with gr.Row():
                    f1_plot = gr.LinePlot(**live_plots.F1_PLOT, scale=3)
                    mix_plot = gr.BarPlot(**live_plots.MIX_PLOT, scale=2)
                psi_plot = gr.LinePlot(**live_plots.PSI_PLOT)
                with gr.Accordion("Exact values (tables)", open=False):
                    live_panel = gr.HTML(render_live_panel(service.metrics()), elem_id="tc-live")
                with gr.Accordion("Raw /metrics JSON", open=False):
                    live_json = gr.JSON()
            with gr.Tab("Model", id="model") as model_tab:
                model_card = gr.Markdown("The model is loading…")
                with gr.Row():
                    model_matrix = gr.Plot(label="Test confusion matrix")
                    model_slices = gr.BarPlot(**live_plots.SLICES_PLOT, scale=2)
                    model_balance = gr.Plot(label="Class balance")
                with gr.Row():
                    calibration_card = gr.Markdown(elem_id="tc-calibration")
                    reliability = gr.LinePlot(
                        x="confidence",
                        y="accuracy",
                        color="series",
                        x_lim=[0, 1],
                        y_lim=[0, 1],
                        title="Reliability diagram (test)",
                        label="Reliability diagram",
                        elem_id="tc-reliability",
                    )
                with gr.Accordion("Cleaning report", open=False):
                    cleaning_report = gr.Markdown()
        timer = gr.Timer(config.metrics_refresh_s)
        # Only a browser showing the Live metrics tab pays for the plots (and the server for their data).
        live_timer = gr.Timer(config.metrics_refresh_s, active=False)

        @guarded
        def on_classify(tweet: str) -> tuple[dict[str, float], str, str, Any, dict[str, str], str, Any]:
            result = service.predict(tweet, explain=True)
            timing = (
                f"**{escape(result['label'])}** in {result['latency_ms']:.1f} ms (model {result['compute_ms']:.1f} ms)"
            )
            choices = gr.update(choices=list(result["scores"]), value=None)
            return (
                result["scores"],
                timing,
                result["normalized_text"],
                choices,
                {"text": tweet, "label": result["label"]},
                render_review(result, service.review_threshold),
                highlighted_words(tweet, result),
            )

        @guarded
        def on_correction(right_label: str | None, previous: dict[str, str] | None) -> str:
            if not previous:
                return "Classify a tweet first, then pick the right label."
            if not right_label:
                return "Pick the right label first."
            outcome = service.feedback(previous["text"], previous["label"], right_label)
            return (
                f"Thanks, stored. Macro-F1 over {outcome['corrections']} corrections: {format_f1(outcome['macro_f1'])}"
            )

        @guarded
        def on_batch(path: str | None, text_name: str, label_name: str) -> tuple[str, Any, Figure | None, Any]:
            if not path:
                return "Upload a CSV file first.", None, None, None
            source = uploaded_file(path)
            result = service.classify_csv(source, text_name, label_name, output_dir=batch_output_folder())
            source.unlink(missing_ok=True)  # classified: its rows are in the result file now
            figure = None
            if result.report is not None:
                matrix = result.report["confusion_matrix"]
                figure = confusion_matrix_figure(matrix["labels"], matrix["matrix"], "This upload")
            return render_batch_summary(result), str(result.output_path), figure, result.preview

        def on_tick() -> tuple[str, str]:
            metrics = service.metrics()
            return render_header(metrics), render_stats(metrics)

        def on_live_tick() -> tuple[Any, ...]:
            metrics = service.metrics()
            offline_f1 = metrics.get("live_f1", {}).get("canary", {}).get("source", {}).get("expected_macro_f1")
            plots = live_plot_values(service.timeline(), metrics.get("labels", []), offline_f1)
            return (*plots, render_live_panel(metrics), metrics)

        @guarded
        def on_impact(shown: bool) -> tuple[Any, bool]:
            # Once per browser session, as soon as the model (and so its folder) is there.
            if shown or not service.ready:
                return gr.skip(), shown
            return render_impact(service.model_info()["impact"]), True

        @guarded
        def on_slices_view() -> Any:
            if not service.ready:
                return gr.skip()
            frame = live_plots.slices_frame(service.model_info().get("metrics"))
            return gr.BarPlot(value=frame, sort=frame["slice"].tolist())

        @guarded
        def on_model_view() -> tuple[str, Figure | None, Figure | None, str, str, Any]:
            if not service.ready:
                return "The model is loading…", None, None, "", "", None
            info = service.model_info()
            confusion, balance = model_figures(info)
            report = info.get("cleaning_report_md") or "No cleaning report in this model folder."
            return (
                render_model_card(info),
                confusion,
                balance,
                escape(report),
                render_calibration(info),
                reliability_frame(info),
            )

        classify_event = {
            "fn": on_classify,
            "inputs": [text],
            "outputs": [label, latency, normalized, correct, last_prediction, review_note, words],
        }
        classify.click(**classify_event, **model_slot, **ui_only)
        text.submit(**classify_event, **model_slot, **ui_only)
        send_correction.click(on_correction, [correct, last_prediction], [correction_status], **ui_only)
        # Its own concurrency group: parsing an upload never holds one of the model group's places;
        # its model calls take the service's slots batch by batch like every other request.
        run_batch.click(
            on_batch,
            [upload, text_column, label_column],
            [batch_summary, download, batch_matrix, batch_preview],
            concurrency_limit=1,
            concurrency_id="csv",
            **ui_only,
        )
        # Metric refreshes never wait behind model calls and never pile up.
        refresh: dict[str, Any] = {"concurrency_limit": None, "trigger_mode": "always_last", "show_progress": "hidden"}
        timer.tick(on_tick, outputs=[header, stats], **refresh, **ui_only)
        timer.tick(on_impact, inputs=[impact_shown], outputs=[impact, impact_shown], **refresh, **ui_only)
        live_outputs = [latency_plot, throughput_plot, f1_plot, mix_plot, psi_plot, live_panel, live_json]
        live_timer.tick(on_live_tick, outputs=live_outputs, **refresh, **ui_only)
        live_tab.select(lambda: gr.Timer(active=True), outputs=[live_timer], **ui_only).then(
            on_live_tick, outputs=live_outputs, show_progress="hidden", **ui_only
        )
        for other_tab in (classify_tab, batch_tab, model_tab):
            other_tab.select(lambda: gr.Timer(active=False), outputs=[live_timer], **ui_only)
        demo.load(
            on_model_view,
            outputs=[model_card, model_matrix, model_balance, cleaning_report, calibration_card, reliability],
            **ui_only,
        )
        demo.load(on_impact, inputs=[impact_shown], outputs=[impact, impact_shown], **ui_only)
        demo.load(on_slices_view, outputs=[model_slices], **ui_only)

        # ---- the public API (stable names; see README) --------------------------------------------
        # The docstrings are the API's documentation: Gradio's API page and its MCP tools (name,
        # description, one description per parameter from "Args:") are built from them.
        def predict(text: str) -> dict:
            """Classify one tweet: {label, scores, latency_ms, compute_ms, normalized_text, model_version,
            needs_review}.

            Args:
                text: the tweet as written (handles, URLs, emoji and all; at most the model's character cap).
            """
            return guarded(service.predict)(text)

        # Its own endpoint rather than a second argument of `predict`: Gradio's call API refuses a request
        # with fewer values than the function has parameters, so a flag would break every one-value caller.
        def explain(text: str) -> dict:
            """`predict` plus `explanation`: each word of the text with its attribution toward the label.

            Args:
                text: the tweet as written; its words are left out one at a time to see what drove the label.
            """
            return guarded(service.predict)(text, explain=True)

        def predict_batch(texts: list[str]) -> list[dict]:
            """Classify a list of tweets in one server-side batch; one result per text, in order.

            Args:
                texts: the tweets as written, at most serve.max_batch_texts of them.
            """
            return guarded(service.predict_batch)(texts)

        def feedback(text: str, predicted: str, correct: str) -> dict:
            """Record that `text` was predicted `predicted` but the right label is `correct`.

            Args:
                text: the tweet that was classified.
                predicted: the label the model gave it.
                correct: the label it should have had (one of the model's labels).
            """
            return guarded(service.feedback)(text, predicted, correct)

        def metrics() -> dict:
            """Every live number: latency, throughput, queue, live F1 (canary, corrections), drift."""
            return service.metrics()

        gr.api(predict, api_name="predict", **model_slot)
        gr.api(explain, api_name="explain", **model_slot)
        gr.api(predict_batch, api_name="predict_batch", **model_slot)
        gr.api(feedback, api_name="feedback", concurrency_limit=4, concurrency_id="feedback")
        gr.api(metrics, api_name="metrics", concurrency_limit=None)
        if service.settings.latency_probe:

            def noop(text: str) -> dict:
                """An empty endpoint: the baseline of scripts/api_latency.py."""
                return {"label": "noop"}

            gr.api(noop, api_name="noop", concurrency_limit=None, api_visibility="undocumented")

    demo.queue(max_size=config.queue_max_size, default_concurrency_limit=config.concurrency_limit)
    return demo
