"""Push a finished local publish to the Hugging Face Hub as a dataset repo.

Uses the standard `huggingface_hub` API (`create_repo`, then one `create_commit` that adds
every file of the folder). Each publish leaves a manifest in the repo
(`.extract-think/manifest.json`: every file it wrote, with its sha256); the next publish
deletes only files that manifest names and it does not have (a first run's shards), keeps
every file the tool did not write (a LICENSE, another config, a figure) and says which; an
explicit `delete_unmanaged` deletes those too. A link out of the folder is never uploaded. The token comes from the `token` argument, the `HF_TOKEN`
environment variable or the saved `huggingface-cli login`, resolved by `huggingface_hub`
itself; it is never printed, logged or written. `HF_ENDPOINT` points the client at another
Hub (a mirror, an enterprise Hub, the test suite's loopback server).

Transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential
backoff on top of the client's own retries; anything else (401, 403, a bad repo name) fails
at once with the server's message.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.jsontext import bounded_json
from pipelines.core.secrets import scrub
from pipelines.publishing.card import card_for_repo, tool_version

MANIFEST = ".extract-think/manifest.json"  # the files a publish wrote, with their sha256: what the next may delete
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
TRANSIENT = {408, 425, 429, 500, 502, 503, 504}


class PushError(RuntimeError):
    pass


def _transient(error: Exception) -> bool:
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        status = error.response.status_code if error.response is not None else None
        return status in TRANSIENT
    return isinstance(error, (httpx.TransportError, TimeoutError, ConnectionError))


def _retrying(what: str, call, retries: int, backoff_s: float):
    for attempt in range(retries + 1):
        try:
            return call()
        except Exception as e:  # noqa: BLE001 - sorted below
            if not _transient(e) or attempt == retries:
                raise PushError(f"{what} failed: {type(e).__name__}: {scrub(str(e))}") from None
            time.sleep(backoff_s * 2**attempt)


def check_publish(folder: Path) -> list[Path]:
    """The files of a finished local publish (a folder `extract-think run` wrote). A link that
    leads out of the folder is refused: its target is not part of the dataset."""
    if not (folder / "README.md").is_file() or not (folder / "funnel.json").is_file():
        raise PushError(f"{folder} is not a finished publish (no README.md and funnel.json): run `extract-think run` first")
    root, files = folder.resolve(), []
    for here, dirs, names in os.walk(folder):  # links to folders are not followed: they are checked like files
        for name in sorted(dirs + names):
            path = Path(here) / name
            if path.is_symlink() and not path.resolve().is_relative_to(root):
                raise PushError(f"{path} is a link to {path.resolve()}, outside {folder}: refusing to upload what it points to")
            if name in names and path.is_file():
                files.append(path)
    return sorted(files)


@dataclass(frozen=True)
class PushPlan:
    """What one publish does to the repo. `add`: files new to it; `change`: files it holds that
    change (or that it holds and no manifest vouches for); `same`: files it holds as they are;
    `delete`: files an earlier publish wrote (its manifest names them) that this one does not
    have; `keep`: files this tool did not write, left as they are (`--delete-unmanaged`
    deletes them); `overwrite`: files this tool did not write that this publish replaces."""

    add: tuple[str, ...] = ()
    change: tuple[str, ...] = ()
    same: tuple[str, ...] = ()
    delete: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    overwrite: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pushed:
    url: str  # the dataset's page
    commit_url: str | None  # None for a dry run
    plan: PushPlan

    @property
    def deleted(self) -> tuple[str, ...]:
        return self.plan.delete


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _contents(folder: Path, files: list[Path], repo_id: str) -> dict[str, bytes]:
    """What each file becomes in the repo: as it is, but for the card's usage line, which
    names the repo."""
    out = {}
    for p in files:
        rel = p.relative_to(folder).as_posix()
        out[rel] = card_for_repo(p.read_text(), repo_id).encode() if rel == "README.md" else p.read_bytes()
    return out


def _previous_manifest(api, repo_id: str, revision: str | None, remote: set[str]) -> dict[str, str]:
    """{path: sha256} of the files the last publish wrote, from the manifest it left in the
    repo; {} when there is none or it cannot be read (then no file counts as the tool's)."""
    if MANIFEST not in remote:
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = api.hf_hub_download(repo_id, MANIFEST, repo_type="dataset", revision=revision, local_dir=tmp)
            raw = Path(path).read_bytes()[: 16 << 20]
            files = bounded_json(raw).get("files")
        except (OSError, ValueError, AttributeError):
            return {}
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items() if isinstance(k, str)}


def plan_push(api, contents: dict[str, bytes], repo_id: str, revision: str | None, delete_unmanaged: bool = False) -> PushPlan:
    """Compare the local publish with what the repo holds (an absent repo holds nothing)."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        remote = set(api.list_repo_files(repo_id, repo_type="dataset", revision=revision))
    except (RepositoryNotFoundError, RevisionNotFoundError):
        remote = set()
    ours = _previous_manifest(api, repo_id, revision, remote)
    untouchable = {".gitattributes", MANIFEST}  # the Hub needs the first; the second is rewritten
    local = set(contents)
    tool = set(ours) & remote
    others = remote - tool - local - untouchable
    stale = tool - local - untouchable
    return PushPlan(
        add=tuple(sorted(local - remote)),
        change=tuple(sorted(p for p in local & remote if ours.get(p) != _sha256(contents[p]))),
        same=tuple(sorted(p for p in local & remote if ours.get(p) == _sha256(contents[p]))),
        delete=tuple(sorted(stale | (others if delete_unmanaged else set()))),
        keep=tuple(sorted(set() if delete_unmanaged else others)),
        overwrite=tuple(sorted((local & remote) - tool)),
    )


def _manifest(contents: dict[str, bytes]) -> bytes:
    files = {path: _sha256(data) for path, data in sorted(contents.items())}
    return (json.dumps({"tool": "extract-think", "version": tool_version(), "files": files}, indent=1) + "\n").encode()


def push(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None,
         message: str | None = None, retries: int = 4, backoff_s: float = 1.0, dry_run: bool = False,
         delete_unmanaged: bool = False) -> Pushed:
    """Put the publish in `folder` into the dataset repo `repo_id`, in one commit: every local
    file added, the files the last publish wrote (its manifest says which) and this one does
    not have deleted, every other file of the repo kept (or deleted too, with
    `delete_unmanaged`), and a new manifest. `dry_run`: the plan only, nothing sent."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    if "://" in str(folder):
        raise PushError(f"{folder}: publish uploads a local folder; copy the dataset here first (aws s3 sync, gsutil rsync) "
                        "or run with a local output.dir")
    folder = Path(folder)
    files = check_publish(folder)
    if not REPO_ID.match(repo_id):
        raise PushError(f"--repo must look like owner/name, got {repo_id!r}")
    api = HfApi(token=token)
    contents = _contents(folder, files, repo_id)
    url = f"{api.endpoint.rstrip('/')}/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")
    if dry_run:
        return Pushed(url, None, _retrying("reading the repo", lambda: plan_push(api, contents, repo_id, revision, delete_unmanaged),
                                           retries, backoff_s))
    _retrying("creating the repo", lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
              retries, backoff_s)
    plans: list[PushPlan] = []

    def commit():
        plan = plan_push(api, contents, repo_id, revision, delete_unmanaged)
        plans[:] = [plan]
        operations = [CommitOperationDelete(path_in_repo=path) for path in plan.delete]
        operations += [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=data) for rel, data in sorted(contents.items())]
        operations.append(CommitOperationAdd(path_in_repo=MANIFEST, path_or_fileobj=_manifest(contents)))
        return api.create_commit(repo_id, operations, repo_type="dataset", revision=revision,
                                 commit_message=message or f"extract-think publish ({len(files)} files)")

    info = _retrying("uploading", commit, retries, backoff_s)
    return Pushed(url, getattr(info, "commit_url", str(info)), plans[0])
