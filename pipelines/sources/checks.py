"""From a source row's raw values to checked QA turns, or a `Problem` with a named reason.

Two shapes of row: question + answer (+ choices) columns, or a LLaVA-style conversation
(`[{from: human, value: "<image>\\nQ"}, {from: gpt, value: "A"}, ...]`, several QA pairs per
image). Options written into a question ("A. red" lines) become structured choices; the
format instructions the LLaVA mixes append ("Answer the question using a single word or
phrase.") are moved to the turn's meta, since our own prompts set the answer format.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from filters.answers import normalise_text
from pipelines.record import Turn
from pipelines.source_config import ChecksConfig
from pipelines.sources.images import Problem

IMAGE_TOKEN = "<image>"
HUMAN, GPT = {"human", "user"}, {"gpt", "assistant"}
LETTERS = "ABCDEFGH"
_OPTION = re.compile(r"^\s*\(?([A-H])[.):]\s+(.+?)\s*$")
_LETTER_ANSWER = re.compile(r"^\(?([A-Ha-h])\)?[.)]?$")
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)*$")
_YESNO = {"yes", "no"}
INSTRUCTIONS = (
    "answer the question using a single word or phrase.",
    "answer with the option's letter from the given choices directly.",
    "answer with the option letter from the given choices directly.",
    "please answer yes or no.",
)


def _valid(text: str, field: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Problem("text_invalid", f"the {field} holds a character that is not valid Unicode at position {e.start} "
                                      "(a lone surrogate)") from None
    return text


def _text(value: Any, field: str, problem_if_missing: str) -> str:
    if value is None:
        raise Problem(problem_if_missing, f"the {field} is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Problem("field_wrong_type", f"the {field} is a {type(value).__name__}, not text")
    return _valid(str(value), field).strip()


def _answer_value(value: Any) -> Any:
    """A list of annotator answers (VQA style) stands for its most common member."""
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        return Counter(v.strip() for v in value).most_common(1)[0][0]
    return value


def _choices(value: Any, config: ChecksConfig) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise Problem("choices_invalid", f"choices must be a list, got a {type(value).__name__}")
    if not all(isinstance(c, (str, int, float)) and not isinstance(c, bool) for c in value):
        raise Problem("choices_invalid", "every choice must be text")
    choices = tuple(_valid(str(c), "choices").strip() for c in value)
    if len(choices) == 0:
        return ()
    if not 2 <= len(choices) <= config.max_choices:
        raise Problem("choices_invalid", f"{len(choices)} choices; between 2 and {config.max_choices} are supported")
    if any(not c for c in choices) or len({normalise_text(c) for c in choices}) != len(choices):
        raise Problem("choices_invalid", f"empty or repeated choices: {list(choices)}")
    return choices


def _split_options(question: str) -> tuple[str, tuple[str, ...], str]:
    """Question text without its lettered option lines and format instruction, the options,
    and the instruction that was removed."""
    kept, options, instruction = [], [], ""
    for line in question.splitlines():
        m = _OPTION.match(line)
        if m and m.group(1) == LETTERS[len(options)]:
            options.append(m.group(2))
        elif line.strip().lower() in INSTRUCTIONS:
            instruction = line.strip()
        elif line.strip().lower() == "options:" or line.strip().lower() == "choices:":
            continue
        else:
            kept.append(line)
    if len(options) < 2:  # one "A. ..." line is prose, not options
        return "\n".join(ln for ln in question.splitlines() if ln.strip().lower() not in INSTRUCTIONS).strip(), (), instruction
    return "\n".join(kept).strip(), tuple(options), instruction


def make_turn(question: Any, answer: Any, choices: Any, config: ChecksConfig, meta: dict | None = None) -> Turn:
    q = _text(question, "question", "question_missing")
    a = _text(_answer_value(answer), "answer", "answer_missing")
    if not q:
        raise Problem("question_empty", "the question is empty")
    if not a:
        raise Problem("answer_empty", "the answer is empty")
    if len(q) > config.max_question_chars:
        raise Problem("question_too_long", f"the question has {len(q)} characters > {config.max_question_chars}")
    if len(a) > config.max_answer_chars:
        raise Problem("answer_too_long", f"the answer has {len(a)} characters > {config.max_answer_chars}")
    options = _choices(choices, config)
    meta = dict(meta or {})
    if not options:
        q, options, instruction = _split_options(q)
        if instruction:
            meta["instruction"] = instruction
        if not q:
            raise Problem("question_empty", "the question is empty once its options are removed")
    if options:
        return Turn(q, _letter(a, options), options, "choice", meta)
    norm = normalise_text(a)
    kind = "yesno" if norm in _YESNO else "number" if _NUMBER.match(a.replace(" ", "")) else "text"
    return Turn(q, norm if kind == "yesno" else a, (), kind, meta)


def _letter(answer: str, options: tuple[str, ...]) -> str:
    m = _LETTER_ANSWER.match(answer.strip())
    if m:
        index = LETTERS.index(m.group(1).upper())
        if index < len(options):
            return LETTERS[index]
        raise Problem("choices_answer_absent", f"answer {answer!r} names option {m.group(1).upper()} of only {len(options)}")
    wanted = normalise_text(answer)
    for i, option in enumerate(options):
        if normalise_text(option) == wanted:
            return LETTERS[i]
    raise Problem("choices_answer_absent", f"answer {answer!r} is none of the choices {list(options)}")


def conversation_turns(conversation: Any, config: ChecksConfig) -> tuple[list[Turn], int]:
    """Turns of a LLaVA conversation, and how many `<image>` placeholders it holds."""
    if not isinstance(conversation, (list, tuple)):
        raise Problem("conversation_malformed", f"conversations must be a list of messages, got a {type(conversation).__name__}")
    messages = []
    for i, m in enumerate(conversation):
        if not isinstance(m, dict) or not isinstance(m.get("value"), str) or not isinstance(m.get("from"), str):
            raise Problem("conversation_malformed", f"message {i} is not a {{from, value}} pair of strings")
        role = m["from"].lower()
        if role == "system":
            continue
        if role not in HUMAN | GPT:
            raise Problem("conversation_malformed", f"message {i} comes from {m['from'][:40]!r}; expected human or gpt")
        messages.append((role in HUMAN, m["value"]))
    if not messages:
        raise Problem("conversation_empty", "the conversation has no messages")
    placeholders = sum(text.count(IMAGE_TOKEN) for _, text in messages)
    turns = []
    for j in range(0, len(messages), 2):
        pair = messages[j: j + 2]
        if len(pair) < 2 or not pair[0][0] or pair[1][0]:
            raise Problem("conversation_malformed", f"messages must alternate human, gpt; message {j + len(pair) - 1} breaks that")
        question = pair[0][1].replace(IMAGE_TOKEN, "").strip()
        turns.append(make_turn(question, pair[1][1], None, config, {"turn": j // 2}))
    return turns, placeholders


def check_turn_count(turns: list[Turn], config: ChecksConfig) -> None:
    if not turns:
        raise Problem("conversation_empty", "no question-answer pair")
    if len(turns) > config.max_turns:
        raise Problem("too_many_turns", f"{len(turns)} question-answer pairs > max_turns {config.max_turns}")
