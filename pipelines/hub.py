"""Push a finished local publish to the Hugging Face Hub as a dataset repo.

Uses the standard `huggingface_hub` API (`create_repo`, then one `create_commit` that adds
every file of the folder and deletes every other file of the repo, so a second publish
leaves no shard of the first behind). The token comes from the `token` argument, the `HF_TOKEN`
environment variable or the saved `huggingface-cli login`, resolved by `huggingface_hub`
itself; it is never printed, logged or written. `HF_ENDPOINT` points the client at another
Hub (a mirror, an enterprise Hub, the test suite's loopback server).

Transient failures (429, 5xx, timeouts, dropped connections) are retried with exponential
backoff on top of the client's own retries; anything else (401, 403, a bad repo name) fails
at once with the server's message.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.card import card_for_repo
from pipelines.core.secrets import scrub

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
    """The files of a finished local publish (a folder `extract-think run` wrote)."""
    if not (folder / "README.md").is_file() or not (folder / "funnel.json").is_file():
        raise PushError(f"{folder} is not a finished publish (no README.md and funnel.json): run `extract-think run` first")
    return sorted(p for p in folder.rglob("*") if p.is_file())


@dataclass(frozen=True)
class Pushed:
    url: str  # the dataset's page
    commit_url: str
    deleted: tuple[str, ...]  # files of an earlier publish the commit removed


def _operations(api, folder: Path, files: list[Path], repo_id: str, revision: str | None) -> list:
    """One commit's operations: every local file added, every other file of the repo (an
    earlier publish's shards, its old charts) deleted, so the repo holds exactly the local
    dataset. `.gitattributes` stays: the Hub needs it."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    local = {p.relative_to(folder).as_posix(): p for p in files}
    remote = set(api.list_repo_files(repo_id, repo_type="dataset", revision=revision))
    stale = sorted(remote - set(local) - {".gitattributes"})
    def content(rel: str, p: Path):  # the card's usage line names the repo; every other file as it is
        return card_for_repo(p.read_text(), repo_id).encode() if rel == "README.md" else str(p)

    return [CommitOperationDelete(path_in_repo=path) for path in stale] + \
           [CommitOperationAdd(path_in_repo=rel, path_or_fileobj=content(rel, p)) for rel, p in sorted(local.items())]


def push(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None,
         message: str | None = None, retries: int = 4, backoff_s: float = 1.0) -> Pushed:
    """Make the dataset repo `repo_id` hold exactly the publish in `folder`, in one commit."""
    from huggingface_hub import HfApi

    if "://" in str(folder):
        raise PushError(f"{folder}: publish uploads a local folder; copy the dataset here first (aws s3 sync, gsutil rsync) "
                        "or run with a local output.dir")
    folder = Path(folder)
    files = check_publish(folder)
    if not REPO_ID.match(repo_id):
        raise PushError(f"--repo must look like owner/name, got {repo_id!r}")
    api = HfApi(token=token)
    _retrying("creating the repo", lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
              retries, backoff_s)
    deleted: list[str] = []

    def commit():
        operations = _operations(api, folder, files, repo_id, revision)
        deleted[:] = [op.path_in_repo for op in operations if type(op).__name__ == "CommitOperationDelete"]
        return api.create_commit(repo_id, operations, repo_type="dataset", revision=revision,
                                 commit_message=message or f"extract-think publish ({len(files)} files)")

    info = _retrying("uploading", commit, retries, backoff_s)
    url = f"{api.endpoint.rstrip('/')}/datasets/{repo_id}" + (f"/tree/{revision}" if revision else "")
    return Pushed(url, getattr(info, "commit_url", str(info)), tuple(deleted))
