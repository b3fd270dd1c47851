"""Headless Chromium over the served app: what a visitor sees, checked and saved as PNGs.

``make screenshot`` (``scripts/screenshot.py --model DIR --out docs/screenshots``) serves the model the
way the Space does (``app.py``'s server in a subprocess), then in Chromium: classifies a tweet and saves
the first screen (impact row + prediction), sends a short load of the folder's own labelled canary
tweets over ``/v1/predict`` (and their labels as corrections over ``/v1/feedback``), opens the Live
metrics tab and saves it once every plot has drawn data, then the Model tab. Before saving, it checks
that the impact numbers on the page are the model folder's and that each plot has marks.

The page helpers here are shared with the browser test (``tests/serving/test_app_e2e.py``). Selenium is a
development dependency, imported only by the functions that drive the browser.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx

from tweet_classifier.artifact import CANARY_NAME
from tweet_classifier.errors import TweetClassifierError

logger = logging.getLogger(__name__)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
LIVE_PLOTS = ("tc-plot-latency", "tc-plot-throughput", "tc-plot-f1", "tc-plot-mix", "tc-plot-psi")
SLICES_PLOT = "tc-plot-slices"
WINDOW = (1400, 1000)
# ChromeDriver types only BMP characters, so no emoji in typed text.
FIRST_TWEET = "@united 3 hours on the tarmac and still no update. Ridiculous &amp; rude"
FALLBACK_TEXTS = (
    "@united thanks for the quick rebooking, great crew!",
    "@AmericanAir 3 hours on the tarmac and no updates http://t.co/x",
    "@SouthwestAir what time does boarding start?",
    "@JetBlue lost my bag AGAIN &amp; nobody answers",
)

# The marks Vega's SVG renderer drew in one plot: line paths with a drawn ``d``, bars, legend entries,
# and each mark's aria-label (its field values). ``probe`` survives only while the same <svg> stays.
PLOT_STATE_JS = """
const root = document.getElementById(arguments[0]);
if (!root) return null;
const svg = root.querySelector('svg.marks');
if (!svg) return {svg: false, lines: 0, bars: 0};
const lines = [...svg.querySelectorAll('g.mark-line path')].filter(p => (p.getAttribute('d') || '').length > 10);
const bars = [...svg.querySelectorAll('g.mark-rect path')].filter(p => (p.getAttribute('d') || '').length > 5);
return {svg: true, probe: svg.dataset.probe || null, lines: lines.length, bars: bars.length,
        line_d: lines.map(p => p.getAttribute('d')),
        legend: [...svg.querySelectorAll('g.role-legend-label text')].map(t => t.textContent),
        aria: [...svg.querySelectorAll('g.mark-rect path, g.mark-line path')].map(p => p.getAttribute('aria-label'))};
"""


class ScreenshotError(TweetClassifierError):
    """The browser cannot be started or the page does not show what it must."""


def chrome(profile: Path, window: tuple[int, int] = WINDOW) -> Any:
    """Headless Chromium (Debian's chromium + chromium-driver) with a private profile."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise ScreenshotError(
            "needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

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
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={profile}",
        f"--window-size={window[0]},{window[1]}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


def classify_in_page(driver: Any, text: str, labels: Sequence[str], timeout_s: float = 60.0) -> str:
    """Type ``text``, press Classify, wait for the prediction; returns the label widget's text."""
    # Deferred: selenium and PIL load only when screenshots are taken (a dev tool the Space does not install).
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, timeout_s)
    textbox = wait.until(expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "#tc-text textarea")))
    textbox.send_keys(text)
    driver.find_element(By.CSS_SELECTOR, "#tc-classify").click()
    wait.until(lambda browser: any(label in browser.find_element(By.ID, "tc-label").text for label in labels))
    return str(driver.find_element(By.ID, "tc-label").text)


def impact_on_page(driver: Any, timeout_s: float = 60.0) -> dict[str, dict[str, str]]:
    """Each impact card's shown texts, unrounded ``data-value``s and hover title, by key."""
    # Deferred: selenium and PIL load only when screenshots are taken (a dev tool the Space does not install).
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout_s).until(lambda browser: browser.find_elements(By.CSS_SELECTOR, ".tc-impact-card"))
    cards = {}
    for card in driver.find_elements(By.CSS_SELECTOR, ".tc-impact-card"):
        before = card.find_element(By.CSS_SELECTOR, ".tc-before")
        after = card.find_element(By.CSS_SELECTOR, ".tc-after")
        cards[str(card.get_attribute("id")).removeprefix("tc-impact-")] = {
            "before_text": before.text,
            "after_text": after.text,
            "before": before.get_attribute("data-value"),
            "after": after.get_attribute("data-value"),
            "change_text": card.find_element(By.CSS_SELECTOR, ".tc-change").text,
            "title": card.get_attribute("title"),
        }
    return cards


def open_tab(driver: Any, name: str) -> None:
    # Deferred: selenium and PIL load only when screenshots are taken (a dev tool the Space does not install).
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[role='tab']"):
        if button.text.strip() == name:
            button.click()
            return
    raise ScreenshotError(f"the page has no tab {name!r}")


def plot_state(driver: Any, plot_id: str) -> dict[str, Any] | None:
    state = driver.execute_script(PLOT_STATE_JS, plot_id)
    return dict(state) if state else None


def wait_for_plots(driver: Any, plot_ids: Sequence[str], timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
    """Wait until every plot has drawn lines or bars; returns each plot's marks."""
    deadline = time.monotonic() + timeout_s
    while True:
        states = {plot: plot_state(driver, plot) for plot in plot_ids}
        if all(state and (state["lines"] or state["bars"]) for state in states.values()):
            return states  # type: ignore[return-value]
        if time.monotonic() > deadline:
            empty = [plot for plot, state in states.items() if not state or not (state["lines"] or state["bars"])]
            raise ScreenshotError(f"these plots drew no data within {timeout_s:.0f} s: {', '.join(empty)}")
        time.sleep(0.5)


def mark_plots(driver: Any, plot_ids: Sequence[str]) -> None:
    """Tag each plot's <svg>: the tag survives a data update and vanishes if the view is rebuilt (a flash)."""
    for plot in plot_ids:
        driver.execute_script(
            "const s = document.getElementById(arguments[0]).querySelector('svg.marks'); if (s) s.dataset.probe='1';",
            plot,
        )


def labelled_texts(model_dir: Path, limit: int = 400) -> list[tuple[str, str]]:
    """Real labelled tweets to send: the raw test tweets of the model's own run config when its data is
    here (what users type: handles, URLs, emoji), else the folder's canary rows (normalized text, which
    the drift monitor rightly sees as different from raw input), else a few built-in unlabelled ones."""
    try:
        # Deferred: the data stage (pandas, cleanlab) loads only when a split is needed.
        from tweet_classifier.data.prepare import prepare_data
        from tweet_classifier.inference.export import resolve_run_config

        test = prepare_data(resolve_run_config(model_dir, None, [])).test.head(limit)
        return list(zip(test["raw_text"].astype(str), test["label"].astype(str), strict=True))
    except (TweetClassifierError, OSError, KeyError, ValueError) as error:
        logger.info("no raw test split for %s (%s): sending the canary rows", model_dir, error)
    path = model_dir / CANARY_NAME
    rows: list[tuple[str, str]] = []
    if path.is_file():
        with path.open(encoding="utf-8") as stream:
            for line in stream:
                record = json.loads(line)
                rows.append((str(record["text"]), str(record["label"])))
                if len(rows) >= limit:
                    break
    return rows or [(text, "") for text in FALLBACK_TEXTS]


def send_load(base_url: str, rows: Sequence[tuple[str, str]], duration_s: float, clients: int = 2) -> dict[str, int]:
    """``clients`` raw-HTTP clients classify ``rows`` over ``/v1/predict`` for ``duration_s``; every
    fourth labelled row's label goes to ``/v1/feedback`` as a person's correction would."""
    counts = {"predicted": 0, "corrections": 0, "failed": 0}
    lock = threading.Lock()
    deadline = time.monotonic() + duration_s

    def client(index: int) -> None:
        with httpx.Client(base_url=base_url, timeout=30) as http:
            position = index
            while time.monotonic() < deadline:
                text, label = rows[position % len(rows)]
                position += clients
                try:
                    response = http.post("/v1/predict", json={"text": text})
                    response.raise_for_status()
                    outcome = "predicted"
                    if label and position % 4 == 0:
                        predicted = response.json()["label"]
                        http.post(
                            "/v1/feedback", json={"text": text, "predicted": predicted, "correct": label}
                        ).raise_for_status()
                        with lock:
                            counts["corrections"] += 1
                except httpx.HTTPError:
                    outcome = "failed"
                with lock:
                    counts[outcome] += 1

    threads = [threading.Thread(target=client, args=(index,), daemon=True) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration_s + 60)
    return counts


def save_png(driver: Any, path: Path, colors: int = 256) -> Path:
    """The window as a palette PNG (a UI has few colours: about a third of the RGB file's size)."""
    # Deferred: selenium and PIL load only when screenshots are taken (a dev tool the Space does not install).
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.open(BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def wait_for(driver: Any, condition: Any, timeout_s: float) -> Any:
    # Deferred: selenium and PIL load only when screenshots are taken (a dev tool the Space does not install).
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(condition)


def full_page(driver: Any, width: int = WINDOW[0]) -> None:
    """Grow the window to the page's height, so one screenshot holds the whole tab."""
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(width, max(WINDOW[1], height + 40))
    time.sleep(1.0)


def take_screenshots(
    base_url: str, model_dir: Path, out_dir: Path, labels: Sequence[str], load_s: float, profile: Path
) -> dict[str, Any]:
    """Drive the page (see the module docstring); returns what was checked and the files written."""
    report: dict[str, Any] = {"files": []}
    driver = chrome(profile)
    try:
        driver.get(base_url + "/")
        report["prediction"] = classify_in_page(driver, FIRST_TWEET, labels)
        report["impact"] = impact_on_page(driver)
        time.sleep(2.5)  # one strip refresh, so it counts this request
        report["files"].append(save_png(driver, out_dir / "first-screen.png"))
        # The classify view below the fold: the review flag and the words highlighted by attribution.
        wait_for(driver, lambda browser: browser.find_element("id", "tc-words").text.strip(), 60)
        driver.execute_script("document.getElementById('tc-review-panel').scrollIntoView({block: 'start'})")
        time.sleep(1.0)
        report["files"].append(save_png(driver, out_dir / "classify.png"))

        texts = labelled_texts(model_dir)
        report["load"] = send_load(base_url, texts, load_s)
        open_tab(driver, "Live metrics")
        wait_for_plots(driver, LIVE_PLOTS)
        mark_plots(driver, LIVE_PLOTS)
        before = {plot: plot_state(driver, plot) for plot in LIVE_PLOTS}
        more = send_load(base_url, texts, 6.0)
        report["load"] |= {f"after_{key}": value for key, value in more.items()}
        time.sleep(2.5)
        after = {plot: plot_state(driver, plot) for plot in LIVE_PLOTS}
        report["plots"] = {
            plot: {
                "lines": after[plot]["lines"],
                "bars": after[plot]["bars"],
                "legend": after[plot]["legend"],
                # Updated in place: the same <svg> (no rebuild, no flash) with new data.
                "same_svg": after[plot]["probe"] == "1",
                "data_changed": after[plot]["line_d"] != before[plot]["line_d"],
            }
            for plot in LIVE_PLOTS
        }
        full_page(driver)
        report["files"].append(save_png(driver, out_dir / "live-metrics.png"))
        driver.set_window_size(*WINDOW)

        open_tab(driver, "Model")
        slices = wait_for_plots(driver, [SLICES_PLOT])[SLICES_PLOT]
        report["slices"] = {"bars": slices["bars"], "aria": slices["aria"]}
        driver.execute_script("document.getElementById(arguments[0]).scrollIntoView({block: 'center'})", SLICES_PLOT)
        time.sleep(1.0)
        report["files"].append(save_png(driver, out_dir / "model.png"))
    finally:
        driver.quit()
    report["files"] = [str(path) for path in report["files"]]
    return report


def predict_p50_with_plots(
    base_url: str,
    profile: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    rounds: int = 2,
    seconds: float = 15.0,
    interval_s: float = 0.05,
) -> list[dict[str, Any]]:
    """/v1/predict latency from one paced raw-HTTP client, with no browser and with a browser on the
    Live metrics tab (every plot refreshing), taking turns ``rounds`` times so drift hits both alike."""
    # Deferred: scikit-learn (metrics) and the HTTP clients load only for this measurement.
    from tweet_classifier.metrics import percentile_summary
    from tweet_classifier.serving.latency import paced_http_clients

    paced_http_clients(base_url, 1, 3.0, interval_s, texts)  # warm-up
    rows = []
    for round_number in range(1, rounds + 1):
        for plots_open in (False, True):
            driver = None
            if plots_open:
                driver = chrome(profile)
                driver.get(base_url + "/")
                classify_in_page(driver, FIRST_TWEET, labels)
                open_tab(driver, "Live metrics")
                wait_for_plots(driver, LIVE_PLOTS[:2])
            try:
                measured = paced_http_clients(base_url, 1, seconds, interval_s, texts)
            finally:
                if driver is not None:
                    driver.quit()
            client = percentile_summary(measured["client_ms"])
            server = percentile_summary(measured["server_ms"])
            rows.append(
                {
                    "round": round_number,
                    "plots_open": plots_open,
                    "n": client["n"],
                    "failed": len(measured["failures"]),
                    "client_p50_ms": client["p50"],
                    "client_p95_ms": client["p95"],
                    "server_p50_ms": server["p50"],
                }
            )
    return rows


def format_plots_latency(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| round | Live tab open | requests | failed | p50 ms (client) | p95 ms (client) | p50 ms (server) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['round']} | {'yes' if row['plots_open'] else 'no'} | {row['n']} | {row['failed']} "
            f"| {row['client_p50_ms']:.2f} | {row['client_p95_ms']:.2f} | {row['server_p50_ms']:.2f} |"
        )
    return "\n".join(lines) + "\n"
