"""Undo the residue of a lossy UTF-8 -> Windows-1252 -> Mac Roman round trip, where it is unambiguous.

Some exports (the airline data's older "Data for Everyone" CSV is one) took UTF-8 bytes, read them as
Windows-1252 and saved the result as Mac Roman. Each byte of a UTF-8 sequence then became one Mac Roman
character, with two kinds of loss that ftfy cannot undo: a Windows-1252 character that Mac Roman lacks
(``Š Ž š ž ¦ ² ³ ¹ ¼ ½ ¾``, the soft hyphen, ``ð`` ...) was written as ``_``, and a byte Windows-1252
leaves undefined (0x81 0x8D 0x8F 0x90 0x9D) went through unchanged and reads as a Mac Roman letter.
So ``”`` (E2 80 9D) reads ``â€ù``, ``😂`` (F0 9F 98 82) reads ``_Ÿ˜‚``, ``❤`` reads ``âù_``.

The table is derived, not typed: ``lossy_round_trip`` replays the conversion on every assigned code
point, and a residue is repaired only when exactly one character produces it (``â€ù`` -> ``”``; not
``_Ÿ˜_``, which ``😊``, ``😭``, ``😞`` and ten other emoji all produce). Two ambiguous residues have a
measured resolution: ``â€_`` comes from ``…`` or twelve rarer characters and ``âù_`` from ``❤`` or twelve
other dingbats, and in the airline export every occurrence that can be aligned with the clean UTF-8 copy is
``…`` (30) or ``❤`` (14); ``_Ÿ˜_`` aligns with three different emoji and is left alone
(``scripts/lossy_mojibake_table.py`` prints the table with each entry's derivation and that measurement).
Residues are only looked for as
whole UTF-8-length runs with at least two non-ASCII characters, so ordinary text is left alone.

This is a data repair (``data.py``'s repair step), not part of ``text.normalize_tweet``: it needs the
knowledge that a file went through this round trip, which serving text does not have.
"""

from __future__ import annotations

import functools
import sys
import unicodedata

# Ambiguous residues with a measured resolution: in the airline export every occurrence that aligns with
# the clean UTF-8 copy is this character (… 30 of 30, ❤ 14 of 14; scripts/lossy_mojibake_table.py).
MEASURED_RESOLUTIONS = {"â€_": "…", "âù_": "❤"}
# What Mac Roman writes for a Windows-1252 character it does not have.
_LOST = b"_"
_UTF8_LENGTHS = (2, 3, 4)


def _undefined_in_cp1252(value: int) -> bool:
    try:
        bytes([value]).decode("cp1252")
    except UnicodeDecodeError:
        return True
    return False


@functools.cache
def _byte_map() -> dict[int, bytes]:
    """Each byte 0x80-0xFF as the round trip writes it (Mac Roman bytes)."""
    mapping = {}
    for value in range(0x80, 0x100):
        if _undefined_in_cp1252(value):
            # The converter passed the byte through.
            mapping[value] = bytes([value])
            continue
        try:
            mapping[value] = bytes([value]).decode("cp1252").encode("mac_roman")
        except UnicodeEncodeError:
            mapping[value] = _LOST
    return mapping


def lossy_round_trip(text: str) -> str:
    """``text`` as the export wrote it: UTF-8 bytes read as Windows-1252, saved as Mac Roman, read back."""
    mapping = _byte_map()
    return b"".join(bytes([value]) if value < 0x80 else mapping[value] for value in text.encode("utf-8")).decode(
        "mac_roman"
    )


def _is_lossy(character: str) -> bool:
    """True when ftfy cannot undo the round trip of ``character`` (a byte was lost or passed through)."""
    mapping = _byte_map()
    return any(
        mapping[value] == _LOST or _undefined_in_cp1252(value) for value in character.encode("utf-8") if value >= 0x80
    )


@functools.cache
def residues() -> dict[str, tuple[str, ...]]:
    """Every lossy residue -> the characters that produce it (all assigned code points; about 1 s, once)."""
    found: dict[str, list[str]] = {}
    for code_point in range(0x80, sys.maxunicode + 1):
        character = chr(code_point)
        if unicodedata.category(character) in ("Cc", "Cn", "Co", "Cs") or not _is_lossy(character):
            continue
        residue = lossy_round_trip(character)
        if sum(not char.isascii() for char in residue) >= 2:
            found.setdefault(residue, []).append(character)
    return {residue: tuple(characters) for residue, characters in found.items()}


@functools.cache
def repair_table() -> dict[str, str]:
    """Residue -> its character, for residues exactly one character produces, plus the measured ones."""
    table = {residue: characters[0] for residue, characters in residues().items() if len(characters) == 1}
    return {**table, **MEASURED_RESOLUTIONS}


def scan_residues(text: str, table: dict[str, object]) -> list[tuple[int, str]]:
    """Positions and residues of ``table`` keys in ``text``, left to right, longest first, not overlapping."""
    hits = []
    position = 0
    while position < len(text):
        for length in reversed(_UTF8_LENGTHS):
            candidate = text[position : position + length]
            if len(candidate) == length and candidate in table:
                hits.append((position, candidate))
                position += length
                break
        else:
            position += 1
    return hits


def repair_lossy_mojibake(text: str) -> str:
    """Replace every unambiguous round-trip residue in ``text`` by the character it came from."""
    if text.isascii():
        return text
    table = repair_table()
    pieces = []
    end = 0
    for position, residue in scan_residues(text, table):
        pieces += [text[end:position], table[residue]]
        end = position + len(residue)
    return "".join(pieces) + text[end:] if pieces else text


def count_lossy_residues(text: str) -> int:
    """Round-trip residues in ``text``, repairable or not (for the cleaning report)."""
    return 0 if text.isascii() else len(scan_residues(text, residues()))
