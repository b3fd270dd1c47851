"""feedback_store.py: the local corrections file survives restarts and torn lines, stays bounded, loses nothing."""

from __future__ import annotations

import json
import threading

from tweet_classifier.serving.feedback_store import FeedbackStore
from tweet_classifier.serving.monitor import ServingMonitor

LABELS = ["negative", "neutral", "positive"]


def test_feedback_store_persists_across_restarts_and_skips_torn_lines(tmp_path) -> None:
    path = tmp_path / "runs" / "feedback.jsonl"
    store = FeedbackStore(path, max_records=100, max_bytes=1_000_000)
    assert store.load() == []
    store.append({"predicted": "negative", "correct": "neutral", "text": "ok 🙂"})
    store.append({"predicted": "positive", "correct": "positive", "text": "great"})
    with path.open("a", encoding="utf-8") as stream:
        stream.write('{"predicted": "neg')  # a crash in the middle of a write
    restarted = FeedbackStore(path, max_records=100, max_bytes=1_000_000)
    records = restarted.load()
    assert [record["correct"] for record in records] == ["neutral", "positive"]
    assert records[0]["text"] == "ok 🙂"
    monitor = ServingMonitor(LABELS)
    assert monitor.load_corrections([*records, {"predicted": "x", "correct": "y"}]) == 2
    assert monitor.snapshot()["live_f1"]["corrections"]["n"] == 2


def test_feedback_store_trims_to_newest_records_when_over_the_record_cap(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl", max_records=10, max_bytes=1_000_000)
    for index in range(11):
        store.append({"predicted": "negative", "correct": "negative", "index": index})
    lines = (tmp_path / "feedback.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["index"] for line in lines] == list(range(3, 11))
    assert len(store) == 8


def test_feedback_store_trims_when_over_the_byte_cap(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl", max_records=10_000, max_bytes=2_000)
    for index in range(100):
        store.append({"predicted": "negative", "correct": "neutral", "text": "x" * 50, "index": index})
    size = (tmp_path / "feedback.jsonl").stat().st_size
    assert size <= 2_000
    kept = FeedbackStore(tmp_path / "feedback.jsonl", 10_000, 2_000).load()
    assert kept[-1]["index"] == 99
    assert len(kept) >= 5


def test_feedback_store_appends_from_many_threads_without_losing_lines(tmp_path) -> None:
    store = FeedbackStore(tmp_path / "feedback.jsonl", max_records=10_000, max_bytes=10_000_000)

    def worker(offset: int) -> None:
        for index in range(25):
            store.append({"predicted": "neutral", "correct": "neutral", "index": offset + index})

    threads = [threading.Thread(target=worker, args=(offset * 100,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    indices = sorted(record["index"] for record in FeedbackStore(tmp_path / "feedback.jsonl", 10_000, 10**7).load())
    assert indices == sorted(offset * 100 + index for offset in range(4) for index in range(25))
