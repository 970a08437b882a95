"""Pipeline overhead: records per second through everything but the teacher (an instant
teacher that answers every prompt with the same text at once), per core, for 512-pixel
images; and, in the same run, the same records and the same instant teacher through
distilabel (installed in another environment, whose interpreter is given).

    python3 -m venv /tmp/dlv && /tmp/dlv/bin/pip install distilabel requests   # once, beside .venv
    python -m tests.bench.bench_overhead --records 1000 --distilabel-python /tmp/dlv/bin/python

Both read the same LLaVA JSON and PNG files and send the same four stages' requests
(statements, focus, extraction with the image and 3 samples, one think request per question
with 3 samples). extract-think also checks and normalises every image, deduplicates, runs
the default filter suite and publishes the dataset with its card and report; the distilabel
pipeline saves its distiset.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

TEXT = "The description settles it.\nAnswer: 4"


class InstantTeacher:
    backend, model, revision = "instant", "instant", "main"

    def generate(self, requests):
        from pipelines.core.record import TeacherOutput
        from pipelines.teachers.base import TeacherReply

        return [TeacherReply(tuple(TeacherOutput(TEXT, "stop", 0, 0) for _ in range(r.sampling.n))) for r in requests]

    def close(self):
        pass


def corpus(records: int, work: Path) -> Path:
    from pipelines.config.recipe import SyntheticSource
    from pipelines.sources.synthetic import make_record

    (work / "img").mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(records):
        r = make_record(i, SyntheticSource(image_size=512, seed=7))
        (work / "img" / f"{i}.png").write_bytes(r.images[0].bytes)
        conv = []
        for k, t in enumerate(r.turns):
            q = t.question + "".join(f"\n{chr(65 + j)}. {c}" for j, c in enumerate(t.choices))
            conv += [{"from": "human", "value": ("<image>\n" if k == 0 else "") + q}, {"from": "gpt", "value": t.answer}]
        entries.append({"id": str(i), "image": f"{i}.png", "conversations": conv})
    (work / "data.json").write_text(json.dumps(entries))
    return work / "data.json"


def ours(data: Path, work: Path) -> dict:
    import pipelines.teachers as teachers
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe

    teachers._build = lambda config: InstantTeacher()  # every stage's teacher answers at once
    recipe = read_recipe("quickstart", [
        "sources=[{kind: llava, name: bench, llava: {json: " + str(data) + ", image_root: " + str(work / "img") + "}}]",
        # an openai teacher by name (the recipe checks it); _build above makes it instant
        "teacher.backend=openai", "teacher.model=instant", "teacher.openai.base_url=http://127.0.0.1:9/v1", "teacher.preflight=false",
        "teacher.batch_size=64", f"output.dir={work / 'ours'}", "cache.dir=null",
        "output.min_kept=0"])  # throughput is measured, not what the instant answers keep
    started = time.perf_counter()
    outcome = run(recipe)
    return {"seconds": time.perf_counter() - started, "in": outcome.funnel.records_in, "requests": outcome.funnel.teacher_requests}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--distilabel-python", default="")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-overhead-"))
    data = corpus(args.records, work)
    cores = os.cpu_count() or 1
    rows = [("extract-think", ours(data, work))]
    if args.distilabel_python:
        done = subprocess.run([args.distilabel_python, str(Path(__file__).with_name("distilabel_side.py")), str(data),
                               str(work / "img"), str(work / "distilabel")], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        rows.append(("distilabel", json.loads(done.stdout.strip().splitlines()[-1])))
    print(f"\n{args.records} records, 512 px PNG, instant teacher, {cores} cores\n")
    print("| pipeline | seconds | records/s | records/s per core |\n|---|---|---|---|")
    for name, r in rows:
        print(f"| {name} | {r['seconds']:.1f} | {args.records / r['seconds']:.1f} | {args.records / r['seconds'] / cores:.1f} |")
    if len(rows) == 2:
        print(f"\nextract-think / distilabel throughput: {rows[1][1]['seconds'] / rows[0][1]['seconds']:.2f}")
    print(json.dumps(dict(rows)))


if __name__ == "__main__":
    main()
