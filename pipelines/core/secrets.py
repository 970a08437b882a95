"""The one scrubber for text that leaves the process: a record's detail (and so the rejected
rows, the report and the card), error messages, log lines.

What it removes: the values of environment variables that hold credentials (names with KEY,
TOKEN, SECRET, PASSWORD or CREDENTIAL in them, and any variable a recipe names as holding a
key: `register_env`), and whatever looks like one whatever its source: URL user info
(`https://user:pass@host`), `Bearer ...`, `sk-...`, `hf_...`, and `api_key=...` /
`"authorization": "..."` pairs. `scrub_data` does the same for configuration (the published
recipe), where a key's name (`api_key`, `token`, `password`, ...) also marks its value. Servers echo request
headers in error bodies, so an error text is never trusted to be clean.
"""

from __future__ import annotations

import logging
import os
import re

MASK = "***"
_CREDENTIAL_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL", re.IGNORECASE)
_PATTERNS = (
    re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s@\"']+(?=@)"),  # URL user info: http://user:pass@host
    re.compile(r"(Bearer\s+)[^\s\"',;})\]]+", re.IGNORECASE),
    re.compile(r"\b(sk-)[A-Za-z0-9_\-]{6,}"),
    re.compile(r"\b(hf_)[A-Za-z0-9]{6,}"),
    re.compile(r"((?:api[_-]?key|access[_-]?token|token|authorization|password|secret)[\"']?\s*[:=]\s*[\"']?"
               r"(?:(?:Basic|Token|Digest)\s+)?)"
               r"(?!Bearer\b)[^\s\"',;})\]]{4,}", re.IGNORECASE),
)
_NAMED: set[str] = set()  # variables a recipe names as holding a key (api_key_env)


def register_env(name: str) -> None:
    """Treat the value of environment variable `name` as a secret from now on."""
    _NAMED.add(name)


def secret_values() -> list[str]:
    """The values to remove, longest first (a key that contains another is removed whole)."""
    values = {v for k, v in os.environ.items() if (k in _NAMED or _CREDENTIAL_NAME.search(k)) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def scrub(text: str | None) -> str | None:
    """`text` with every secret replaced by ***."""
    if not text:
        return text
    for value in secret_values():
        text = text.replace(value, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


# The words of a key (api_key, apiKey, X-Api-Key, hf_token, Authorization) that say its value
# is a credential; a key ending in `_env` holds the NAME of a variable, which is no secret.
_CREDENTIAL_WORDS = {"key", "apikey", "token", "secret", "password", "passwd", "pwd", "passphrase", "authorization",
                     "auth", "credential", "credentials", "cookie", "bearer"}


def credential_key(key: str) -> bool:
    """Whether a configuration key names a credential by one of its words."""
    words = re.findall(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])", str(key))
    return not str(key).lower().endswith("_env") and any(w.lower() in _CREDENTIAL_WORDS for w in words)


def scrub_data(value, key: str = ""):
    """Plain data (a resolved recipe, an override) with every secret masked: the text values of
    keys that name credentials (`credential_key`), and in every other text what `scrub` removes
    (URL user info, `Bearer ...`, `sk-...`, `hf_...`, the values of credential variables)."""
    if isinstance(value, dict):
        return {k: scrub_data(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_data(v, key) for v in value]
    if isinstance(value, str):
        return MASK if value and credential_key(key) else scrub(value)
    return value


def scrub_override(assignment: str) -> str:
    """A `key.sub=value` override with its value scrubbed as `scrub_data` would."""
    key, sep, value = assignment.partition("=")
    return f"{key}{sep}{scrub_data(value, key.rsplit('.', 1)[-1])}" if sep else scrub(assignment)


class ScrubFilter(logging.Filter):
    """A logging filter that scrubs each record's message (put it on handlers: a handler's
    filters see every record that reaches it, a logger's only those logged on it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = scrub(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


# Characters a terminal acts on instead of showing: C0/C1 controls but newline and tab (ESC
# starts colour, title and cursor sequences), bidirectional overrides and isolates (U+202E
# shows "exe.txt" for "txt.exe"), and lone surrogates.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def printable(text) -> str:
    """`text` safe to print on a terminal: each character in _UNPRINTABLE as its escape
    (`\\x1b`, `\\u202e`)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape", "backslashreplace").decode("ascii"), str(text))
