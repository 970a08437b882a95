"""The reply cache: reruns are free, a killed run resumes paying only for missing calls."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipelines.commands.run import run
from pipelines.config.recipe import OracleOptions, TeacherConfig, read_recipe
from pipelines.core.record import TeacherOutput
from pipelines.teachers.base import ChatRequest, Sampling, TeacherReply, user_message
from pipelines.teachers.cache import ReplyCache, request_key, teacher_identity
from pipelines.teachers.transformers_teacher import TransformersTeacher
from tests.published import published_rows

REPO = Path(__file__).resolve().parents[1]
ORACLE = teacher_identity(TeacherConfig())


def _req(text="Describe.", **sampling):
    return ChatRequest(user_message(text), Sampling(**sampling))


def test_round_trip_and_errors_are_never_cached(tmp_path):
    cache = ReplyCache(str(tmp_path))
    reply = TeacherReply((TeacherOutput("a", "stop", 3, 1, "hm"), TeacherOutput("b", "length", 3, 9)), None, {"injected": {"kind": "x"}})
    cache.put("ab" * 32, reply)
    assert cache.get("ab" * 32) == reply
    cache.put("cd" * 32, TeacherReply(error="HTTP 500"))
    assert cache.get("cd" * 32) is None
    assert not list(tmp_path.rglob("*.tmp"))  # the atomic write left no temporary file


def test_a_damaged_entry_is_a_miss(tmp_path):
    cache = ReplyCache(str(tmp_path))
    (tmp_path / "ef").mkdir()
    (tmp_path / "ef" / f"{'ef' * 32}.json").write_text('{"outputs": [{"text": "cut')
    assert cache.get("ef" * 32) is None


GOOD = TeacherReply((TeacherOutput("a", "stop", 3, 1), TeacherOutput("b", "stop", 3, 1)))


def _entry(key, outputs=None, **extra):
    outputs = [{"text": "a", "finish_reason": "stop", "prompt_tokens": 3, "completion_tokens": 1, "thinking": ""}] if outputs is None else outputs
    return json.dumps({"key": key, "outputs": outputs, "meta": {}, **extra})


@pytest.mark.parametrize("damage", [
    lambda path, key: path.write_bytes(b'{"key": "' + key.encode() + b'", "outputs": [{"text": "\xff\xfe"}]}'),  # not UTF-8
    lambda path, key: path.mkdir(),  # a folder took the entry's name
    lambda path, key: path.write_text(_entry(key, [{"text": 3, "finish_reason": "stop", "prompt_tokens": 3,
                                                    "completion_tokens": 1, "thinking": ""}])),  # a number for a text
    lambda path, key: path.write_text(_entry(key, [{"text": "a", "finish_reason": "stop", "prompt_tokens": "many",
                                                    "completion_tokens": 1, "thinking": ""}])),
    lambda path, key: path.write_text(_entry(key, [])),  # no completion: a failure, never a hit
    lambda path, key: path.write_text(_entry("0" * 64)),  # another call's reply under this name
    lambda path, key: path.write_text(json.dumps(["not", "an", "entry"])),
    lambda path, key: path.write_text(_entry(key, meta=None)),
], ids=["not-utf8", "folder", "text-type", "token-type", "empty", "other-key", "list", "meta-type"])
def test_any_unusable_entry_is_a_miss_and_is_overwritten(tmp_path, damage):
    cache, key = ReplyCache(str(tmp_path)), "ab" * 32
    path = tmp_path / "ab" / f"{key}.json"
    path.parent.mkdir()
    damage(path, key)
    assert cache.get(key) is None
    cache.put(key, GOOD)
    assert cache.get(key, 2) == GOOD


def test_an_entry_with_fewer_completions_than_asked_is_a_miss(tmp_path):
    cache, key = ReplyCache(str(tmp_path)), "cd" * 32
    cache.put(key, GOOD)
    assert cache.get(key, 2) == GOOD and cache.get(key, 3) is None


def test_a_cache_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path, caplog):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")  # no folder can be made under it, even by root
    recipe = read_recipe("quickstart", ["sources.0.synthetic.num_records=6", "sources.0.synthetic.image_size=64",
                                        f"output.dir={tmp_path / 'out'}", f"cache.dir={blocked / 'cache'}"])
    outcome = run(recipe)
    assert outcome.funnel.records_in == 6 and outcome.funnel.teacher_requests > 0
    warnings = [r for r in caplog.records if "cannot be written" in r.getMessage()]
    assert len(warnings) == 1 and "goes on without storing replies" in warnings[0].getMessage()


def test_a_rerun_over_a_damaged_cache_calls_again_only_for_the_damaged_entries(tmp_path):
    args = ["sources.0.synthetic.num_records=10", "sources.0.synthetic.image_size=64", f"cache.dir={tmp_path / 'cache'}"]
    first = run(read_recipe("quickstart", [*args, f"output.dir={tmp_path / 'a'}"]))
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    for i, entry in enumerate(entries[:12]):
        if i % 3 == 0:
            entry.write_bytes(b"\xff" * 10)
        elif i % 3 == 1:
            entry.write_text(_entry(entry.stem, []))
        else:
            entry.unlink()
            entry.mkdir()
    second = run(read_recipe("quickstart", [*args, f"output.dir={tmp_path / 'b'}"]))
    assert second.funnel.teacher_requests == 12
    assert _rows(first.out_dir) == _rows(second.out_dir)


def test_fsspec_urls_work(tmp_path):
    cache = ReplyCache("memory://extract-think-test")
    reply = TeacherReply((TeacherOutput("x", "stop"),))
    cache.put("12" * 32, reply)
    assert cache.get("12" * 32) == reply


def test_the_key_covers_what_decides_the_answer_and_nothing_else():
    base = request_key(ORACLE, _req())
    assert request_key(ORACLE, _req()) == base
    assert request_key(ORACLE, _req("Describe!")) != base
    assert request_key(ORACLE, _req(seed=1)) != base
    assert request_key(ORACLE, _req(temperature=0.5)) != base
    assert request_key(teacher_identity(TeacherConfig(model="other")), _req()) != base
    assert request_key(teacher_identity(TeacherConfig(revision="v2")), _req()) != base
    assert request_key(teacher_identity(TeacherConfig(batch_size=64)), _req()) == base  # speed only


def _recipe(tmp_path, model, n=6, out="out"):
    return read_recipe("quickstart", [
        f"sources.0.synthetic.num_records={n}", "sources.0.synthetic.image_size=64", "teacher.backend=transformers",
        f"teacher.model={model}", "teacher.batch_size=2", "stages.think.sampling.n=1",
        *(f"stages.{s}.sampling.max_tokens=6" for s in ("statements", "focus", "extraction", "think")),
        f"output.dir={tmp_path / out}", f"cache.dir={tmp_path / 'cache'}",
        "output.min_kept=0",  # a random tiny model's records are all rejected; the run still publishes them
    ])


def _rows(out):
    rows = {}
    for config in ("extraction", "reasoning", "rejected"):
        if (out / config).exists():
            ds = published_rows(str(out), config).remove_columns(
                [c for c in ("image",) if c in published_rows(str(out), config).column_names])
            rows[config] = sorted(ds.to_list(), key=lambda r: r["id"])
    return rows


@pytest.mark.slow
def test_a_rerun_makes_zero_calls_loads_no_model_and_publishes_the_same(tmp_path, tiny_idefics3, monkeypatch):
    calls, loads = [], []
    real_generate, real_init = TransformersTeacher.generate, TransformersTeacher.__init__
    monkeypatch.setattr(TransformersTeacher, "generate", lambda self, reqs: calls.append(len(reqs)) or real_generate(self, reqs))
    monkeypatch.setattr(TransformersTeacher, "__init__", lambda self, cfg: loads.append(1) or real_init(self, cfg))

    first = run(_recipe(tmp_path, tiny_idefics3, out="a"))
    # every distinct request is one call and one cache file (an identical request later in the
    # same run, e.g. two records whose tiny-model extractions came out alike, is a hit)
    assert sum(calls) == first.funnel.teacher_requests == len(list((tmp_path / "cache").rglob("*.json"))) > 0
    from pipelines.teachers import unload_all

    unload_all()
    calls.clear(), loads.clear()
    second = run(_recipe(tmp_path, tiny_idefics3, out="b"))
    assert calls == [] and loads == []
    assert second.funnel.teacher_requests == 0 and second.funnel.cache_hits == first.funnel.teacher_requests + first.funnel.cache_hits
    assert _rows(first.out_dir) == _rows(second.out_dir)


@pytest.mark.slow
def test_after_kill_9_a_rerun_redoes_only_unfinished_calls(tmp_path, tiny_idefics3):
    n = 40
    clean = run(_recipe(tmp_path / "clean", tiny_idefics3, n=n))
    total = clean.funnel.teacher_requests  # one call per distinct request
    assert total == len(list((tmp_path / "clean" / "cache").rglob("*.json")))

    recipe_args = [f"--set=sources.0.synthetic.num_records={n}", "--set=sources.0.synthetic.image_size=64", "--set=teacher.backend=transformers",
                   f"--set=teacher.model={tiny_idefics3}", "--set=teacher.batch_size=2", "--set=stages.think.sampling.n=1",
                   *(f"--set=stages.{s}.sampling.max_tokens=6" for s in ("statements", "focus", "extraction", "think")),
                   f"--set=output.dir={tmp_path / 'killed'}", f"--set=cache.dir={tmp_path / 'cache'}"]
    proc = subprocess.Popen([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress", *recipe_args],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    cache_dir = tmp_path / "cache"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(cache_dir.rglob("*.json"))) < total // 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(cache_dir.rglob("*.json")))
    assert 0 < done < total, "the kill must land mid-run"
    assert not (tmp_path / "killed").exists()  # nothing half-published

    resumed = run(_recipe(tmp_path, tiny_idefics3, n=n, out="killed"))
    assert resumed.funnel.teacher_requests == total - done  # only what had not finished
    assert resumed.funnel.teacher_requests + resumed.funnel.cache_hits == clean.funnel.teacher_requests + clean.funnel.cache_hits
    assert _rows(resumed.out_dir) == _rows(clean.out_dir)


def test_stages_that_differ_only_in_batching_share_one_engine_and_one_cache():
    """batch_size, max_batch_tokens, image_tokens and vLLM's prefetch decide how calls are
    grouped and sent, never which engine answers or what it answers."""
    from pipelines.config.recipe import VLLMOptions
    from pipelines.teachers import teacher_key

    a = TeacherConfig(backend="vllm", model="m", vllm=VLLMOptions(max_model_len=2048))
    b = TeacherConfig(backend="vllm", model="m", batch_size=3, max_batch_tokens=4096, image_tokens=256,
                      vllm=VLLMOptions(max_model_len=2048, prefetch=0), oracle=OracleOptions(error_rate=0.5))
    assert teacher_key(a) == teacher_key(b) and teacher_identity(a) == teacher_identity(b)
    served = TeacherConfig(backend="vllm", model="m", vllm=VLLMOptions(max_model_len=2048, mode="server", gpu_memory_utilization=0.5))
    assert teacher_key(served) != teacher_key(a) and teacher_identity(served) == teacher_identity(a)  # another engine, same replies
    other = TeacherConfig(backend="vllm", model="m", vllm=VLLMOptions(max_model_len=4096))
    assert teacher_key(other) != teacher_key(a) and teacher_identity(other) != teacher_identity(a)
    from pipelines.teachers import load_teacher

    assert load_teacher(TeacherConfig(batch_size=2, max_batch_tokens=999)) is load_teacher(TeacherConfig(image_tokens=7))


_DEEP = "[" * 100_000 + "]" * 100_000
_OUT = '{"text": "a", "finish_reason": "stop", "prompt_tokens": 3, "completion_tokens": 1, "thinking": ""}'
# Entries no run writes, each as (key) -> file text: nesting past what Python decodes in each
# field, numbers out of range, NaN; each must be a miss (or, for surrogates, a repaired hit).
HOSTILE_ENTRIES = {
    "deep-top": lambda key: _DEEP,
    "deep-outputs": lambda key: f'{{"key": "{key}", "outputs": {_DEEP}, "meta": {{}}}}',
    "deep-output": lambda key: f'{{"key": "{key}", "outputs": [{_DEEP}], "meta": {{}}}}',
    "deep-text": lambda key: f'{{"key": "{key}", "outputs": [{_OUT.replace(chr(34) + "a" + chr(34), _DEEP)}], "meta": {{}}}}',
    "deep-meta": lambda key: f'{{"key": "{key}", "outputs": [{_OUT}], "meta": {{"injected": {_DEEP}}}}}',
    "deep-decodable-meta": lambda key: f'{{"key": "{key}", "outputs": [{_OUT}], "meta": {{"x": {"[" * 900 + "]" * 900}}}}}',
    "huge-count": lambda key: f'{{"key": "{key}", "outputs": [{_OUT.replace("3", "1" + "0" * 30)}], "meta": {{}}}}',
    "negative-count": lambda key: f'{{"key": "{key}", "outputs": [{_OUT.replace("3", "-3")}], "meta": {{}}}}',
    "nan-count": lambda key: f'{{"key": "{key}", "outputs": [{_OUT.replace("3", "NaN")}], "meta": {{}}}}',
    "digits-count": lambda key: f'{{"key": "{key}", "outputs": [{_OUT.replace("3", "9" * 5000)}], "meta": {{}}}}',
    "meta-injected-number": lambda key: f'{{"key": "{key}", "outputs": [{_OUT}], "meta": {{"injected": 7}}}}',
}


@pytest.mark.parametrize("kind", sorted(HOSTILE_ENTRIES))
def test_a_hostile_entry_is_a_miss_never_an_exception(tmp_path, kind):
    cache, key = ReplyCache(str(tmp_path)), "ab" * 32
    path = tmp_path / "ab" / f"{key}.json"
    path.parent.mkdir()
    path.write_text(HOSTILE_ENTRIES[kind](key))
    got = cache.get(key)
    if kind == "meta-injected-number":  # well-formed: served; the stage ignores a meta it does not understand
        assert got is not None and got.meta == {"injected": 7}
    else:
        assert got is None
    cache.put(key, GOOD)
    assert cache.get(key, 2) == GOOD


def test_an_entry_with_lone_surrogates_is_served_repaired(tmp_path):
    cache, key = ReplyCache(str(tmp_path)), "ab" * 32
    (tmp_path / "ab").mkdir()
    raw = _entry(key, [{"text": "caf@", "finish_reason": "stop", "prompt_tokens": 3, "completion_tokens": 1, "thinking": "#"}])
    (tmp_path / "ab" / f"{key}.json").write_text(raw.replace("@", "\\udcff").replace("#", "\\ud800"))  # JSON escapes
    got = cache.get(key)
    assert got.outputs[0].text == "caf\ufffd" and got.outputs[0].thinking == "\ufffd"


def test_a_rerun_over_a_fuzzed_cache_finishes_and_mends_it(tmp_path):
    """Every entry of a finished run replaced by one hostile shape or another: the rerun
    finishes with the same counts, pays for the entries it could not use (and only for
    those), and writes them anew."""
    import random

    overrides = ["sources.0.synthetic.num_records=24", "sources.0.synthetic.image_size=64", "teacher.oracle.error_rate=0.2",
                 f"cache.dir={tmp_path / 'cache'}"]
    first = run(read_recipe("quickstart", [*overrides, f"output.dir={tmp_path / 'a'}"])).funnel
    entries = sorted((tmp_path / "cache").rglob("*.json"))
    rng, kinds = random.Random(0), sorted(set(HOSTILE_ENTRIES) - {"meta-injected-number"})  # those that are misses
    broken = 0
    for path in entries:
        if rng.random() < 0.35:  # a third left as they were: served
            continue
        path.write_text(HOSTILE_ENTRIES[rng.choice(kinds)](path.stem))
        broken += 1
    second = run(read_recipe("quickstart", [*overrides, f"output.dir={tmp_path / 'b'}"])).funnel
    assert (second.records_in, second.kept, second.rejected, second.failed) == (24, first.kept, first.rejected, 0)
    assert second.teacher_requests + second.cache_hits == first.teacher_requests + first.cache_hits
    assert broken <= second.teacher_requests < first.teacher_requests  # each unusable entry paid for, the rest served
    cache = ReplyCache(str(tmp_path / "cache"))
    assert sum(cache.get(p.stem) is not None for p in entries) == len(entries)  # every entry readable again
