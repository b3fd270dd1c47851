"""lossy_mojibake.py: the residue table is what the round trip produces, repairs only unambiguous residues,
and the cleaning report counts what is left after cleaning."""

from __future__ import annotations

import runpy
from pathlib import Path

import ftfy
import pytest

from tests.conftest import REPO_ROOT
from tests.data.test_data import LABELS, all_rows, make_config
from tweet_classifier.data.lossy_mojibake import (
    MEASURED_RESOLUTIONS,
    count_lossy_residues,
    lossy_round_trip,
    repair_lossy_mojibake,
    repair_table,
    residues,
)
from tweet_classifier.data.prepare import prepare_data


@pytest.mark.parametrize(
    ("residue", "character"),
    [
        ("â€ù", "”"),  # E2 80 9D: 0x9D is undefined in Windows-1252 and passed through, reading as ù
        ("_Ÿ˜‚", "😂"),  # F0 9F 98 82: ð is not in Mac Roman and became _
        ("_Ÿ™è", "🙏"),  # F0 9F 99 8F: ð lost, 0x8F passed through
        ("ï¸è", "\ufe0f"),  # EF B8 8F: the emoji variation selector
        ("â€_", "…"),  # ambiguous (13 characters), resolved by the airline measurement
        ("âù_", "❤"),  # likewise
        ("ÑÅ", "с"),  # D1 81: Cyrillic es, 0x81 passed through
    ],
)
def test_table_entries(residue: str, character: str) -> None:
    assert lossy_round_trip(character) == residue
    assert repair_table()[residue] == character
    assert count_lossy_residues(residue) == 1
    # ftfy cannot undo these: that is why the table exists.
    assert ftfy.fix_text(residue) != character


def test_residues_ftfy_can_fix_are_not_in_the_table() -> None:
    # E2 80 A2 reads "â€¢" without loss: ftfy's job, not this table's.
    assert lossy_round_trip("•") == "â€¢"
    assert "â€¢" not in residues()
    assert ftfy.fix_text("â€¢") == "•"


@pytest.mark.parametrize(("residue", "count"), [("âù_", 13), ("_Ÿ˜_", 13), ("â€_", 13)])
def test_ambiguous_residues_are_not_guessed(residue: str, count: int) -> None:
    assert len(residues()[residue]) == count
    if residue not in MEASURED_RESOLUTIONS:
        assert residue not in repair_table()
        assert repair_lossy_mojibake(f"I {residue} NY") == f"I {residue} NY"
        assert count_lossy_residues(f"I {residue} NY") == 1


def test_every_entry_is_derived_from_the_round_trip() -> None:
    table = repair_table()
    for residue, character in table.items():
        assert lossy_round_trip(character) == residue
        if residue not in MEASURED_RESOLUTIONS:
            assert residues()[residue] == (character,)
    assert len(table) > 50_000


@pytest.mark.parametrize(
    ("raw", "repaired"),
    [
        ("@united â€ùthanksâ€ù for nothing", "@united ”thanks” for nothing"),
        ("so happy _Ÿ˜‚_Ÿ˜‚ see you soonâ€_", "so happy 😂😂 see you soon…"),
        ("smile _Ÿ˜_ stays: 13 emoji produce it", "smile _Ÿ˜_ stays: 13 emoji produce it"),
        ("café crème, naïve, 5 € – plain text", "café crème, naïve, 5 € – plain text"),
        ("under_score and Ãœber", "under_score and Ãœber"),
        ("", ""),
    ],
)
def test_repair_in_running_text(raw: str, repaired: str) -> None:
    assert repair_lossy_mojibake(raw) == repaired
    assert repair_lossy_mojibake(repaired) == repaired


def test_report_counts_defects_before_and_after_cleaning(tmp_path: Path) -> None:
    texts = [
        "thanks â€ùgreatâ€ù flight",
        "lol _Ÿ˜‚ delayed again",
        "ambiguous _Ÿ˜_ smile",
        "fish &amp; chips",
        "zero\u200bwidth space",
        "donâ€™t ever",
        *[f"plain tweet {index}" for index in range(24)],
    ]
    path = tmp_path / "export.csv"
    lines = ["text,label"] + [f'"{text}",{LABELS[index % 3]}' for index, text in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    prepared = prepare_data(make_config(path))
    report = prepared.report
    assert report.findings["rows_with_lossy_mojibake_residue"] == 3
    assert report.after_cleaning["rows_with_lossy_mojibake_residue"] == 1
    assert report.findings["rows_with_html_entities"] == 1
    assert report.after_cleaning["rows_with_html_entities"] == 0
    assert report.findings["rows_with_control_characters"] == 1
    assert report.after_cleaning["rows_with_control_characters"] == 0
    assert report.findings["rows_with_mojibake"] == 1
    assert report.after_cleaning["rows_with_mojibake"] == 0
    assert report.step("repair:lossy_mojibake").rows_touched == 2
    cleaned = set(all_rows(prepared)["text"])
    assert 'thanks "great" flight' in cleaned
    assert "lol face with tears of joy delayed again" in cleaned
    assert "| rows_with_lossy_mojibake_residue | 3 | 1 |" in report.to_markdown()
    off = prepare_data(make_config(path, cleaning={"repair_lossy_mojibake": False}))
    assert off.report.after_cleaning["rows_with_lossy_mojibake_residue"] == 3
    # Without the repair, NFKC and ftfy turn "_Ÿ˜‚" into "_Ÿ ̃'": garbage no table can read back, which is
    # why the repair (and the residue count after cleaning) works on the text before normalization.
    assert "lol _Ÿ ̃' delayed again" in set(all_rows(off)["text"])


def test_table_script_measures_residues_against_the_clean_copy(tmp_path: Path, capsys) -> None:
    main = runpy.run_path(str(REPO_ROOT / "scripts" / "lossy_mojibake_table.py"))["main"]
    tweets = [f"tweet number {index:03d} says hello {char} bye" for index, char in enumerate("”…😂❤😊😭" * 3)]
    clean = tmp_path / "clean.csv"
    clean.write_text("text\n" + "\n".join(tweets) + "\n", encoding="utf-8")
    legacy = tmp_path / "legacy.csv"
    legacy.write_bytes(lossy_round_trip(clean.read_text(encoding="utf-8")).encode("mac_roman"))
    assert main(["--legacy", str(legacy), "--clean", str(clean)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("18 round-trip residues in legacy.csv (5 distinct); 12 repairable.")
    assert "| `â€ù` | 3 | 1: ” | ” | ” 3 |" in printed
    assert "| `_Ÿ˜_` | 6 | 13: 😊 😎 😚 😞 😤 😦 ... | (left: ambiguous) | 😊 3, 😭 3 |" in printed
