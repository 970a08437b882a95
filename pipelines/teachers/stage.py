"""A declared stage (`pipelines.stages`) bound to what a recipe set for it: its template,
sampling and teacher. Three separate steps per record: `requests` builds the teacher
requests from the stage's prompts, the teacher answers them (RunInference in the pipeline,
a plain loop in the evaluation), `apply` adds the stage's fields and provenance."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import ConfigError
from pipelines.config.recipe import Recipe, TeacherConfig, VerifyConfig
from pipelines.core.record import Record, StageProvenance
from pipelines.core.templates import TemplateFailure
from pipelines.stages import STAGE_ORDER, STAGES, STUDENT_SAMPLE, Prompt, StageSpec, stage_inputs
from pipelines.stages.prompting import prompt_hash, render, template_inputs
from pipelines.teachers.base import ChatRequest, Sampling, TeacherReply, user_message


def active_stages(recipe: Recipe) -> tuple[str, ...]:
    """The stages a recipe runs, in order: an optional one (verify) only when enabled."""
    return tuple(n for n in STAGE_ORDER if not STAGES[n].optional or getattr(recipe.stages, n).enabled)


@dataclass
class Stage:
    name: str
    template: str
    sampling: Sampling
    teacher: TeacherConfig
    options: VerifyConfig | None = None  # the stage's own recipe keys beyond template and sampling (verify's)

    @property
    def spec(self) -> StageSpec:
        return STAGES[self.name]

    def prompts(self, record: Record) -> list[Prompt]:
        """The stage's prompts for `record`, rendered with this stage's template."""
        return self.spec.prompts(self, record)

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
        return [ChatRequest(user_message(p.text, record.images if p.image else ()), self.sampling,
                            {"stage": self.name, "record": record, "prompt": p, **p.meta}, p.schema)
                for p in self.prompts(record)]

    def apply(self, record: Record, requests: list[ChatRequest], replies: list[TeacherReply]) -> Record:
        """The record with this stage's fields added, or failed with the teacher's error.
        `requests` are the ones `requests(record)` built (their prompts are hashed)."""
        if record.status != "ok":
            return record
        for reply in replies:
            if reply.error or not reply.outputs:
                return record.fail(f"{self.name}_teacher_error", reply.error or "no completion returned")
        injected = [r.meta["injected"] for r in replies if isinstance(r.meta.get("injected"), dict)]  # the oracle's record of a mistake
        prompts = [q.meta["prompt"] for q in requests]
        provenance = StageProvenance(
            template=self.template,
            prompt_sha256=prompt_hash(*(p.text for p in prompts)),
            inputs=stage_inputs(self.name, self.template, bool(self.options and self.options.with_image)),
            backend=self.teacher.backend,
            model=self.teacher.model,
            revision=self.teacher.revision,
            sampling=self.sampling.as_dict(),
        )
        fields = self.spec.parse(self, record, replies, prompts)
        return record.add(provenance={self.name: provenance}, injected=injected, **fields)


def build_stages(recipe: Recipe) -> list[Stage]:
    """The recipe's active stages, each template checked: it exists, uses what its stage
    allows, and renders on an ordinary record (a template that fails, hangs or blows up
    whatever the record is refused here, as a recipe error)."""
    stages = []
    for name in active_stages(recipe):
        cfg, spec = getattr(recipe.stages, name), STAGES[name]
        try:
            inputs = set(template_inputs(cfg.template))
            render(cfg.template, **spec.sample)
        except (FileNotFoundError, TemplateFailure) as e:
            raise ConfigError(f"stages.{name}.template: {e}") from None
        problem = spec.check_inputs(cfg.template, inputs)
        if problem:
            raise ConfigError(f"stages.{name}.template: {problem}")
        options = cfg if isinstance(cfg, VerifyConfig) else None
        stages.append(Stage(name, cfg.template, cfg.sampling, recipe.stage_teacher(name), options))
    try:
        render(recipe.stages.student_prompt, **STUDENT_SAMPLE)
    except (FileNotFoundError, TemplateFailure) as e:
        raise ConfigError(f"stages.student_prompt: {e}") from None
    return stages
