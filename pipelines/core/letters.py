"""Option letters: the one convention for multiple-choice answers. Options are lettered
A, B, C ... in order (at most eight); a choice turn's gold answer is its option's letter."""

from __future__ import annotations

LETTERS = "ABCDEFGH"
# The letters as regex character classes, for every pattern that finds a letter in text.
UPPER = f"[{LETTERS[0]}-{LETTERS[-1]}]"  # [A-H]
LOWER = UPPER.lower()  # [a-h]
ANY_CASE = f"[{LETTERS[0]}-{LETTERS[-1]}{LETTERS[0].lower()}-{LETTERS[-1].lower()}]"  # [A-Ha-h]


def letter(index: int) -> str:
    """The letter of the option at `index` (0 -> "A")."""
    if not 0 <= index < len(LETTERS):
        raise IndexError(f"option {index} has no letter: at most {len(LETTERS)} options")
    return LETTERS[index]


def index(option_letter: str) -> int:
    """The index of a letter's option ("b" -> 1); ValueError for anything else."""
    i = LETTERS.find(option_letter.strip().upper()) if len(option_letter.strip()) == 1 else -1
    if i < 0:
        raise ValueError(f"{option_letter!r} is not an option letter A-{LETTERS[-1]}")
    return i


def lettered(choices) -> list[str]:
    """The options as lines: ["A. red", "B. blue"]."""
    return [f"{letter(i)}. {c}" for i, c in enumerate(choices)]
