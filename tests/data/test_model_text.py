"""model_text.py (one repair -> normalize path) and clean.CLEANING_STEPS (one list of cleaning steps)."""

from __future__ import annotations

from pathlib import Path

from tests.data.test_data import LABELS, all_rows, make_config, write_csv
from tweet_classifier.config import CleaningConfig, NormalizeConfig, TextRepair
from tweet_classifier.data.clean import CLEANING_STEPS, cleaning_switches
from tweet_classifier.data.model_text import model_texts, repair_steps
from tweet_classifier.data.prepare import prepare_data
from tweet_classifier.data.switches import LABEL_NOISE

LATE_FLIGHT = TextRepair(name="undo_late_flight", pattern=r"\bLate Flight\b", replacement="late")


def test_repairs_run_in_order_lossy_mojibake_first_then_each_regex() -> None:
    cleaning = CleaningConfig(
        repairs=[LATE_FLIGHT, TextRepair(name="shout", pattern=r"\blate\b", replacement="LATE")],
    )

    steps = repair_steps(cleaning)

    assert [step.name for step in steps] == ["repair:lossy_mojibake", "repair:undo_late_flight", "repair:shout"]
    # The second regex sees the first one's output; the lossy residue â€ù is the quote ” again (which
    # the normalizer then straightens; without the repair ftfy cannot recover it, see below).
    assert model_texts(["so Late Flight â€ùagainâ€ù"], cleaning, NormalizeConfig()) == ['so LATE "again"']


def test_a_switched_off_lossy_repair_is_listed_off_and_not_applied() -> None:
    cleaning = CleaningConfig(repair_lossy_mojibake=False)

    assert [(step.name, step.enabled) for step in repair_steps(cleaning)] == [("repair:lossy_mojibake", False)]
    assert model_texts(["x â€ù y"], cleaning, NormalizeConfig(fix_mojibake=False)) == ["x â€ù y"]


def test_model_texts_reproduce_the_cleaners_text_row_for_row(tmp_path: Path) -> None:
    rows = [
        {"id": str(index), "text": text, "label": LABELS[index % 3]}
        for index, text in enumerate(
            [f"@united Late Flight again #{index} â€ù so tired" for index in range(12)]
            + [f"thanks @delta for flight {index} &amp; the crew 😂😂" for index in range(12)]
            + [f"sooooo neutral https://t.co/x{index}" for index in range(12)]
        )
    ]
    config = make_config(write_csv(tmp_path, rows), cleaning={"repairs": [LATE_FLIGHT.model_dump()]})

    cleaned = all_rows(prepare_data(config))

    assert cleaned["repaired"].any()
    assert model_texts(cleaned["raw_text"].tolist(), config.cleaning, config.normalize) == cleaned["text"].tolist()


def test_every_report_step_comes_from_one_entry_of_the_step_list(tmp_path: Path) -> None:
    rows = [{"id": str(index), "text": f"tweet {index}", "label": LABELS[index % 3]} for index in range(30)]
    config = make_config(write_csv(tmp_path, rows), cleaning={"repairs": [LATE_FLIGHT.model_dump()]})

    written = [step.name for step in prepare_data(config).report.steps]

    listed = [step.name for step in CLEANING_STEPS]
    # The id step writes two rows (three with data.id_column set: id_sanity first), the repair step one per
    # repair; split_grouping belongs to the split that follows.
    expected_groups = {
        "id_conflicts": ["id_conflicts", "repeated_ids"],
        "repairs": ["repair:lossy_mojibake", "repair:undo_late_flight"],
    }
    expected = [name for entry in listed for name in expected_groups.get(entry, [entry])]
    assert [name for name in written if name != "split_grouping"] == expected


def test_the_switches_are_the_steps_own_once_each_then_the_audit() -> None:
    switches = cleaning_switches()

    assert len(switches) == len(set(map(id, switches)))
    assert switches[-1] is LABEL_NOISE
    for switch in switches[:-1]:
        assert any(switch in step.switches for step in CLEANING_STEPS)
