"""verify (when enabled): a teacher judges claims, one verdict each: supported, contradicted or
not stated.

Claims are the record's statements (is each one in the extraction?) and, with
`sentences: true`, the published extraction's sentences (does anything back each one?). The
evidence is text unless `with_image: true`: the extraction for statements, the other
extraction samples for sentences; with the image, the image for both. One request per kind
of claim. Backends that can constrain their output to a JSON schema (vLLM's structured
outputs, an OpenAI-compatible `response_format`, the oracle) are asked for
`{"verdicts": [...]}`; the others for lines "1: supported". Replies are parsed leniently
either way (JSON found inside prose, numbered lines in any markdown, verdict words in
order); a claim without a verdict is "unparsed", which the `judged` filter rejects.
"""

from __future__ import annotations

import json
import re

from pipelines.core.jsontext import json_within
from pipelines.core.record import Judgement, Record, TeacherOutput
from pipelines.stages.base import Prompt, StageSpec
from pipelines.stages.prompting import render
from pipelines.support.text import sentences

VERDICTS = ("supported", "contradicted", "not stated")
UNPARSED = "unparsed"
_SYNONYMS = {"supported": "supported", "support": "supported", "supports": "supported", "yes": "supported", "true": "supported",
             "entailed": "supported", "contradicted": "contradicted", "contradicts": "contradicted", "contradiction": "contradicted",
             "no": "contradicted", "false": "contradicted", "refuted": "contradicted", "not stated": "not stated",
             "not_stated": "not stated", "not-stated": "not stated", "unsupported": "not stated", "not supported": "not stated",
             "unknown": "not stated", "not mentioned": "not stated", "neutral": "not stated", "not_mentioned": "not stated"}
_WORD = re.compile(r"not[ _-]stated|not[ _-]supported|not[ _-]mentioned|unsupported|supported|supports|contradict(?:ed|s|ion)|"
                   r"entailed|refuted|neutral|unknown", re.IGNORECASE)
_LINE = re.compile(r"^\W*(?:claim\s*)?(\d+)\s*[:.)\]-]+\s*(.*)$", re.IGNORECASE)


def schema(n: int) -> dict:
    """The JSON schema of a reply judging `n` claims."""
    return {"type": "object", "additionalProperties": False, "required": ["verdicts"],
            "properties": {"verdicts": {"type": "array", "minItems": n, "maxItems": n, "items": {"enum": list(VERDICTS)}}}}


def wants_json(teacher) -> bool:
    """Can the backend constrain its output to a schema (and is it asked to)?"""
    if teacher.backend in ("vllm", "oracle"):
        return True
    return teacher.backend == "openai" and teacher.openai.json_schema


def claim_sets(record: Record, sentences_too: bool, with_image: bool) -> list[tuple[str, list[str], list[str]]]:
    """(kind, claims, evidence texts) per request; evidence is empty when the image is shown."""
    out = []
    statements = list(record.statements or ())
    if statements:
        out.append(("statement", statements, [] if with_image else [record.extraction or ""]))
    if sentences_too:
        claims = sentences(record.extraction or "")
        others = [o.text for o in (record.extractions or ())[1:]]
        if claims and (with_image or others):
            out.append(("sentence", claims, [] if with_image else others))
    return out


def parse_verdicts(text: str, n: int) -> list[str]:
    """`n` verdicts from a judge's reply; "unparsed" where none was found."""
    text = re.sub(r"<think>.*?(?:</think>|$)", "", text or "", flags=re.DOTALL | re.IGNORECASE)
    found = _from_json(text, n)
    if found is None:
        found = _from_lines(text, n)
    return [v if v in VERDICTS else UNPARSED for v in found]


def _verdict(value) -> str:
    if isinstance(value, dict):
        value = next((value[k] for k in ("verdict", "label", "judgement", "judgment", "answer") if k in value), "")
    return _SYNONYMS.get(str(value).strip().lower().strip(".*"), UNPARSED)


def _from_json(text: str, n: int) -> list[str] | None:
    for start in [m.start() for m in re.finditer(r"[{\[]", text)][:5]:
        try:
            value, _ = json.JSONDecoder().raw_decode(text[start:])
        except (ValueError, RecursionError):  # a reply of 100,000 brackets is no verdict list
            continue
        if not json_within(value):
            continue
        if isinstance(value, dict):
            value = next((value[k] for k in ("verdicts", "judgements", "judgments", "claims", "results") if k in value), None)
        if isinstance(value, list):
            got = [_verdict(v) for v in value[:n]]
            return got + [UNPARSED] * (n - len(got))
    return None


def _from_lines(text: str, n: int) -> list[str]:
    out = [UNPARSED] * n
    loose = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        words = _WORD.findall(m.group(2) if m else line)
        if not words:
            continue
        verdict = _SYNONYMS.get(words[0].lower().replace("_", " ").replace("-", " "), UNPARSED)
        if m and 1 <= int(m.group(1)) <= n and out[int(m.group(1)) - 1] == UNPARSED:
            out[int(m.group(1)) - 1] = verdict
        elif not m:
            loose.append(verdict)
    if all(v == UNPARSED for v in out) and len(loose) == n:  # unnumbered, one verdict per line
        return loose
    return out


def judgements(kind: str, claims: list[str], output: TeacherOutput, with_image: bool) -> tuple[Judgement, ...]:
    verdicts = parse_verdicts(output.text, len(claims))
    return tuple(Judgement(kind, c, v, "image" if with_image else "text") for c, v in zip(claims, verdicts))


class Verify(StageSpec):
    name, template, sampling = "verify", "verify/v1", {"max_tokens": 512}
    reads, writes = ("statements", "extractions"), ("judgements",)
    optional = True
    sample = {"claims": ["The bus is red."], "evidence": "A red bus stands at a stop.", "json": False}

    def check_inputs(self, template, inputs):
        return None if "claims" in inputs else f"{template!r} must use `claims` (and may use `evidence`, `json`)"

    def prompts(self, bound, record):
        json_wanted, with_image = wants_json(bound.teacher), bound.options.with_image
        return [Prompt(render(bound.template, claims=claims, evidence=evidence, json=json_wanted), with_image,
                       {"kind": kind, "claims": claims, "with_image": with_image, "json": json_wanted},
                       schema(len(claims)) if json_wanted else None)
                for kind, claims, evidence in claim_sets(record, bound.options.sentences, with_image)]

    def parse(self, bound, record, replies, prompts):
        return {"judgements": tuple(j for p, r in zip(prompts, replies)
                                    for j in judgements(p.meta["kind"], p.meta["claims"], r.outputs[0], bound.options.with_image))}


STAGE = Verify()
