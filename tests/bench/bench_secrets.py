"""Secrets: with a Hub token and an API key in the environment, a whole session - a run
through the openai backend (the key really sent, to a loopback endpoint that fails some
attempts so errors get written, some with a 401 that quotes the key back), the local publish with its card and report, both trainer
exports, and a push to a loopback Hub - leaves neither secret in any output file, card,
report, cache entry, log or the Hub client's home.

    python -m tests.bench.bench_secrets [--records 60]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOKEN = "hf_benchTOKEN0123456789abcdefSECRET"
KEY = "sk-bench-KEY-0123456789abcdefSECRET"


def _cli(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.commands.cli", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=900)


def session(records: int, work: Path) -> dict:
    from tests.fault_server import FaultServer
    from tests.hub_server import HubServer

    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_TOKEN=TOKEN, ET_BENCH_KEY=KEY, OPENAI_API_KEY=KEY, HF_HOME=str(work / "hf_home"), HF_HUB_OFFLINE="1",
               HF_HUB_DISABLE_TELEMETRY="1")
    # the endpoint also answers some attempts with a 401 that quotes the Authorization header
    server = FaultServer(answer="The description settles it.\nAnswer: 4", fault_rate=0.2, hang_s=1.0,
                         random_kinds=("429", "500", "timeout", "malformed", "echo"))
    logs = []
    try:
        run = _cli(["run", "quickstart", "--no-progress", f"--set=sources.0.synthetic.num_records={records}",
                    "--set=sources.0.synthetic.image_size=64", "--set=teacher.backend=openai", "--set=teacher.model=served",
                    f"--set=teacher.openai.base_url={server.url}", "--set=teacher.openai.api_key_env=ET_BENCH_KEY",
                    "--set=teacher.openai.timeout_s=0.5", "--set=teacher.openai.backoff_s=0.01", "--set=filters=[{name: degeneration}]",
                    "--set=teacher.preflight=false", f"--set=output.dir={work / 'out'}", f"--set=cache.dir={work / 'cache'}"], env)
        logs.append(run.stdout + run.stderr)
        if run.returncode:
            raise RuntimeError(run.stderr[-2000:])
    finally:
        server.close()
    for fmt in ("trl", "llava"):
        done = _cli(["export", str(work / "out"), "--format", fmt, "--to", str(work / f"export-{fmt}")], env)
        logs.append(done.stdout + done.stderr)
        if done.returncode:
            raise RuntimeError(done.stderr[-2000:])
    with HubServer(TOKEN, faults={"commit": [500]}) as hub:
        push_env = {**env, "HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_XET": "1"}
        push_env.pop("HF_HUB_OFFLINE")
        pushed = _cli(["publish", str(work / "out"), "--repo", "me/secrets-bench"], push_env)
        logs.append(pushed.stdout + pushed.stderr)
        uploaded = b"".join(hub.repos.get("me/secrets-bench", {}).get("files", {}).values())
    import pyarrow.parquet as pq

    details = [d for f in (work / "out" / "rejected").glob("*.parquet") for d in pq.read_table(f, columns=["detail"])["detail"].to_pylist()]
    (work / "logs.txt").write_text("\n".join(logs))
    files = [p for p in work.rglob("*") if p.is_file()]
    hits = {}
    for p in files:
        data = p.read_bytes()
        for name, secret in (("token", TOKEN), ("token body", TOKEN[3:]), ("key", KEY)):
            if secret.encode() in data:
                hits.setdefault(str(p.relative_to(work)), []).append(name)
    for name, secret in (("token", TOKEN), ("key", KEY)):
        if secret.encode() in uploaded:
            hits.setdefault("<uploaded to the Hub>", []).append(name)
    return {"files": len(files), "bytes": sum(p.stat().st_size for p in files), "hits": hits,
            "key_sent": f"Bearer {KEY}" in server.auth, "token_sent": pushed.returncode == 0,
            "run_ok": run.returncode == 0, "faults": sum(server.faults.values()), "echoes": server.faults["echo"],
            "echo_rows": sum("HTTP 401" in (d or "") and "Bearer ***" in d for d in details),
            "has": {what: any(work.rglob(pattern)) for what, pattern in
                    (("card", "out/README.md"), ("report", "out/report.html"), ("cache entries", "cache/**/*.json"),
                     ("trl export", "export-trl/*"), ("llava export", "export-llava/*"))}}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=60)
    args = ap.parse_args()
    r = session(args.records, Path(tempfile.mkdtemp(prefix="bench-secrets-")))
    print(f"\nscanned {r['files']} files ({r['bytes'] / 1e6:.1f} MB: {', '.join(k for k, v in r['has'].items() if v)}, logs, "
          f"the Hub client's home, what was uploaded); the key was sent to the endpoint: {r['key_sent']}; "
          f"the token authenticated the push: {r['token_sent']}; {r['faults']} faults injected, {r['echoes']} of them "
          f"401s quoting the key ({r['echo_rows']} rows carry the scrubbed error)")
    print("secrets found:", r["hits"] or "none")


if __name__ == "__main__":
    main()
