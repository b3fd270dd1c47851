"""End to end against ``python -m tweet_classifier.serve`` in a subprocess: load test and headless Chromium."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from tests.serving_helpers import free_port
from tweet_classifier.artifact import CALIBRATION_NAME, WEIGHTS_NAME, file_sha256, write_json_atomic
from tweet_classifier.latency import run_load, server_process

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


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


@pytest.mark.browser
def test_browser_classifies_a_tweet_and_shows_live_metrics(tiny_model_dir, tmp_path) -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install selenium")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1300",
    ):
        options.add_argument(flag)
    screenshot_dir = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    screenshot_dir.mkdir(parents=True, exist_ok=True)
    env = {"FEEDBACK_FILE": str(tmp_path / "feedback.jsonl")}
    # A review threshold no tiny-model confidence reaches: the classify view must say "Needs a person".
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    calibration = {"format_version": 1, "temperature": 1.0, "review": {"threshold": 0.99}}
    write_json_atomic(model / CALIBRATION_NAME, calibration | {"weights_sha256": file_sha256(model / WEIGHTS_NAME)})
    with server_process(model, free_port(), extra_env=env) as base_url:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.get(base_url + "/")
            wait = WebDriverWait(driver, 60)
            textbox = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#tc-text textarea")))
            # ChromeDriver types only BMP characters, so no emoji here (the API tests cover emoji).
            textbox.send_keys("@united 3 hours on the tarmac and still no update <b>ridiculous</b> &amp; rude")
            driver.find_element(By.CSS_SELECTOR, "#tc-classify").click()
            wait.until(
                lambda browser: any(
                    label in browser.find_element(By.CSS_SELECTOR, "#tc-label").text
                    for label in ("negative", "neutral", "positive")
                )
            )
            review = driver.find_element(By.CSS_SELECTOR, "#tc-review-panel").text
            assert "Needs a person." in review
            # The words of the tweet, highlighted by their attribution, under the label.
            wait.until(lambda browser: "tarmac" in browser.find_element(By.CSS_SELECTOR, "#tc-words").text)
            # The timer refreshes the metrics strip: it shows the request this browser just made.
            wait.until(lambda browser: "REQUESTS SERVED\n1" in browser.find_element(By.ID, "tc-stats").text.upper())
            stats = driver.find_element(By.ID, "tc-stats").text.lower()
            assert "canary macro-f1" in stats
            assert "p50 / p95 request" in stats
            header = driver.find_element(By.CSS_SELECTOR, "#tc-header").text
            assert "Tweet classifier" in header
            assert "model " in header
            # The user's markup is shown as text, never as HTML.
            assert not driver.find_elements(By.CSS_SELECTOR, "#tc-latency b ~ b")
            screenshot = screenshot_dir / "app.png"
            driver.save_screenshot(str(screenshot))
            assert screenshot.stat().st_size > 10_000
        finally:
            driver.quit()
    shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
