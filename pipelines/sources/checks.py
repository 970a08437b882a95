"""From a source row's raw values to checked QA turns, or a `Problem` with a named reason.

Two shapes of row: question + answer (+ choices) columns, or a conversation (LLaVA's
`[{from: human, value: "<image>\\nQ"}, {from: gpt, value: "A"}, ...]`, `[{role, content}]`
or The Cauldron's `[{user, assistant}]`), several QA pairs per image. Options written into a
question become structured choices and the format instructions sets append ("Answer the
question using a single word or phrase.") move to the turn's meta (`options.py`); the gold
answer is resolved from whatever form the set gives it (`gold.py`).
"""

from __future__ import annotations

import re
from typing import Any

from pipelines.config.source_config import ChecksConfig
from pipelines.core.answers import normalise_text
from pipelines.core.record import Turn
from pipelines.sources.gold import Rules, answer_list, choice_letter, is_unanswerable, most_common
from pipelines.sources.image_files import Problem
from pipelines.sources.inline_choices import split_options, strip_instructions

IMAGE_TOKEN = "<image>"
HUMAN, GPT = {"human", "user"}, {"gpt", "assistant"}
_NUMBER = re.compile(r"^-?\d+(?:[.,]\d+)*$")
_YESNO = {"yes", "no"}
_ANSWER_PREFIX = re.compile(r"^\s*answer\s*:\s*", re.I)
RULES = Rules()


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


def _gold(answer: Any, answers: Any, rules: Rules, meta: dict) -> Any:
    """The gold value: a list of answers stands for its most common member (or its first,
    when every listed answer is right); every listed answer goes to the turn's meta."""
    listed = answer_list(answer, rules.answer_column)
    pool = listed if listed is not None else answer_list(answers, "answers") if answers is not None else None
    if pool:
        meta["alternatives" if rules.answers_are == "alternatives" else "answers"] = pool
    if listed is None and answer is None and pool:  # said in the turn's meta (and so in `inspect` and the rows)
        meta["gold_fallback"] = (f"the {rules.answer_column} column is null: the gold is the "
                                 + ("first listed answer" if rules.answers_are == "alternatives" else "annotators' most common answer"))
    if listed is not None or (answer is None and pool):
        return (pool[0] if rules.answers_are == "alternatives" else most_common(pool)) if pool else None
    return answer


def make_turn(question: Any, answer: Any, choices: Any, config: ChecksConfig, meta: dict | None = None,
              rules: Rules = RULES, answers: Any = None, answerable: Any = None) -> Turn:
    meta = dict(meta or {})
    q = _text(question, "question", "question_missing")
    if answerable is not None and is_unanswerable(answerable):
        if rules.unanswerable == "reject":
            raise Problem("unanswerable", f"column {rules.answerable_column!r} marks the question unanswerable ({answerable!r})")
        answer, choices, meta["answerable"] = "unanswerable", None, False
    raw = _gold(answer, answers, rules, meta)
    a = _text(raw, f"answer ({rules.answer_column})", "answer_missing")
    if not q:
        raise Problem("question_empty", "the question is empty")
    if not a:
        raise Problem("answer_empty", "the answer is empty")
    if len(q) > config.max_question_chars:
        raise Problem("question_too_long", f"the question has {len(q)} characters > {config.max_question_chars}")
    if len(a) > config.max_answer_chars:
        raise Problem("answer_too_long", f"the answer has {len(a)} characters > {config.max_answer_chars}")
    if rules.unanswerable == "reject" and normalise_text(a) == "unanswerable":
        raise Problem("unanswerable", f"the gold answer ({rules.answer_column}) is {a!r}")
    options = _choices(choices, config)
    structured = bool(options)
    if not options and rules.inline_choices:
        q, options, instruction = split_options(q)
    else:
        q, instruction = strip_instructions(q)
    if instruction:
        meta["instruction"] = instruction
    if not q:
        raise Problem("question_empty", "the question is empty once its options and instructions are removed")
    if options:
        if rules.answer_type not in ("auto", "choice"):
            raise Problem("answer_type_mismatch", f"answer_type is {rules.answer_type} but the question has {len(options)} choices")
        return Turn(q, choice_letter(raw, a, options, rules, structured), options, "choice", meta)
    norm = normalise_text(a)
    kind = rules.answer_type
    if kind == "auto":
        kind = "yesno" if norm in _YESNO else "number" if _NUMBER.match(a.replace(" ", "")) else "text"
    elif kind == "choice":
        raise Problem("choices_missing", f"answer_type is choice but there are no choices (column {rules.choices_column!r}) "
                                         "and none written in the question")
    elif kind == "yesno" and norm not in _YESNO:
        raise Problem("answer_type_mismatch", f"answer_type is yesno but the answer is {a!r}")
    elif kind == "number" and not _NUMBER.match(a.replace(" ", "")):
        raise Problem("answer_type_mismatch", f"answer_type is number but the answer is {a!r}")
    return Turn(q, norm if kind == "yesno" else a, (), kind, meta)


def _messages(conversation: Any) -> list[tuple[bool, str]]:
    """(from the human, text) per message of a conversation in any of the three forms."""
    if not isinstance(conversation, (list, tuple)):
        raise Problem("conversation_malformed", f"conversations must be a list of messages, got a {type(conversation).__name__}")
    out = []
    for i, m in enumerate(conversation):
        if isinstance(m, dict) and isinstance(m.get("user"), str) and isinstance(m.get("assistant"), str):
            out += [(True, m["user"]), (False, m["assistant"])]  # The Cauldron: one dict per exchange
            continue
        role, text = (m.get("from"), m.get("value")) if isinstance(m, dict) and "from" in m else \
            (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if not isinstance(role, str) or not isinstance(text, str):
            raise Problem("conversation_malformed", f"message {i} is not a {{from, value}}, {{role, content}} or "
                                                    "{user, assistant} pair of strings")
        role = role.lower()
        if role == "system":
            continue
        if role not in HUMAN | GPT:
            raise Problem("conversation_malformed", f"message {i} comes from {role[:40]!r}; expected human or gpt")
        out.append((role in HUMAN, text))
    return out


def _reply(text: str) -> str:
    """A reply as a gold answer: without an "Answer:" prefix (The Cauldron) or the full stop
    of a short answer ("Yes."; "U.S." keeps its dots)."""
    text = _ANSWER_PREFIX.sub("", text).strip()
    if "\n" not in text and len(text.split()) <= 5 and text.endswith(".") and text.count(".") == 1:
        text = text[:-1].rstrip()
    return text


def conversation_turns(conversation: Any, config: ChecksConfig, rules: Rules = RULES, meta: dict | None = None) -> tuple[list[Turn], int]:
    """Turns of a conversation, and how many `<image>` placeholders it holds."""
    messages = _messages(conversation)
    if not messages:
        raise Problem("conversation_empty", "the conversation has no messages")
    placeholders = sum(text.count(IMAGE_TOKEN) for _, text in messages)
    turns = []
    for j in range(0, len(messages), 2):
        pair = messages[j: j + 2]
        if len(pair) < 2 or not pair[0][0] or pair[1][0]:
            raise Problem("conversation_malformed", f"messages must alternate human, gpt; message {j + len(pair) - 1} breaks that")
        question = pair[0][1].replace(IMAGE_TOKEN, "").strip()
        turns.append(make_turn(question, _reply(pair[1][1]), None, config, {**(meta or {}), "turn": j // 2}, rules))
    return turns, placeholders


def check_turn_count(turns: list[Turn], config: ChecksConfig) -> None:
    if not turns:
        raise Problem("conversation_empty", "no question-answer pair")
    if len(turns) > config.max_turns:
        raise Problem("too_many_turns", f"{len(turns)} question-answer pairs > max_turns {config.max_turns}")
