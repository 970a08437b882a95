"""Pre-flight: before the first record is read, every teacher a stage uses shows it can answer.

- `openai` (and each endpoint of a fleet): `GET /models` must list the model where the
  endpoint has that list, and one tiny chat request (one token) must come back as a chat
  completion (a 429 or 5xx is tried again, three attempts in all). A fleet runs if at least one endpoint passes (the others rest, and are tried
  again during the run); none: the run stops.
- `transformers` and `vllm`: the model's config must load (a local folder, or a Hub id in the
  cache or reachable), so a mistyped path stops the run here, not in a worker.
- `oracle`: the sources must all be synthetic (it knows the answers only for scenes it drew).

A teacher that fails stops the run with `PreflightError` (the CLI's exit 2), naming the
stage, the endpoint, the model and the error; nothing is read or written before. Set
`teacher.preflight: false` to skip it (an endpoint that wakes up slowly).
"""

from __future__ import annotations

import json
import logging
import os
import time

from pipelines.config import ConfigError
from pipelines.config.recipe import Recipe, TeacherConfig, engine_identity
from pipelines.core.secrets import register_env, scrub

log = logging.getLogger(__name__)
TIMEOUT_S = 30.0
ATTEMPTS, BACKOFF_S = 3, 0.5  # for a one-token request answered 429 or 5xx
PROBE = "Reply with the word OK."  # the one-token chat request's message


class PreflightError(ConfigError):
    """A teacher cannot answer; the run was not started."""


def _check_endpoint(url: str, config: TeacherConfig) -> str | None:
    """Why this endpoint cannot serve `config.model`, or None."""
    import httpx

    from pipelines.teachers.openai_teacher import MalformedReply, parse_completion

    opts = config.openai
    register_env(opts.api_key_env)
    headers = {"Authorization": f"Bearer {os.environ.get(opts.api_key_env) or 'EMPTY'}"}
    timeout = min(opts.timeout_s, TIMEOUT_S)
    base = url.rstrip("/")
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False, headers=headers) as http:
            listed = http.get(f"{base}/models")
            if listed.status_code == 200:
                try:
                    ids = [m.get("id") for m in listed.json().get("data", []) if isinstance(m, dict)]
                except (ValueError, AttributeError):
                    ids = []
                if ids and config.model not in ids:
                    return f"it serves {', '.join(map(repr, ids[:5]))}, not {config.model!r}"
            body = {"model": config.model, "messages": [{"role": "user", "content": PROBE}],
                    "max_tokens": 1, "temperature": 0.0, **dict(opts.extra_body)}
            for attempt in range(ATTEMPTS):  # 429 and 5xx are transient by HTTP's own word: try again
                answer = http.post(f"{base}/chat/completions", content=json.dumps(body), headers={"Content-Type": "application/json"})
                if answer.status_code != 429 and answer.status_code < 500 or attempt == ATTEMPTS - 1:
                    break
                time.sleep(BACKOFF_S * 2 ** attempt)
            if answer.status_code >= 300:
                return f"HTTP {answer.status_code} to a one-token chat request: {answer.text[:200]}"
            parse_completion(answer.content[: opts.max_response_bytes], 1)
    except httpx.TimeoutException:
        return f"no answer within {timeout:g} s"
    except httpx.HTTPError as e:
        return f"cannot connect ({type(e).__name__}: {str(e)[:200]})"
    except MalformedReply as e:
        if "every completion is empty" in str(e):  # one token may well be empty text: the endpoint answered
            return None
        return f"its reply is not a chat completion ({e})"
    return None


def _check(config: TeacherConfig) -> list[str]:
    """Why `config`'s teacher cannot answer (one line per failed endpoint); [] when it can."""
    if config.backend == "openai":
        from pipelines.teachers.openai_teacher import endpoints_of

        urls = endpoints_of(config.openai)
        failed = [(u, why) for u in urls if (why := _check_endpoint(u, config))]
        if len(failed) < len(urls):
            for url, why in failed:  # a fleet goes on without them, for now
                log.warning("pre-flight: endpoint %s of %r: %s; the run goes on with the others", scrub(url), config.model, scrub(why))
            return []
        return [f"{scrub(url)}: {scrub(why)}" for url, why in failed]
    if config.backend in ("transformers", "vllm"):
        from transformers import AutoConfig

        extra = {"gguf_file": config.transformers.gguf_file} if config.backend == "transformers" and config.transformers.gguf_file else {}
        try:
            AutoConfig.from_pretrained(config.model, revision=config.revision,
                                       trust_remote_code=getattr(config, config.backend).trust_remote_code, **extra)
        except Exception as e:  # noqa: BLE001 - whatever it is, the model is not there
            return [f"the model {config.model!r} does not load ({type(e).__name__}: {scrub(str(e))[:300]})"]
    return []


def preflight(recipe: Recipe, stages: list[str]) -> None:
    """Check every distinct teacher of `stages` (see the module); PreflightError on the first
    that cannot answer."""
    seen = set()
    real = [s.name for s in recipe.sources if s.kind != "synthetic"]
    for stage in stages:
        config = recipe.stage_teacher(stage)
        if config.backend == "oracle" and real:  # checked here, not on loading: `inspect` needs no teacher
            raise PreflightError(f"stages.{stage}: the oracle teacher only works with synthetic sources, not {real}")
        key = json.dumps(engine_identity(config), sort_keys=True)
        if key in seen or not config.preflight:
            continue
        seen.add(key)
        problems = _check(config)
        if problems:
            raise PreflightError(f"the {stage} stage's teacher ({config.backend}, model {config.model!r}) cannot answer: "
                                 + "; ".join(problems))
