"""Options written into a question's text, and the format instructions datasets append.

Real sets write their options in several ways:
    "Which is larger?\\nA. 3\\nB. 5"                (LLaVA mixes, CoIN, The Cauldron)
    "Which is larger?\\nOptions: A: 3, B: 5"        (MMStar)
    "Which is larger? (A) 3 (B) 5"                (ScienceQA-style prompts)
    "Question: Which is larger?\\nChoices:\\n(A) 3\\n(B) 5"
`split_options` finds them (letters in order from A, at least two) and returns the bare
question; the instruction lines ("Answer with the option's letter ...") are removed and
returned apart, since our own prompts set the answer format.
"""

from __future__ import annotations

import re

from pipelines.core.letters import LETTERS

_KEYWORD = re.compile(r"(?:^|\n)[ \t]*(?:answer\s+)?(?:options|choices)\s*:[ \t]*", re.I)
# an instruction: a whole line, or the end of one ("What is it? Answer the question using ...")
_INSTRUCTION = re.compile(
    r"\s*(?:"
    r"answer (?:the question )?(?:using|with) a single word or (?:a )?phrase\.?"
    r"|answer with the option'?s? letter from the given choices directly\.?"
    r"|answer with the letter\.?"
    r"|give a very brief answer\.?"
    r"|(?:please )?answer yes or no\.?"
    r"|when the (?:provided )?information is insufficient, respond with ['\"]?unanswerable['\"]?\.?"
    r"|hint: please answer the question and provide the (?:correct )?(?:option letter|final value|integer answer)[^\n]*"
    r")\s*$", re.I)
_QUESTION_PREFIX = re.compile(r"^\s*question\s*:\s*", re.I)


def strip_instructions(text: str) -> tuple[str, str]:
    """The text without the format instructions at the ends of its lines, and the last
    instruction removed ("" when none)."""
    kept, found = [], ""
    for line in text.splitlines():
        while True:
            m = _INSTRUCTION.search(line)
            if not m:
                break
            found = m.group(0).strip()
            line = line[: m.start()]
        if line.strip() or not found:
            kept.append(line)
    return "\n".join(kept).strip(), found


def _marker(letter: str) -> re.Pattern:
    """An option marker: "(A)", "A.", "A)" or "A:", at the start or after a space, comma or
    semicolon, followed by a space."""
    return re.compile(rf"(?:(?<![^\s,;])\({letter}\)|(?<![^\s,;(]){letter}[.:)])[ \t]*")


def _options_from(block: str) -> tuple[list[str], int, int]:
    """Options lettered A, B, ... in order in `block`: (options, where A's marker starts,
    where the last option ends)."""
    first = _marker("A").search(block)
    if not first:
        return [], -1, -1
    options, start, pos = [], first.start(), first.end()
    for letter in LETTERS[1:]:
        nxt = _marker(letter).search(block, pos)
        if not nxt:
            break
        options.append(block[pos : nxt.start()].strip().rstrip(",;").strip())
        pos = nxt.end()
    end = block.find("\n", pos)
    end = len(block) if end < 0 else end
    options.append(block[pos:end].strip().rstrip(",;").strip())
    return options, start, end


def split_options(question: str) -> tuple[str, tuple[str, ...], str]:
    """(question without its options and instruction, the options, the instruction). A
    question whose text holds no two consecutive lettered options keeps its text."""
    text, instruction = strip_instructions(question)
    keyword = _KEYWORD.search(text)
    if keyword:  # "Options: A: x, B: y" / "Choices:\n(A) x\n(B) y"
        options, start, end = _options_from(text[keyword.end():])
        if len(options) >= 2 and all(options) and not text[keyword.end(): keyword.end() + start].strip():
            rest = text[: keyword.start()] + "\n" + text[keyword.end() + end:]
            return _bare(rest), tuple(options), instruction
    lines = text.splitlines()
    for i, line in enumerate(lines):  # options one per line, from a line starting with A
        if not re.match(r"^\s*\(?A[.:)]\s", line):
            continue
        options = []
        for j in range(i, len(lines)):
            m = re.match(rf"^\s*\(?{LETTERS[len(options)]}[.:)]\s+(.+?)\s*$", lines[j]) if len(options) < len(LETTERS) else None
            if not m:
                break
            options.append(m.group(1))
        if len(options) >= 2:
            return _bare("\n".join(lines[:i] + lines[i + len(options):])), tuple(options), instruction
    for i, line in enumerate(lines):  # "... (A) x (B) y" within one line
        at = line.find("(A) ")
        if at < 0:
            continue
        options, start, _ = _options_from(line[at:])
        if len(options) >= 2 and all(options) and start == 0:
            return _bare("\n".join(lines[:i] + [line[:at]] + lines[i + 1:])), tuple(options), instruction
    return _bare(text), (), instruction


def _bare(text: str) -> str:
    """The question text once options are out: no "Question:" prefix, no blank lines."""
    lines = [ln.rstrip() for ln in text.splitlines() if ln.strip()]
    if lines:
        lines[0] = _QUESTION_PREFIX.sub("", lines[0])
    return "\n".join(lines).strip()
