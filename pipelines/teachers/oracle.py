"""The oracle teacher: a test instrument, not a model.

It only works on synthetic records, whose ground truth it reads, and writes what a good
teacher would: statements, a focus phrase, an extraction and reasoning traces (and, asked
at stage `caption`, a generic caption of the scene, for the Caption+Think baseline). At
`error_rate` it makes one realistic mistake per chosen record and says so in the reply's
`meta["injected"]`, which the stages copy onto the record; the filter suite can then be
scored against what was injected.

The mistakes are planned per record by a generator seeded with (oracle seed, record id),
so the extraction stage and the think stage, which may run on different workers, agree on
them. The think stage answers from the facts *as the extraction stated them*: a miscount
in the extraction leads to a wrong answer, as it would for a real text-only reasoner.

Extraction samples behave like a sampled model's: the first (published) sample carries the
planned mistake; the others describe the same facts in another sentence order, sometimes
leave a sentence out, and repeat the mistake only with chance `repeat`. Like a teacher
following the prompt, the extraction works in one sentence per question, written from the
facts as it perceived them.
"""

from __future__ import annotations

import json
import math
import random
import time
from typing import Sequence

from pipelines.config.recipe import OracleOptions, TeacherConfig
from pipelines.core.letters import LETTERS
from pipelines.core.record import Record, TeacherOutput
from pipelines.sources.scenes import FAMILIES
from pipelines.sources.scenes.base import distractor_sentence
from pipelines.stages import STAGES
from pipelines.teachers.base import ChatRequest, TeacherReply

INVENTED = [
    "A small green star is drawn in the top left corner.",
    "A black cat sits at the bottom edge of the picture.",
    "A red umbrella leans against the right side of the frame.",
    "Two white clouds float along the top of the image.",
]
REFUSAL = "I'm sorry, but I can't help with describing this image."
LEAKS = ("The answer is {answer}.", "Answer: {answer}", "So the answer to the question is {answer}.")
OMIT = 0.15  # chance that a further extraction sample leaves one sentence out
UNKNOWN = "unknown"


def plan_injection(record: Record, options: OracleOptions) -> dict | None:
    """The one mistake the oracle makes on `record`, or None. Deterministic."""
    rng = random.Random(f"oracle:{options.seed}:{record.id}")
    if rng.random() >= options.error_rate:
        return None
    kind = rng.choice(list(options.errors))
    family = FAMILIES[record.facts["family"]]
    facts = record.facts["values"]
    plan: dict = {"kind": kind, "stage": "extraction"}
    if kind in ("miscount", "wrong_colour"):
        changed, detail = getattr(family, kind)(facts, rng)
        plan.update(facts=changed, detail=detail)
    elif kind == "invented_object":
        plan.update(sentence=rng.choice(INVENTED), detail="invented object")
    elif kind == "refusal":
        plan.update(detail="refused")
    elif kind == "truncation":
        plan["stage"] = rng.choice(["extraction", "think"])
        n = len(family.describe(facts))
        plan.update(keep=rng.randint(0, max(0, n - 1)), turn=rng.randrange(len(record.turns)), detail="cut at max_tokens")
    elif kind == "wrong_answer":  # most samples go wrong: a minority slip is noise the filters should forgive
        plan.update(stage="think", turn=rng.randrange(len(record.turns)), share=rng.uniform(0.5, 1.0), detail="wrong final answer")
    elif kind == "answer_leak":
        plan.update(turn=rng.randrange(len(record.turns)), form=rng.randrange(len(LEAKS)), detail="answer stated in the extraction")
    elif kind == "repetition":
        plan.update(times=rng.randint(5, 9), detail="a sentence repeated in a loop")
    elif kind == "statement_mismatch":
        plan.update(stage="statements", detail="statements merged or doubled")
    return plan


def _extraction(record: Record, plan: dict | None, sample: int = 0, options: OracleOptions | None = None) -> tuple[str, str, dict]:
    """(text, finish reason, the facts that text states) of extraction sample `sample`."""
    family = FAMILIES[record.facts["family"]]
    facts = dict(record.facts["values"])
    rng = random.Random(f"oracle:{options.seed if options else 0}:{record.id}:sample:{sample}")
    repeats = sample == 0 or (options is not None and rng.random() < options.repeat)
    kind = plan["kind"] if plan and plan["stage"] == "extraction" and repeats else None
    if kind == "refusal":
        return REFUSAL, "stop", {}
    if kind in ("miscount", "wrong_colour"):
        facts = plan["facts"]
    sentences = family.describe(facts)
    if kind == "truncation":
        kept, cut = sentences[: plan["keep"]], sentences[plan["keep"]]
        for keys, _ in sentences[plan["keep"] :]:
            for key in keys:
                facts.pop(key, None)
        half = cut[1][: len(cut[1]) // 2].rsplit(" ", 1)[0]
        return " ".join([family.scene_sentence] + [s for _, s in kept] + [half]), "length", facts
    body = [s for _, s in sentences]
    if record.facts.get("distractors"):
        body.append(distractor_sentence(record.facts["distractors"]))
    body += _worked_in(record, facts)
    if kind == "invented_object":
        body.append(plan["sentence"])
    if kind == "repetition":
        body += [body[0]] * plan["times"]
    if kind == "answer_leak":
        turn = record.turns[plan["turn"]]
        body.append(LEAKS[plan["form"]].format(answer=turn.answer))
    if sample > 0:
        rng.shuffle(body)
        if len(body) > 1 and rng.random() < OMIT:
            body.pop(rng.randrange(len(body)))
    return " ".join([family.scene_sentence] + body), "stop", facts


def caption(record: Record) -> str:
    """A generic caption of the scene, written from its ground truth without regard to the
    record's questions (the Caption+Think baseline's target): what an extraction says
    minus the sentences worked in for the questions."""
    family = FAMILIES[record.facts["family"]]
    body = [s for _, s in family.describe(record.facts["values"])]
    if record.facts.get("distractors"):
        body.append(distractor_sentence(record.facts["distractors"]))
    return " ".join([family.scene_sentence] + body)


def _worked_in(record: Record, facts: dict) -> list[str]:
    """One sentence per question, from the facts as perceived (none where they say nothing)."""
    family = FAMILIES[record.facts["family"]]
    out = []
    for t in record.turns:
        try:
            answer = family.solve(t.meta["template"], t.meta["args"], facts, t.choices)
        except KeyError:
            continue
        sentence = family.statement(t.meta["template"], t.meta["args"], answer, t.choices)
        if sentence not in out:
            out.append(sentence)
    return out


class _Tracking(dict):
    """A dict that remembers which keys were read (to quote the facts an answer used)."""

    def __init__(self, *a):
        super().__init__(*a)
        self.used: set[str] = set()

    def __getitem__(self, key):
        self.used.add(key)
        return super().__getitem__(key)


def _wrong(answer: str, record: Record, turn_index: int, rng: random.Random) -> str:
    turn = record.turns[turn_index]
    if turn.answer_type == "choice":
        return rng.choice([x for x in LETTERS[:len(turn.choices)] if x != answer])
    if turn.answer_type == "yesno":
        return "no" if answer == "yes" else "yes"
    if turn.answer_type == "number" and answer.isdigit():
        return str(int(answer) + 1 if int(answer) == 0 else int(answer) + rng.choice([-1, 1]))
    family = FAMILIES[record.facts["family"]]
    options = [a for a in family.alternatives(turn.meta["template"], turn.meta["args"], record.facts["values"]) if a != answer]
    return rng.choice(options) if options else UNKNOWN


def _think(record: Record, turn_index: int, sample: int, n: int, plan: dict | None, options: OracleOptions) -> tuple[str, str]:
    family = FAMILIES[record.facts["family"]]
    turn = record.turns[turn_index]
    _, _, seen = _extraction(record, plan, 0, options)
    facts = _Tracking(seen)
    try:
        answer = family.solve(turn.meta["template"], turn.meta["args"], facts, turn.choices)
        quoted = " ".join(s for keys, s in family.describe(seen) if set(keys) & facts.used)
        body = f"The description says: {quoted} That settles the question."
    except KeyError:
        answer, body = UNKNOWN, "The description does not state the detail this question needs, so I cannot determine it."
    on_this_turn = plan is not None and plan["stage"] == "think" and plan["turn"] == turn_index
    if on_this_turn and plan["kind"] == "wrong_answer" and sample < max(1, math.ceil(plan["share"] * n)):
        answer = _wrong(answer, record, turn_index, random.Random(f"{record.id}:{turn_index}:{sample}"))
        body = body.replace("That settles the question.", "Reading it quickly, I pick the other option.")
    text = f"{body}\nAnswer: {answer}"
    if on_this_turn and plan["kind"] == "truncation":
        return text[: len(body) // 2], "length"
    return text, "stop"


def _judge(record: Record, request: ChatRequest, plan: dict | None, options: OracleOptions) -> str:
    """Verdicts as a perfect reader of the evidence would give them (the scene's ground
    truth for the image or the other samples, the published extraction for statements),
    with `judge_error_rate` of them flipped on purpose."""
    from pipelines.support.lexical import lexical_support

    family = FAMILIES[record.facts["family"]]
    if request.meta["kind"] == "statement" and not request.meta["with_image"]:
        evidence = _extraction(record, plan, 0, options)[0]  # what the published extraction says
    else:
        truth = record.facts["values"]
        gold = [family.statement(t.meta["template"], t.meta["args"], t.answer, t.choices) for t in record.turns]
        extra = [distractor_sentence(record.facts["distractors"])] if record.facts.get("distractors") else []
        evidence = " ".join([family.scene_sentence] + [s for _, s in family.describe(truth)] + extra + gold)
    verdicts = []
    for i, claim in enumerate(request.meta["claims"]):
        score = lexical_support(claim, evidence)
        verdict = "supported" if score >= 0.9 else "contradicted" if score >= 0.3 else "not stated"
        if random.Random(f"oracle-judge:{options.seed}:{record.id}:{request.meta['kind']}:{i}").random() < options.judge_error_rate:
            verdict = "contradicted" if verdict == "supported" else "supported"
        verdicts.append(verdict)
    if request.schema is not None:
        return json.dumps({"verdicts": verdicts})
    return "\n".join(f"{i}: {v}" for i, v in enumerate(verdicts, 1))


def _statements(record, request, plan, options):
    family = FAMILIES[record.facts["family"]]
    lines = [family.statement(t.meta["template"], t.meta["args"], t.answer, t.choices) for t in record.turns]
    if plan and plan["kind"] == "statement_mismatch":
        lines = [f"{lines[0].rstrip('.')} and {lines[1][0].lower()}{lines[1][1:]}"] + lines[2:] if len(lines) > 1 else lines * 2
    return ["\n".join(lines)], ["stop"]


def _focus(record, request, plan, options):
    family = FAMILIES[record.facts["family"]]
    return [", ".join(dict.fromkeys(family.focus(t.meta["template"], t.meta["args"]) for t in record.turns))], ["stop"]


def _extractions(record, request, plan, options):
    samples = [_extraction(record, plan, j, options) for j in range(request.sampling.n)]
    return [t for t, _, _ in samples], [f for _, f, _ in samples]


def _caption(record, request, plan, options):  # never wrong: the baseline's captions are the scene's truth
    return [caption(record)], ["stop"]


def _judgements(record, request, plan, options):
    return [_judge(record, request, plan, options)], ["stop"]


def _reasoning(record, request, plan, options):
    n = request.sampling.n
    pairs = [_think(record, request.meta["turn"], j, n, plan, options) for j in range(n)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


# What the oracle writes, by the Record field a stage declares it writes (`pipelines.stages`).
_WRITERS = {"statements": _statements, "focus": _focus, "extractions": _extractions, "caption": _caption,
            "judgements": _judgements, "reasoning": _reasoning}


def _words(text: str) -> int:
    return len(text.split())


class OracleTeacher:
    backend = "oracle"
    model = "oracle"
    revision = "v1"

    def __init__(self, config: TeacherConfig):
        self.options = config.oracle

    def generate(self, requests: Sequence[ChatRequest]) -> list[TeacherReply]:
        if self.options.latency_s:  # a remote teacher's wait, without its work: the run's own cost stays measurable
            time.sleep(self.options.latency_s)
        replies = []
        for request in requests:
            try:
                replies.append(self._reply(request))
            except Exception as e:  # one request's failure must not take its batch down
                replies.append(TeacherReply(error=f"oracle: {type(e).__name__}: {e}"))
        return replies

    def close(self) -> None:
        pass

    def _reply(self, request: ChatRequest) -> TeacherReply:
        record: Record | None = request.meta.get("record")
        if record is None or not record.facts or record.facts.get("family") not in FAMILIES:
            return TeacherReply(error="the oracle teacher needs synthetic records that carry their ground truth")
        stage = request.meta["stage"]
        declared = STAGES.get(stage)
        write = _WRITERS.get(declared.writes[0] if declared else stage)  # an ad-hoc request (the caption baseline) names its field
        if write is None:
            return TeacherReply(error=f"the oracle has no answer for stage {stage!r}")
        plan = plan_injection(record, self.options)
        n = request.sampling.n
        prompt_tokens = sum(_words(m["content"] if isinstance(m["content"], str) else m["content"][-1]["text"]) for m in request.messages)
        texts, finishes = write(record, request, plan, self.options)
        if len(texts) == 1 and n > 1:
            texts, finishes = texts * n, finishes * n
        outputs = tuple(TeacherOutput(t, f, prompt_tokens, _words(t)) for t, f in zip(texts, finishes))
        injected = plan if plan and plan["stage"] == stage and (stage != "think" or plan["turn"] == request.meta["turn"]) else None
        meta = {"injected": {k: plan[k] for k in ("kind", "stage", "detail")}} if injected else {}
        return TeacherReply(outputs, meta=meta)
