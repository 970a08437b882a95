"""The pipeline at scale against its teachers: a fleet of OpenAI-compatible endpoints (least in
flight first, a failing endpoint rested and tried again), a pre-flight that stops a run whose
teacher cannot answer before a record is read (exit 2), a run that stops when its teacher is
gone (exit 1, the previous dataset kept, the replies so far cached), failures shown live."""

import re
import socket
import time

import pytest

from pipelines.commands.cli import main
from pipelines.commands.run import run
from pipelines.config.recipe import OpenAIOptions, TeacherConfig, read_recipe
from pipelines.teachers.base import ChatRequest, Sampling, user_message
from pipelines.teachers.fleet import Fleet
from tests.fault_server import FaultServer

ANSWER = "The left beaker holds 4 particles.\nAnswer: 4"


def _dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def _recipe(tmp_path, urls, *extra, n=16):
    first, rest = urls[0], urls[1:]
    return ["sources.0.synthetic.num_records=%d" % n, "sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers]",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={first}",
            f"teacher.openai.base_urls=[{', '.join(rest)}]", "teacher.openai.max_retries=2", "teacher.openai.backoff_s=0.01",
            "teacher.openai.timeout_s=5", "stages.think.sampling.n=1", "filters=[{name: degeneration}]",
            f"cache.dir={tmp_path / 'cache'}", *extra]


def test_least_in_flight_first_and_a_failing_endpoint_rests():
    now = [0.0]
    fleet = Fleet(["a", "b", "c"], cooldown_s=10, clock=lambda: now[0])
    picks = [fleet.pick() for _ in range(3)]
    assert sorted(e.url for e in picks) == ["a", "b", "c"]  # one each before any gets a second
    fleet.done(picks[0], transport_failure=True)
    fleet.done(picks[1], transport_failure=False)
    assert fleet.pick().url == "b" and fleet.awake() == 2  # a rests; b is free, c still busy
    now[0] = 11
    assert fleet.awake() == 3  # rested: tried again
    a = fleet.pick()
    assert a.url == "a"  # the fewest in flight
    fleet.done(a, transport_failure=True)  # failed again: rests twice as long
    assert a.rests_until == now[0] + 20
    assert fleet.take_stats() and not fleet.take_stats()  # counted once


def test_a_fleet_spreads_the_work_and_goes_on_without_a_dead_endpoint(tmp_path):
    """Two live endpoints and a dead one: every record ends, the live ones share the calls, the
    dead one is counted with its failures, and the pre-flight lets the run start."""
    live = [FaultServer(answer=ANSWER, delay_s=0.02), FaultServer(answer=ANSWER, delay_s=0.02)]
    dead = _dead_url()
    try:
        outcome = run(read_recipe("quickstart", _recipe(tmp_path, [live[0].url, dead, live[1].url], f"output.dir={tmp_path / 'out'}")))
    finally:
        for s in live:
            s.close()
    f = outcome.funnel
    assert f.records_in == 16 == f.kept + f.rejected + f.failed and f.failed == 0
    assert min(s.served for s in live) > 0.3 * sum(s.served for s in live)  # shared
    endpoints = f.endpoints
    dead_label = dead.split("//")[1].split("/")[0]
    assert endpoints[dead_label]["failures"] == endpoints[dead_label]["calls"] > 0
    assert sum(e["calls"] for e in endpoints.values()) >= f.teacher_requests
    assert f.to_dict()["endpoints"] == endpoints  # in funnel.json


@pytest.mark.parametrize("case, message", [
    ("closed", "cannot connect"),
    ("model", "it serves 'other-model', not 'served'"),
    ("down", "HTTP 503"),
])
def test_a_teacher_that_cannot_answer_stops_the_run_before_a_record_is_read(tmp_path, capsys, case, message):
    server = FaultServer(answer=ANSWER, models=["other-model"] if case == "model" else None, fail_after=0 if case == "down" else None)
    url = _dead_url() if case == "closed" else server.url
    try:
        args = ["run", "quickstart", "--no-progress", *(a for s in _recipe(tmp_path, [url], f"output.dir={tmp_path / 'out'}") for a in ("--set", s))]
        start = time.perf_counter()
        code = main(args)
    finally:
        server.close()
    err = capsys.readouterr().err
    assert code == 2 and "pre-flight" in err and message in err and "'served'" in err and time.perf_counter() - start < 30, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_missing_endpoint_is_a_recipe_error_naming_the_key(tmp_path, capsys):
    assert main(["run", "quickstart", "--set", "teacher.backend=openai", "--set", "teacher.model=m",
                 "--set", f"output.dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert "teacher: openai.base_url: the openai backend needs an endpoint" in err and "Traceback" not in err
    assert main(["run", "quickstart", "--set", "teacher.backend=transformers", "--set", f"output.dir={tmp_path / 'out'}"]) == 2
    assert "teacher: model: name the model the transformers backend serves" in capsys.readouterr().err


def test_a_teacher_gone_mid_run_stops_it_fast_keeping_the_dataset_and_the_cache(tmp_path, capsys):
    """The endpoint serves 12 replies, then answers 503 to everything: after three batches in
    a row of nothing but failures the run stops (exit 1) in seconds, the earlier dataset is as
    it was, and the same command against a teacher that is back pays only for what is missing."""
    from tests.test_output import _digest

    good = run(read_recipe("quickstart", ["sources.0.synthetic.num_records=6", "sources.0.synthetic.image_size=64",
                                          f"output.dir={tmp_path / 'out'}", "cache.dir=null"])).out_dir
    before = _digest(good)
    dying = FaultServer(answer=ANSWER, fail_after=12)
    try:
        sets = _recipe(tmp_path, [dying.url], f"output.dir={good}", "teacher.batch_size=4", "teacher.openai.max_retries=1", n=40)
        start = time.perf_counter()
        code = main(["run", "quickstart", "--no-progress", *(a for s in sets for a in ("--set", s))])
        took = time.perf_counter() - start
    finally:
        dying.close()
    err = capsys.readouterr().err
    assert code == 1 and "stopped: the openai teacher 'served' failed every request of 3 batches in a row" in err, err
    assert "HTTP 503" in err and "is left as it was" in err and took < 60
    assert _digest(good) == before
    back = FaultServer(answer=ANSWER)
    try:
        outcome = run(read_recipe("quickstart", _recipe(tmp_path, [back.url], f"output.dir={good}", "teacher.batch_size=4", n=40)))
    finally:
        back.close()
    assert outcome.funnel.cache_hits >= 12 and outcome.funnel.records_in == 40  # the 12 replies paid before were not paid again


def test_failures_show_while_the_run_goes_on(tmp_path, monkeypatch):
    """The display hears of a failed record where it fails, before it is written."""
    from pipelines.observe import progress

    events = []

    class Recording(progress.Display):
        def failure(self, reason, detail):
            super().failure(reason, detail)
            events.append(("failure", reason))

        def tick(self, step, n, status):
            super().tick(step, n, status)
            if status == "failed":
                events.append(("written", status))

    server = FaultServer(answer=ANSWER)
    template = tmp_path / "think.jinja"
    template.write_text("{{ extraction }}\nQuestion: {{ question }}{% if 'left beaker' in question %} [[500 always]]{% endif %}"
                        "{% for c in choices %}\n{{ c }}{% endfor %}")
    display = Recording(["source", "written"], None)
    progress.set_listener(display)
    try:
        run(read_recipe("quickstart", _recipe(tmp_path, [server.url], f"output.dir={tmp_path / 'out'}", f"stages.think.template={template}",
                                             "teacher.openai.max_retries=0", "output.max_failed_share=1")))
    finally:
        progress.set_listener(None)
        server.close()
    assert events and events[0] == ("failure", "think_teacher_error")
    assert display.failing == sum(1 for e in events if e[0] == "written")
    # the one endpoint answers 500 to some prompts, so it may be resting when the run ends
    assert "last failure think_teacher_error: HTTP 500" in display.outcome() and re.search(r"endpoints up [01]/1", display.outcome())


def test_the_fleet_shares_one_cache_whatever_endpoint_answered(tmp_path):
    from pipelines.teachers.cache import request_key, teacher_identity

    one = TeacherConfig(backend="openai", model="m", openai=OpenAIOptions(base_url="http://a:1/v1"))
    fleet = TeacherConfig(backend="openai", model="m", openai=OpenAIOptions(base_url="http://b:2/v1", base_urls=["http://c:3/v1"]))
    request = ChatRequest(user_message("Describe."), Sampling())
    assert request_key(teacher_identity(one), request) == request_key(teacher_identity(fleet), request)


def test_vllm_replicas_are_a_fleet_of_servers(tiny_idefics3):
    """Two vLLM servers of the CPU build, one teacher: requests spread over both."""
    pytest.importorskip("vllm")
    from pipelines.config.recipe import VLLMOptions
    from pipelines.teachers.vllm_server import VLLMServerTeacher

    teacher = VLLMServerTeacher(TeacherConfig(backend="vllm", model=str(tiny_idefics3), vllm=VLLMOptions(
        dtype="float32", max_model_len=512, gpu_memory_utilization=0.05, mode="server", replicas=2)))
    try:
        replies = teacher.generate([ChatRequest(user_message(f"Say {i}."), Sampling(max_tokens=4)) for i in range(12)])
        assert all(r.error is None for r in replies)
        calls = {label: c for label, (c, f) in teacher.endpoint_stats().items()}
        assert len(calls) == 2 and min(calls.values()) >= 3, calls
    finally:
        teacher.close()
    assert all(s.proc.poll() is not None for s in teacher.servers)


def test_replica_devices():
    from pipelines.teachers.vllm_server import replica_devices

    assert [replica_devices(i, 1, None) for i in range(3)] == ["0", "1", "2"]
    assert replica_devices(1, 2, "4,5,6,7") == "6,7"
    with pytest.raises(ValueError, match="only 2 are visible"):
        replica_devices(1, 2, "0,1")
    with pytest.raises(Exception, match="several engines need mode: server"):
        read_recipe("quickstart", ["teacher.backend=vllm", "teacher.model=m", "teacher.vllm.replicas=2"])




def test_a_local_model_that_does_not_load_stops_the_run_before_it_starts(tmp_path, capsys):
    """A mistyped model path: exit 2 naming the stage and the model, not a traceback from a worker."""
    missing = tmp_path / "no-such-model"
    code = main(["run", "quickstart", "--no-progress", "--set", "stages.think.teacher.backend=transformers",
                 "--set", f"stages.think.teacher.model={missing}", "--set", f"output.dir={tmp_path / 'out'}"])
    err = capsys.readouterr().err
    assert code == 2 and "pre-flight" in err and "think stage" in err and str(missing) in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()
