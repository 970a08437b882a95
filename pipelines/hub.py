"""Push a finished local publish to the Hugging Face Hub as a dataset repo.

Uses the standard `huggingface_hub` API (`create_repo` + `upload_folder`: one commit with
every file of the folder). The token comes from the `token` argument, the `HF_TOKEN`
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
from pathlib import Path

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
                raise PushError(f"{what} failed: {type(e).__name__}: {_scrub(str(e))}") from None
            time.sleep(backoff_s * 2**attempt)


def _scrub(message: str) -> str:
    """Error messages may echo request headers; never let a token through."""
    return re.sub(r"(hf_|Bearer\s+)[A-Za-z0-9_\-]{6,}", r"\1***", message)


def check_publish(folder: Path) -> list[Path]:
    """The files of a finished local publish (a folder `extract-think run` wrote)."""
    if not (folder / "README.md").is_file() or not (folder / "funnel.json").is_file():
        raise PushError(f"{folder} is not a finished publish (no README.md and funnel.json): run `extract-think run` first")
    return sorted(p for p in folder.rglob("*") if p.is_file())


def push(folder: str | Path, repo_id: str, private: bool = False, revision: str | None = None, token: str | None = None,
         message: str | None = None, retries: int = 4, backoff_s: float = 1.0) -> str:
    """Upload `folder` to the dataset repo `repo_id`; returns the commit URL."""
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
    commit = _retrying(
        "uploading",
        lambda: api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset", revision=revision,
                                  commit_message=message or f"extract-think publish ({len(files)} files)"),
        retries, backoff_s,
    )
    return commit.commit_url if hasattr(commit, "commit_url") else str(commit)
