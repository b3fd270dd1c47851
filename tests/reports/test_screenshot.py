"""screenshot.py without a browser: the load it sends, the texts it picks, the PNGs and the waits.

The browser itself is driven by the browser test (``tests/serving/test_app_e2e.py``, ``make test-browser``).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from tests.serving_helpers import KeywordPredictor, make_settings, running_server
from tweet_classifier.reports import screenshot
from tweet_classifier.serving.service import ClassifierService


class FakeDriver:
    """The few WebDriver calls the helpers make, with plot states scripted per call."""

    def __init__(self, states: list[dict | None] | None = None, tabs: tuple[str, ...] = ()) -> None:
        self.states = list(states or [])
        self.tabs = [FakeTab(name) for name in tabs]
        self.window: tuple[int, int] | None = None

    def execute_script(self, script: str, *args: object) -> object:
        if "scrollHeight" in script:
            return 2400
        if script == screenshot.PLOT_STATE_JS:
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return None

    def find_elements(self, by: str, selector: str) -> list:
        return self.tabs

    def set_window_size(self, width: int, height: int) -> None:
        self.window = (width, height)

    def get_screenshot_as_png(self) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (64, 32), (3, 105, 161)).save(buffer, format="PNG")
        return buffer.getvalue()


class FakeTab:
    def __init__(self, text: str) -> None:
        self.text = text
        self.clicked = False

    def click(self) -> None:
        self.clicked = True


def test_send_load_classifies_and_sends_labelled_rows_as_corrections(tmp_path) -> None:
    service = ClassifierService(make_settings(tmp_path), loader=lambda model, revision: KeywordPredictor())
    service.start(background_checks=False)
    rows = [("great crew, thanks", "positive"), ("worst delay", "negative"), ("what time?", "")]
    with running_server(service, with_ui=False) as base_url:
        counts = screenshot.send_load(base_url, rows, duration_s=1.0, clients=2)
    assert counts["failed"] == 0
    assert counts["predicted"] > 4
    assert 0 < counts["corrections"] < counts["predicted"]
    assert service.metrics()["live_f1"]["corrections"]["n"] == counts["corrections"]


def test_labelled_texts_fall_back_to_the_canary_rows_then_to_built_in_tweets(tmp_path) -> None:
    assert screenshot.labelled_texts(tmp_path) == [(text, "") for text in screenshot.FALLBACK_TEXTS]
    rows = [{"text": "@user thanks", "label": "positive"}, {"text": "@user late again", "label": "negative"}]
    (tmp_path / "canary.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    assert screenshot.labelled_texts(tmp_path, limit=1) == [("@user thanks", "positive")]


def test_save_png_writes_a_palette_png(tmp_path) -> None:
    path = screenshot.save_png(FakeDriver(), tmp_path / "shots" / "first.png")
    with Image.open(path) as image:
        assert image.mode == "P"
        assert image.size == (64, 32)


def test_full_page_grows_the_window_to_the_page(monkeypatch) -> None:
    monkeypatch.setattr(screenshot.time, "sleep", lambda seconds: None)
    driver = FakeDriver()
    screenshot.full_page(driver)
    assert driver.window == (1400, 2440)


def test_open_tab_clicks_the_named_tab_or_says_which_is_missing() -> None:
    driver = FakeDriver(tabs=("Classify", "Live metrics"))
    screenshot.open_tab(driver, "Live metrics")
    assert [tab.clicked for tab in driver.tabs] == [False, True]
    with pytest.raises(screenshot.ScreenshotError, match="no tab 'Model'"):
        screenshot.open_tab(driver, "Model")


def test_wait_for_plots_returns_once_every_plot_has_marks_and_names_the_empty_ones(monkeypatch) -> None:
    monkeypatch.setattr(screenshot.time, "sleep", lambda seconds: None)
    empty = {"svg": True, "lines": 0, "bars": 0}
    drawn = {"svg": True, "lines": 2, "bars": 0}
    driver = FakeDriver([empty, drawn, drawn])
    assert screenshot.wait_for_plots(driver, ["a"], timeout_s=5) == {"a": drawn}
    with pytest.raises(screenshot.ScreenshotError, match="drew no data within 0 s: a"):
        screenshot.wait_for_plots(FakeDriver([None]), ["a"], timeout_s=0)


def test_chrome_without_the_browser_says_what_to_install(monkeypatch) -> None:
    monkeypatch.setattr(screenshot, "CHROMIUM", Path("/nonexistent/chromium"))
    with pytest.raises(screenshot.ScreenshotError, match="apt-get install -y chromium chromium-driver"):
        screenshot.chrome(Path("/tmp/profile"))
