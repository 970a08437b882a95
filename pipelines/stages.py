"""The four teacher stages. Each is three separate steps: build the prompt(s) for a record,
call the teacher (done by RunInference, outside this module), parse the replies into the
fields the stage adds.

- statements: the QA pairs -> one declarative sentence per pair (text only)
- focus:      the questions -> a short phrase of what to look at (text only)
- extraction: image + statements -> fine-grained description (N samples)
- verify:     (when enabled) claims + the extraction, other samples or image -> verdicts
              (pipelines/verify.py)
- think:      extraction + one question -> reasoning ending in "Answer: X" (per turn, M samples)
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from pipelines import verify
from pipelines.config import ConfigError
from pipelines.core.answers import parse_final_answer
from pipelines.core.record import Record, StageProvenance, TeacherOutput, ThinkSample
from pipelines.core.templates import TemplateFailure
from pipelines.prompting import prompt_hash, render, template_inputs
from pipelines.recipe import Recipe, TeacherConfig, VerifyConfig
from pipelines.teachers.base import ChatRequest, Sampling, TeacherReply, user_message

STAGE_ORDER = ("statements", "focus", "extraction", "verify", "think")
# What the think stage may see. Sufficiency means something only if the reasoner was shown
# the extraction and the question and nothing else: no image, no statements, no answer.
THINK_INPUTS = {"extraction", "question", "choices"}
# What each stage's template gets, for one ordinary record: rendered once before the run, so
# a template that fails, hangs or blows up whatever the record is refused as a recipe error.
SAMPLE_INPUTS = {
    "statements": {"qa_pairs": [{"question": "What colour is the bus?", "answer": "red"}]},
    "focus": {"questions": ["What colour is the bus?"]},
    "extraction": {"statements": ["The bus is red."]},
    "verify": {"claims": ["The bus is red."], "evidence": "A red bus stands at a stop.", "json": False},
    "think": {"extraction": "A red bus stands at a stop.", "question": "What colour is the bus?", "choices": []},
    "student": {"focus": "the colour of the bus"},
}
_NUMBERING = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|pair \d+:?)\s*", re.IGNORECASE)


def stage_inputs(name: str, template: str, with_image: bool = False) -> tuple[str, ...]:
    """What the teacher is shown in a stage: the template's variables, plus the image."""
    return template_inputs(template) + (("image",) if name == "extraction" or with_image else ())


def active_stages(recipe: Recipe) -> tuple[str, ...]:
    """The stages a recipe runs, in order: verify only when enabled."""
    return tuple(n for n in STAGE_ORDER if n != "verify" or recipe.stages.verify.enabled)


@dataclass
class Stage:
    name: str
    template: str
    sampling: Sampling
    teacher: TeacherConfig
    options: VerifyConfig | None = None  # the verify stage's

    def prompts(self, record: Record) -> list[tuple[str, bool, dict]]:
        """(prompt text, attach the image?, meta) per teacher request."""
        if self.name == "statements":
            qa = [{"question": t.question, "answer": t.answer_text} for t in record.turns]
            return [(render(self.template, qa_pairs=qa), False, {})]
        if self.name == "focus":
            return [(render(self.template, questions=[t.question for t in record.turns]), False, {})]
        if self.name == "extraction":
            return [(render(self.template, statements=list(record.statements or ())), True, {})]
        if self.name == "verify":
            json_wanted = verify.wants_json(self.teacher)
            return [(render(self.template, claims=claims, evidence=evidence, json=json_wanted), self.options.with_image,
                     {"kind": kind, "claims": claims, "with_image": self.options.with_image, "json": json_wanted})
                    for kind, claims, evidence in verify.claim_sets(record, self.options.sentences, self.options.with_image)]
        return [
            (render(self.template, extraction=record.extraction, question=t.question, choices=t.option_lines()), False, {"turn": i})
            for i, t in enumerate(record.turns)
        ]

    def prepare(self, record: Record) -> tuple[Record, list[ChatRequest]]:
        """(record, its requests); a record whose prompt cannot be rendered (the template
        breaks a limit, or fails on this record's data) fails with `<stage>_template_error`."""
        try:
            return record, self.requests(record)
        except TemplateFailure as e:
            return record.fail(f"{self.name}_template_error", str(e)), []

    def requests(self, record: Record) -> list[ChatRequest]:
        if record.status != "ok":
            return []
        out = []
        for text, with_image, meta in self.prompts(record):
            messages = user_message(text, record.images if with_image else ())
            schema = verify.schema(len(meta["claims"])) if meta.get("json") else None
            out.append(ChatRequest(messages, self.sampling, {"stage": self.name, "record": record, **meta}, schema))
        return out

    def apply(self, record: Record, requests: list[ChatRequest], replies: list[TeacherReply]) -> Record:
        """The record with this stage's fields added, or failed with the teacher's error.
        `requests` are the ones `requests(record)` built (their prompts are hashed)."""
        if record.status != "ok":
            return record
        for reply in replies:
            if reply.error or not reply.outputs:
                return record.fail(f"{self.name}_teacher_error", reply.error or "no completion returned")
        injected = [r.meta["injected"] for r in replies if isinstance(r.meta.get("injected"), dict)]  # the oracle's record of a mistake
        texts = [_prompt_text(r) for r in requests]
        provenance = StageProvenance(
            template=self.template,
            prompt_sha256=prompt_hash(*texts),
            inputs=stage_inputs(self.name, self.template, bool(self.options and self.options.with_image)),
            backend=self.teacher.backend,
            model=self.teacher.model,
            revision=self.teacher.revision,
            sampling=self.sampling.as_dict(),
        )
        fields = self.parse(record, replies, requests)
        return record.add(provenance={self.name: provenance}, injected=injected, **fields)

    def parse(self, record: Record, replies: list[TeacherReply], requests: list[ChatRequest] = ()) -> dict:
        first: TeacherOutput = replies[0].outputs[0]
        if self.name == "statements":
            lines = [_NUMBERING.sub("", ln).strip() for ln in first.text.splitlines()]
            return {"statements": tuple(ln for ln in lines if ln)}
        if self.name == "focus":
            line = next((ln.strip() for ln in first.text.splitlines() if ln.strip()), "")
            return {"focus": line.strip("\"'").rstrip(".")}
        if self.name == "extraction":
            return {"extractions": tuple(dataclasses.replace(o, text=o.text.strip()) for o in replies[0].outputs)}
        if self.name == "verify":
            return {"judgements": tuple(j for q, r in zip(requests, replies)
                                        for j in verify.judgements(q.meta["kind"], q.meta["claims"], r.outputs[0], self.options.with_image))}
        return {"reasoning": tuple(tuple(ThinkSample(o, parse_final_answer(o.text)) for o in r.outputs) for r in replies)}


def _prompt_text(request: ChatRequest) -> str:
    content = request.messages[-1]["content"]
    return content if isinstance(content, str) else next(p["text"] for p in content if p["type"] == "text")


def build_stages(recipe: Recipe) -> list[Stage]:
    stages = []
    for name in active_stages(recipe):
        cfg = getattr(recipe.stages, name)
        try:
            inputs = set(template_inputs(cfg.template))
            render(cfg.template, **SAMPLE_INPUTS[name])  # a template that breaks a limit on any record fails here
        except (FileNotFoundError, TemplateFailure) as e:
            raise ConfigError(f"stages.{name}.template: {e}") from None
        if name == "think" and not inputs <= THINK_INPUTS:
            raise ConfigError(
                f"stages.think.template: {cfg.template!r} uses {sorted(inputs - THINK_INPUTS)}; the reasoner may only "
                f"see {sorted(THINK_INPUTS)}, or the sufficiency check would be meaningless"
            )
        if name == "verify" and not {"claims"} <= inputs:
            raise ConfigError(f"stages.verify.template: {cfg.template!r} must use `claims` (and may use `evidence`, `json`)")
        stages.append(Stage(name, cfg.template, cfg.sampling, recipe.stage_teacher(name), cfg if name == "verify" else None))
    try:
        render(recipe.stages.student_prompt, **SAMPLE_INPUTS["student"])
    except (FileNotFoundError, TemplateFailure) as e:
        raise ConfigError(f"stages.student_prompt: {e}") from None
    return stages
