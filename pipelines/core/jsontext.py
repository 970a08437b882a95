"""JSON from outside (a teacher's reply, a reply-cache entry, a manifest on the Hub) decoded
with bounds, so that no document can end the process's work: Python's decoder meets
100,000 nested brackets as a RecursionError, and accepts NaN and numbers of any length."""

from __future__ import annotations

import json

MAX_JSON_DEPTH = 64  # a chat completion nests about 6 deep (choices, message, tool_calls, function, ...)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def bounded_json(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH):
    """JSON text decoded as plain data, or ValueError for anything that is not reasonable
    JSON: invalid UTF-8 or syntax, NaN and Infinity, integers of thousands of digits, and
    nesting deeper than `max_depth` (which Python's own decoder meets as a RecursionError
    that would end the process's work, or accepts and leaves for the next stage to trip on)."""
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, too many digits, NaN
        raise ValueError(f"not JSON: {type(e).__name__}") from None
    if not json_within(data, max_depth):
        raise ValueError(f"nested deeper than {max_depth} levels")
    return data


def json_within(data, max_depth: int = MAX_JSON_DEPTH) -> bool:
    """Whether decoded JSON nests at most `max_depth` levels (walked without recursion)."""
    stack = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            if depth >= max_depth:
                return False
            stack.extend((v, depth + 1) for v in (node.values() if isinstance(node, dict) else node))
    return True
