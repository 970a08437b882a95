"""`extract-think publish` against a loopback Hub: the real `huggingface_hub` client, the real
CLI in a subprocess, faults on the way, and a scan for the token everywhere afterwards."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.publishing.hub import MANIFEST
from tests.hub_server import HubServer
from tests.published import published_rows

REPO = Path(__file__).resolve().parents[1]
TOKEN = "hf_testTOKEN0123456789abcdefSECRET"


class Published:
    def __init__(self, out_dir: Path, log: str):
        self.out_dir, self.log = out_dir, log


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A real `extract-think run` in a subprocess with a Hub token and an API key in its
    environment: neither may reach its output or its log."""
    tmp = tmp_path_factory.mktemp("hub")
    env = {**os.environ, "HF_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-test-KEY-0123456789abcdef", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress",
                           "--set", "sources.0.synthetic.num_records=24", "--set", "sources.0.synthetic.image_size=96",
                           "--set", f"output.dir={tmp / 'out'}", "--set", f"cache.dir={tmp / 'cache'}"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return Published(tmp / "out", proc.stdout + proc.stderr)


def _publish(out, repo, server, tmp_path, token=TOKEN, *extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=server.url, HF_TOKEN=token, HF_HUB_DISABLE_XET="1", HF_HOME=str(tmp_path / "hf_home"),
               HF_HUB_DISABLE_TELEMETRY="1")
    return subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "publish", str(out), "--repo", repo, *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _all_text(paths) -> str:
    chunks = []
    for root in paths:
        for p in Path(root).rglob("*"):
            if p.is_file():
                chunks.append(p.read_bytes().decode("latin-1"))
    return "\n".join(chunks)


def _lines(text: str) -> set[str]:
    return {" ".join(line.split()) for line in text.splitlines()}


def _data(files: dict) -> dict:
    """A repo's files but the publish manifest."""
    return {p: b for p, b in files.items() if p != MANIFEST}


def _local(out, repo_id):
    """The local publish's files as the repo must hold them: byte for byte, but for the card's
    usage line, which names the repo instead of the local folder."""
    files = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    card = files["README.md"].decode()
    assert f'load_dataset("{out}",' in card
    files["README.md"] = card.replace(f'load_dataset("{out}",', f'load_dataset("{repo_id}",').encode()
    return files


def test_push_uploads_the_local_publish_byte_for_byte_through_faults(published, tmp_path):
    out = published.out_dir
    with HubServer(TOKEN, faults={"preupload": [503], "commit": [500], "batch": [429]}) as hub:
        proc = _publish(out, "me/extract-think-demo", hub, tmp_path, TOKEN, "--private")
        assert proc.returncode == 0, proc.stderr
        repo = hub.repos["me/extract-think-demo"]
        local = _local(out, "me/extract-think-demo")
        assert _data(repo["files"]) == local and MANIFEST in repo["files"]
        assert b'load_dataset("me/extract-think-demo", "extraction"' in repo["files"]["README.md"]  # the card names the repo
        assert str(out).encode() not in repo["files"]["README.md"]
        assert repo["private"], hub.requests
        assert len(repo["commits"]) == 1, repo["commits"]
        assert any(p.endswith(".parquet") for p in local) and set(hub.lfs.values()) >= {b for p, b in local.items() if p.endswith(".parquet")}
        # the faults happened and were retried
        assert hub.faults == {"preupload": [], "commit": [], "batch": []}
        api = [r for r in hub.requests if not r[1].startswith("/lfs/")]
        assert api and all(auth == f"Bearer {TOKEN}" for _, _, auth in api)
        # pushing again is one more commit of the same files, to the same repo
        again = _publish(out, "me/extract-think-demo", hub, tmp_path)
        assert again.returncode == 0 and _data(repo["files"]) == local and len(hub.repos["me/extract-think-demo"]["commits"]) == 2
    assert "me/extract-think-demo" in proc.stdout
    # the uploaded copy loads like the local one
    remote = tmp_path / "remote"
    for path, data in repo["files"].items():
        (remote / path).parent.mkdir(parents=True, exist_ok=True)
        (remote / path).write_bytes(data)
    for config in ("extraction", "rejected"):
        a = published_rows(str(out), config)
        b = published_rows(str(remote), config)
        assert a["id"] == b["id"] and a["extraction"] == b["extraction"]
    # the token is nowhere: not in the output, the logs, the Hub client's home, the upload
    text = published.log + proc.stdout + proc.stderr + again.stdout + again.stderr + _all_text([out, out.parent / "cache", tmp_path])
    assert "Funnel" in published.log and len(text) > 100_000
    for secret in (TOKEN, TOKEN[3:], "sk-test-KEY-0123456789abcdef"):
        assert secret not in text


@pytest.mark.parametrize("args, token, message", [
    (["--repo", "me/x"], "hf_wrongTOKENabcdef123456", "401"),
    (["--repo", "not a repo"], TOKEN, "owner/name"),
])
def test_push_failures_are_clear_and_never_show_the_token(published, tmp_path, args, token, message):
    with HubServer(TOKEN) as hub:
        proc = _publish(published.out_dir, args[1], hub, tmp_path, token)
    assert proc.returncode == 1 and message in proc.stderr
    assert token not in proc.stdout + proc.stderr and token[3:] not in proc.stderr


def test_only_a_finished_publish_is_pushed(tmp_path):
    (tmp_path / "half").mkdir()
    with HubServer(TOKEN) as hub:
        proc = _publish(tmp_path / "half", "me/x", hub, tmp_path)
        assert proc.returncode == 1 and "not a finished publish" in proc.stderr and hub.requests == []


def test_a_whole_session_leaves_no_secret_anywhere(tmp_path):
    """The fast variant of tests/bench/bench_secrets.py: run (key really sent), publish,
    card, report, exports, push (token really used); neither secret in any file or log."""
    from tests.bench.bench_secrets import session

    r = session(records=16, work=tmp_path)
    assert r["run_ok"] and r["key_sent"] and r["token_sent"] and r["echo_rows"] > 0 and all(r["has"].values()), r
    assert r["hits"] == {}


def test_a_second_publish_leaves_exactly_the_new_dataset_in_the_repo(published, tmp_path):
    """A rerun writes shards under a new run id; pushing it deletes the first run's shards
    in the same commit, so readers of the repo's parquet files see no row twice."""
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published.out_dir, out)
    with HubServer(TOKEN) as hub:
        first = _publish(out, "me/twice", hub, tmp_path)
        assert first.returncode == 0, first.stderr
        assert f"{hub.url}/datasets/me/twice" in first.stdout  # the dataset's page, not only the commit
        old_shards = {p for p in hub.repos["me/twice"]["files"] if p.endswith(".parquet")}
        rerun = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress",
                                "--set", "sources.0.synthetic.num_records=12", "--set", "sources.0.synthetic.image_size=96",
                                "--set", f"output.dir={out}", "--set", f"cache.dir={tmp_path / 'cache'}"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        second = _publish(out, "me/twice", hub, tmp_path)
        assert second.returncode == 0, second.stderr
        repo = hub.repos["me/twice"]
        local = _local(out, "me/twice")
        assert _data(repo["files"]) == local and len(repo["commits"]) == 2
        assert old_shards and not old_shards & set(repo["files"])
        assert "removed" in second.stdout


def test_publish_deletes_only_what_it_wrote_and_says_what_it_kept(published, tmp_path):
    """A repo holding the owner's own LICENSE, README, another config, a data/ folder and a figure:
    the first publish keeps them all (replacing only README.md, the card) and says so; after
    a rerun the second publish deletes exactly the first run's files; --dry-run lists and sends
    nothing; --delete-unmanaged is what it takes to delete the owner's files."""
    import json
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published.out_dir, out)
    theirs = {"LICENSE": b"my license", "README.md": b"# my dataset", "other/train.parquet": b"PAR1other", "data/train.csv": b"a,b",
              "figures/fig1.png": b"\x89PNG fig"}
    with HubServer(TOKEN) as hub:
        hub.repos["me/mixed"] = {"private": False, "files": dict(theirs), "commits": []}
        dry = _publish(out, "me/mixed", hub, tmp_path, TOKEN, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert hub.repos["me/mixed"]["files"] == theirs and not hub.repos["me/mixed"]["commits"]  # nothing sent
        said = _lines(dry.stdout)
        assert "keep (not written by this tool) LICENSE" in said and "replace (not written by this tool) README.md" in said
        assert "add funnel.json" in said and not any(line.startswith("delete ") for line in said)

        first = _publish(out, "me/mixed", hub, tmp_path)
        assert first.returncode == 0, first.stderr
        files = hub.repos["me/mixed"]["files"]
        assert all(files[p] == b for p, b in theirs.items() if p != "README.md")
        assert "kept 4 files this tool did not write: LICENSE, data/train.csv, figures/fig1.png, other/train.parquet" in first.stdout
        assert "replaced 1 files this tool had not written: README.md" in first.stdout
        manifest = json.loads(files[MANIFEST])
        assert set(manifest["files"]) == {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()}
        first_run = {p for p in files if p.endswith(".parquet") and not p.startswith("other/")}

        rerun = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--no-progress",
                                "--set", "sources.0.synthetic.num_records=12", "--set", "sources.0.synthetic.image_size=96",
                                "--set", f"output.dir={out}", "--set", f"cache.dir={tmp_path / 'cache'}"],
                               cwd=REPO, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        dry = _publish(out, "me/mixed", hub, tmp_path, TOKEN, "--dry-run")
        assert {f"delete {p}" for p in first_run} <= _lines(dry.stdout)
        second = _publish(out, "me/mixed", hub, tmp_path)
        assert second.returncode == 0, second.stderr
        files = hub.repos["me/mixed"]["files"]
        assert not first_run & set(files) and all(files[p] == b for p, b in theirs.items() if p != "README.md")
        assert _data({p: b for p, b in files.items() if p not in theirs}) == {p: b for p, b in _local(out, "me/mixed").items()
                                                                               if p != "README.md"}

        cleared = _publish(out, "me/mixed", hub, tmp_path, TOKEN, "--delete-unmanaged")
        assert cleared.returncode == 0, cleared.stderr
        assert _data(hub.repos["me/mixed"]["files"]) == _local(out, "me/mixed")


def test_a_link_out_of_the_folder_is_never_uploaded(published, tmp_path):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(published.out_dir, out)
    secret = tmp_path / "private.txt"
    secret.write_text("my private notes")
    (out / "assets" / "notes.png").symlink_to(secret)
    with HubServer(TOKEN) as hub:
        proc = _publish(out, "me/links", hub, tmp_path)
        assert proc.returncode == 1 and "outside" in proc.stderr and "me/links" not in hub.repos
    assert b"my private notes" not in b"".join(hub.lfs.values())
