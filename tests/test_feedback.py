"""feedback.py: the correction record the server writes and training reads back."""

from __future__ import annotations

from tweet_classifier.feedback import merge_records, new_record, read_records


def test_new_record_has_the_fields_training_reads_and_a_fresh_id() -> None:
    first = new_record("lost my bag", "neutral", "negative", "abc123")
    second = new_record("lost my bag", "neutral", "negative", "abc123")
    assert set(first) == {"id", "time", "model_version", "text", "predicted", "correct"}
    assert (first["text"], first["predicted"], first["correct"], first["model_version"]) == (
        "lost my bag",
        "neutral",
        "negative",
        "abc123",
    )
    assert first["id"] != second["id"]
    assert merge_records([first], [first, second]) == [first, second]


def test_read_records_keeps_objects_and_names_the_lines_that_are_not(tmp_path) -> None:
    path = tmp_path / "feedback.jsonl"
    path.write_text('{"correct": "positive"}\n\n[1, 2]\n{"correct": "neg', encoding="utf-8")
    records, unreadable = read_records(path)
    assert records == [{"correct": "positive"}]
    assert unreadable == [3, 4]
