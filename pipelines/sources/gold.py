"""The gold answer of a row, in whatever form the set gives it.

Real sets give it as an option's text, its letter, an index into the choices (ScienceQA's
int, AI2D's "1"), a list of annotator answers (TextVQA's strings, VQAv2's and VizWiz's
`{answer, answer_confidence}` dicts), a list of equally right answers (DocVQA), or a flag
that the question cannot be answered (VizWiz). `Rules` (from the source's recipe) says what
cannot be told from the row; a gold that cannot be resolved is a `Problem` naming the
columns and what was expected.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pipelines.core.answers import normalise_text
from pipelines.core.letters import ANY_CASE, LETTERS
from pipelines.sources.image_files import Problem

_LETTER = re.compile(rf"^(?:option\s+)?\(?({ANY_CASE})\)?(?:[.):]\s*(.*))?$", re.I)
_FALSE = {"0", "false", "no", "n", "unanswerable"}


@dataclass(frozen=True)
class Rules:
    """How a source's rows are read (from its recipe: `columns` and the source's keys)."""

    answer_is: str = "auto"  # auto, text, letter, index
    index_base: int = 0
    answers_are: str = "annotators"  # or "alternatives"
    unanswerable: str = "reject"  # or "gold"
    answer_type: str = "auto"
    inline_choices: bool = True
    question_column: str = "question"
    answer_column: str = "answer"
    choices_column: str = "choices"
    answerable_column: str = "answerable"

    @classmethod
    def of(cls, config) -> "Rules":
        """The rules of a SourceConfig; conversation sources name the reply, not a column."""
        columns = {"hf": config.hf.columns, "imagefolder": config.imagefolder.columns}.get(config.kind)
        if columns is None or columns.conversations:
            return cls(unanswerable=config.unanswerable, answer_type=config.answer_type,
                       question_column="the human message", answer_column="the reply")
        return cls(columns.answer_is, columns.answer_index_base, columns.answers_are, config.unanswerable, config.answer_type,
                   columns.inline_choices, columns.question or "question_template", columns.answer or columns.answers or "answer",
                   columns.choices or "choices", columns.answerable or "answerable")


def answer_list(value: Any, column: str) -> list[str] | None:
    """A list of answers (strings, numbers, or dicts with an `answer`), or None if `value`
    is not a list. A list written as text ("['car', 'taxi']", as some CSV and parquet
    copies store it) is read as the list."""
    if isinstance(value, str) and value.strip().startswith("[") and value.strip().endswith("]"):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            return None
    if not isinstance(value, (list, tuple)):
        return None
    out = []
    for v in value:
        if isinstance(v, dict):
            v = v.get("answer")
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise Problem("field_wrong_type", f"column {column!r} lists a {type(v).__name__}, not an answer")
        if str(v).strip():
            out.append(str(v).strip())
    return out


def most_common(answers: list[str]) -> str:
    """The answer most annotators gave, compared normalised ("two" and "2" are one answer),
    written as most of them wrote it; the first on a tie."""
    counts = Counter(normalise_text(a) for a in answers)
    best = max(counts.values())
    key = next(normalise_text(a) for a in answers if counts[normalise_text(a)] == best)
    return Counter(a for a in answers if normalise_text(a) == key).most_common(1)[0][0]


def is_unanswerable(flag: Any) -> bool:
    """VizWiz's `answerable: 0`, a false flag, or a category named "unanswerable"."""
    if isinstance(flag, bool):
        return not flag
    if isinstance(flag, (int, float)):
        return flag == 0
    return isinstance(flag, str) and flag.strip().lower() in _FALSE


def choice_letter(raw: Any, text: str, options: tuple[str, ...], rules: Rules, structured: bool) -> str:
    """The letter of the gold option. `raw` is the value as the row gives it, `text` its
    text; `structured` says the options came from a choices column (only then can a digit
    string be an index: an inline option list is answered by letter or text)."""
    n, col, ccol = len(options), rules.answer_column, rules.choices_column
    form = rules.answer_is
    if form == "auto" and structured and isinstance(raw, int) and not isinstance(raw, bool):
        form = "index"
    if form == "index":
        index = _index(text, n, rules)
        if index is None:
            raise Problem("choices_answer_absent", f"answer {text!r} (column {col!r}) is an index from {rules.index_base} "
                                                   f"but there are {n} choices (column {ccol!r})")
        return index
    letter, by_text = _letter(text, options), _text(text, options)
    if form == "letter":
        if letter is None:
            raise Problem("choices_answer_absent", f"answer {text!r} (column {col!r}) is not an option letter A-{LETTERS[n - 1]}")
        return letter
    if form == "text":
        if by_text is None:
            raise Problem("choices_answer_absent", f"answer {text!r} (column {col!r}) is none of the choices {list(options)}")
        return by_text
    if letter:
        return letter
    index = _index(text, n, rules) if structured and text.strip().isdigit() else None
    if by_text and index and by_text != index:
        raise Problem("choices_answer_ambiguous", f"answer {text!r} (column {col!r}) is the text of option {by_text} and, as an "
                                                  f"index, option {index}; set columns.answer_is to text or index")
    if by_text or index:
        return by_text or index
    m = _LETTER.match(text.strip())
    if m and not m.group(2):
        raise Problem("choices_answer_absent", f"answer {text!r} ({col}) names option {m.group(1).upper()} of only {n}")
    also = ", an option letter" + (" or an index" if structured and text.strip().isdigit() else "")
    raise Problem("choices_answer_absent", f"answer {text!r} ({col}) is none of the {n} choices {list(options)}"
                                           f"{f' (column {ccol!r})' if structured else ''}{also}")


def _index(text: str, n: int, rules: Rules) -> str | None:
    try:
        i = int(text.strip()) - rules.index_base
    except ValueError:
        return None
    return LETTERS[i] if 0 <= i < n else None


def _letter(text: str, options: tuple[str, ...]) -> str | None:
    """"B", "(b)", "B.", "Option B", or "B: <B's text>"; None otherwise."""
    m = _LETTER.match(text.strip())
    if not m:
        return None
    i = LETTERS.index(m.group(1).upper())
    if i >= len(options):
        return None
    rest = m.group(2)
    if rest and normalise_text(rest) != normalise_text(options[i]):
        return None
    return LETTERS[i]


def _text(text: str, options: tuple[str, ...]) -> str | None:
    wanted = normalise_text(text)
    return next((LETTERS[i] for i, o in enumerate(options) if normalise_text(o) == wanted), None)
