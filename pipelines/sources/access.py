"""Where a source may read its images from, and reading them within limits.

A dataset file names its images; the recipe names the folders they live in. A reference is
read only if it resolves inside the source's `image_root` (or, for a Hub dataset, inside
the caches `datasets` downloads to) after `..` and symbolic links are resolved. URLs and
fsspec chains (`http://`, `zip://...::file://`) are read only when the source sets
`allow_remote: true`, and then only for the schemes it lists; a reference to a place the
root itself names (`s3://bucket/images/x.png` under an `s3://bucket/images` root) is not
remote. Only regular files are read (not folders, FIFOs or devices), at most
`max_file_bytes` of them. Details name the path, never the file's bytes.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fsspec
from PIL import Image

from pipelines.sources.image_files import Problem


@dataclass(frozen=True)
class ImageAccess:
    root: str = ""  # what relative references are relative to ("" : none may be relative)
    also: tuple[str, ...] = ()  # further folders absolute references may point into
    remote_schemes: tuple[str, ...] = ()  # URL schemes read from anywhere (allow_remote)


def _is_url(ref: str) -> bool:
    return "://" in ref or "::" in ref


def _split_url(url: str) -> tuple[str, str]:
    scheme, rest = url.split("://", 1)
    return scheme.lower(), posixpath.normpath("/" + rest)


@lru_cache(maxsize=256)
def _real(folder: str) -> str:
    return os.path.realpath(os.path.expanduser(folder))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _inside_url(url: str, folder: str) -> bool:
    if "::" in url or "::" in folder:
        return False
    (s1, p1), (s2, p2) = _split_url(url), _split_url(folder)
    return s1 == s2 and _inside(p1, p2)


def resolve(ref: str, access: ImageAccess, what: str) -> tuple[str, bool]:
    """(where to read `ref`, whether it is a local file); raises Problem when it leads
    outside the source's folders or is a URL the source does not allow."""
    roots = tuple(r for r in (access.root, *access.also) if r)
    if _is_url(ref) and not ref.startswith("file://"):
        if any(_is_url(r) and _inside_url(ref, r) for r in roots):
            return ref, False
        scheme = ref.split("://", 1)[0].lower() if "://" in ref else "an fsspec chain"
        if "::" in ref or scheme not in access.remote_schemes:
            raise Problem("image_remote_not_allowed", f"{what}: {scheme} references are read only from a source with "
                          f"allow_remote: true that lists the scheme in remote_schemes")
        return ref, False
    if ref.startswith("file://"):
        ref = ref[len("file://"):]
    if _is_url(access.root) and not os.path.isabs(ref):  # a remote root: join and normalise, no links to follow
        scheme, base = _split_url(access.root)
        target = f"{scheme}://{posixpath.normpath(base + '/' + ref).lstrip('/')}"
        if not _inside_url(target, access.root):
            raise Problem("image_outside_root", f"{what}: {ref} leads outside image_root {access.root}")
        return target, False
    if not os.path.isabs(ref) and not access.root:
        raise Problem("image_outside_root", f"{what}: {ref} is a relative path and the source names no image_root")
    path = os.path.realpath(os.path.join(_real(access.root), ref) if access.root and not _is_url(access.root) else ref)
    if not any(not _is_url(r) and _inside(path, _real(r)) for r in roots):
        raise Problem("image_outside_root", f"{what}: {ref} leads outside image_root {access.root or '(none)'}")
    return path, True


def _opening_failed(error: OSError, where: str, what: str) -> Problem:
    """The Problem of a reference that could not be opened (local path or URL)."""
    if isinstance(error, FileNotFoundError):
        return Problem("image_missing", f"{what}: nothing at {where}")
    if isinstance(error, IsADirectoryError):
        return Problem("image_missing", f"{what}: {where} is a folder, not a file")
    if isinstance(error, PermissionError):
        return Problem("image_unreadable", f"{what}: no permission to read {where}")
    return Problem("image_unreadable", f"{what}: cannot read {where}: {error.strerror or type(error).__name__}")


def _within(data: bytes, limit: int, where: str, what: str) -> bytes:
    if len(data) > limit:
        raise Problem("image_file_too_large", f"{what}: {where} has more than max_file_bytes {limit} bytes")
    return data


def _read_local(path: str, limit: int, what: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO must not block the open
    except OSError as e:
        raise _opening_failed(e, path, what) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise _opening_failed(IsADirectoryError(), path, what)
        if not stat.S_ISREG(info.st_mode):
            raise Problem("image_not_a_file", f"{what}: {path} is not a regular file (a device, FIFO or socket)")
        if info.st_size > limit:
            raise Problem("image_file_too_large", f"{what}: {path} has {info.st_size} bytes > max_file_bytes {limit}")
        return _within(f.read(limit + 1), limit, path, what)


def _read_remote(url: str, limit: int, what: str) -> bytes:
    try:
        with fsspec.open(url, "rb") as f:
            return _within(f.read(limit + 1), limit, url, what)
    except OSError as e:
        raise _opening_failed(e, url, what) from None


def read_image_bytes(ref: Any, access: ImageAccess, limit: int, what: str) -> bytes:
    """The bytes of an image reference: bytes, a PIL image, a {"bytes", "path"} dict (as
    `datasets` gives undecoded images) or a path/URL resolved by `resolve`."""
    if isinstance(ref, Image.Image):
        buf = io.BytesIO()
        ref.save(buf, format="PNG")
        ref = buf.getvalue()
    if isinstance(ref, dict):
        ref = ref["bytes"] if ref.get("bytes") is not None else ref.get("path")
    if isinstance(ref, (bytes, bytearray)):
        if len(ref) > limit:
            raise Problem("image_file_too_large", f"{what} has {len(ref)} bytes > max_file_bytes {limit}")
        return bytes(ref)
    if not isinstance(ref, str) or not ref.strip():
        kind = "nothing" if ref is None or ref == "" else f"a {type(ref).__name__}"
        raise Problem("image_reference_missing", f"{what}: no path or bytes given ({kind})")
    try:
        ref.encode("utf-8")
    except UnicodeEncodeError:
        raise Problem("text_invalid", f"{what}: the reference holds a character that is not valid Unicode") from None
    where, local = resolve(ref.strip(), access, what)
    return _read_local(where, limit, what) if local else _read_remote(where, limit, what)
