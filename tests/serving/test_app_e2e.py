"""End to end against ``python -m tweet_classifier.serving.server`` in a subprocess: load test and headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serving_helpers import LABELS, free_port
from tweet_classifier.artifact import CALIBRATION_NAME, WEIGHTS_NAME, file_sha256, write_json_atomic
from tweet_classifier.reports.screenshot import (
    CHROMEDRIVER,
    CHROMIUM,
    FALLBACK_TEXTS,
    LIVE_PLOTS,
    SLICES_PLOT,
    chrome,
    classify_in_page,
    impact_on_page,
    mark_plots,
    open_tab,
    plot_state,
    send_load,
    wait_for_plots,
)
from tweet_classifier.serving.latency import run_load, server_process
from tweet_classifier.text import text_traits


@pytest.mark.load
def test_sixteen_clients_for_a_minute_without_a_failed_request(tiny_model_dir, tmp_path, record_property) -> None:
    env = {"FEEDBACK_FILE": str(tmp_path / "feedback.jsonl")}
    with server_process(tiny_model_dir, free_port(), extra_env=env) as base_url:
        texts = [
            "@united thanks for the quick rebooking!",
            "3 hours on the tarmac, no updates http://t.co/x 😡",
            "what time does boarding start?",
            "lost my bag AGAIN &amp; nobody answers",
        ]
        result = run_load(base_url, clients=16, duration_s=float(os.environ.get("LOAD_SECONDS", "60")), texts=texts)
    record_property("load_result", result)
    sys.stdout.write(
        f"\nload: {result['requests']} requests from 16 clients in {result['duration_s']:.0f} s, "
        f"{result['failed']} failed, {result['throughput_rps']:.1f} req/s, p50 {result['latency_ms']['p50']:.0f} ms, "
        f"p95 {result['latency_ms']['p95']:.0f} ms, p99 {result['latency_ms']['p99']:.0f} ms\n"
    )
    assert result["failed"] == 0, result["failures"]
    assert result["requests"] > 16


def showcase_folder(tiny_model_dir: Path, target: Path) -> Path:
    """The tiny model plus the files the page's pictures read: metrics with slices and the baseline,
    a benchmark, a cleaning report and a drift reference (what train, export and benchmark write)."""
    from tweet_classifier.artifact import BENCHMARK_NAME, write_json_atomic
    from tweet_classifier.drift import DriftReference
    from tweet_classifier.metrics import classification_report_dict

    shutil.copytree(tiny_model_dir, target)
    truth = ["negative", "neutral", "positive", "negative", "neutral", "negative"]
    predicted = ["negative", "neutral", "negative", "negative", "positive", "negative"]
    test = classification_report_dict(truth, predicted, LABELS) | {
        "slices": {
            "short_text": {"n": 3, "macro_f1": 0.61, "small": True},
            "group=United": {"n": 4, "macro_f1": 0.72, "small": True},
        }
    }
    write_json_atomic(target / "metrics.json", {"test": test, "baseline": {"test": {"macro_f1": 0.4321}}})
    rows = [{"backend": "pipeline", "p50_ms": 9.87}, {"backend": "auto", "p50_ms": 3.21}]
    rows += [{"backend": backend, "p50_ms": 4.56} for backend in ("torch-fp32", "torch-bf16", "torch-bf16-compiled")]
    write_json_atomic(target / BENCHMARK_NAME, {"chosen": "torch-fp32", "threads": 2, "rows": rows})
    steps = [
        {"name": "exact_duplicates", "rows_removed": 7, "rows_touched": 7, "enabled": True},
        {"name": "repair:undo_late_flight", "rows_removed": 0, "rows_touched": 5, "enabled": True},
    ]
    write_json_atomic(target / "cleaning_report.json", {"rows_loaded": {"all": 120}, "steps": steps})
    observations = [(text_traits(text), 0.0, LABELS[index % 3]) for index, text in enumerate(FALLBACK_TEXTS * 30)]
    DriftReference.from_observations(observations).save(target / "reference.json")
    return target


@pytest.mark.browser
def test_browser_shows_the_impact_the_live_plots_and_the_slices(tiny_model_dir, tmp_path) -> None:
    """A visitor's page: a classified tweet, the impact numbers equal to the folder's files, every live
    plot drawn with data after a short load and updated in place, the slices chart in the Model tab."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install selenium")
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    folder = showcase_folder(tiny_model_dir, tmp_path / "model")
    screenshot_dir = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    env = {"FEEDBACK_FILE": str(tmp_path / "feedback.jsonl")}
    # A review threshold no tiny-model confidence reaches: the classify view must say "Needs a person".
    calibration = {"format_version": 1, "temperature": 1.0, "review": {"threshold": 0.99}}
    write_json_atomic(folder / CALIBRATION_NAME, calibration | {"weights_sha256": file_sha256(folder / WEIGHTS_NAME)})
    with server_process(folder, free_port(), extra_env=env) as base_url:
        served = httpx.get(base_url + "/v1/metrics", timeout=10).json()["backend"]["single"]
        driver = chrome(tmp_path / "chromium-profile")
        try:
            driver.get(base_url + "/")
            assert "negative" in classify_in_page(
                driver, "@united 3 hours on the tarmac <b>ridiculous</b> &amp;", LABELS
            )
            wait = WebDriverWait(driver, 60)
            review = driver.find_element(By.CSS_SELECTOR, "#tc-review-panel").text
            assert "Needs a person." in review
            # The words of the tweet, highlighted by their attribution, under the label.
            wait.until(lambda browser: "tarmac" in browser.find_element(By.CSS_SELECTOR, "#tc-words").text)
            # The timer refreshes the metrics strip: it shows the request this browser just made.
            wait.until(lambda browser: "REQUESTS SERVED\n1" in browser.find_element(By.ID, "tc-stats").text.upper())
            stats = driver.find_element(By.ID, "tc-stats").text.lower()
            assert "canary macro-f1" in stats
            assert "p50 / p95 request" in stats
            assert "model " in driver.find_element(By.CSS_SELECTOR, "#tc-header").text
            # The user's markup is shown as text, never as HTML.
            assert not driver.find_elements(By.CSS_SELECTOR, "#tc-latency b ~ b")

            # The impact numbers are the files' numbers (read here from the JSON, not through impact.py).
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            cards = impact_on_page(driver)
            assert set(cards) == {"quality", "speed", "data"}
            quality = cards["quality"]
            assert float(quality["before"]) == metrics["baseline"]["test"]["macro_f1"] == 0.4321
            assert float(quality["after"]) == metrics["test"]["macro_f1"]
            assert (quality["before_text"], quality["after_text"]) == ("0.432", f"{metrics['test']['macro_f1']:.3f}")
            assert "metrics.json" in quality["title"]
            served_p50 = 3.21 if served == "torch-fp32" else 4.56
            assert (float(cards["speed"]["before"]), float(cards["speed"]["after"])) == (9.87, served_p50)
            assert cards["speed"]["before_text"] == "9.9 ms"
            assert "benchmark.json" in cards["speed"]["title"]
            assert (cards["data"]["before_text"], cards["data"]["after_text"]) == ("120 rows", "113 rows")
            assert cards["data"]["change_text"] == "5 repaired"
            driver.save_screenshot(str(screenshot_dir / "app.png"))
            assert (screenshot_dir / "app.png").stat().st_size > 10_000

            for text in ("great crew", "worst delay ever"):
                httpx.post(
                    base_url + "/v1/feedback",
                    json={"text": text, "predicted": "neutral", "correct": "positive"},
                    timeout=10,
                ).raise_for_status()
            load = send_load(base_url, [(text, "") for text in FALLBACK_TEXTS], duration_s=8.0)
            assert load["failed"] == 0
            assert load["predicted"] > 50  # drift is scored from 50 inputs on
            open_tab(driver, "Live metrics")
            states = wait_for_plots(driver, LIVE_PLOTS)
            assert states["tc-plot-latency"]["lines"] == 4
            assert set(states["tc-plot-f1"]["legend"]) >= {"corrections"}
            assert states["tc-plot-mix"]["bars"] == 2 * len(LABELS)
            assert "threshold" in states["tc-plot-psi"]["legend"]
            mark_plots(driver, LIVE_PLOTS)
            send_load(base_url, [(text, "") for text in FALLBACK_TEXTS], duration_s=3.0)
            time.sleep(2.5)  # at least one refresh of the Live tab (metrics_refresh_s is 2 s)
            for plot in LIVE_PLOTS:
                # Updated in place: the same <svg>, so no rebuild and no flash.
                assert plot_state(driver, plot)["probe"] == "1", plot
            assert plot_state(driver, "tc-plot-latency")["line_d"] != states["tc-plot-latency"]["line_d"]

            open_tab(driver, "Model")
            slices = wait_for_plots(driver, [SLICES_PLOT])[SLICES_PLOT]
            assert slices["bars"] == 3  # the whole split and the two slices of metrics.json
            assert any("United (4, small)" in (label or "") and "0.72" in label for label in slices["aria"])
        finally:
            driver.quit()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
