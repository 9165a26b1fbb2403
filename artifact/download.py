"""`checkpoints fetch`: download SpiritLM's checkpoints from the links Meta emails, into BRIEF section 2's layout.

Meta approves a request and emails one download link per artifact (spiritlm `checkpoints/README.md`). The exact link
format is not public; this module assumes HTTPS links (typically presigned: a signature in the query string) whose
path ends in the artifact's file name: an archive (`.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz`, `.zip`) named after
the artifact or a folder holding it, or a single file of the layout. The links may be pasted one per line or as the
whole email text (URLs are picked out of the prose).

What it does, per link: name the artifact from the file name (ARTIFACTS, BUNDLES; SINGLE_FILES), skip what the base
run does not need unless asked (`include_all`), download into `<root>/.downloads/` with HTTP Range resume (a `.part`
file survives an interrupted transfer; a server without Range support restarts it), a tqdm progress bar and a size
check (Content-Length), open and list the archive (members escaping the target folder are refused; a corrupt archive
is deleted), extract into a temporary folder beside the target and rename it into place, then check the layout.

Redaction rule: a link is a secret (its signed query string grants the download). Nothing here prints, logs, stores
or raises a URL; links are named by `redact(url)` = host + file name only. Sidecar files hold sizes and ETags only.

Torch-free (stdlib urllib + tqdm). Meta's checkpoint tree (ARTIFACTS, BUNDLES, SINGLE_FILES) is the one table in
`artifact.core.spiritlm`, from which the loader's file lists are derived.
"""

from __future__ import annotations

import errno
import html
import http.client
import json
import os
import posixpath
import quopri
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from artifact.core.spiritlm import ARTIFACTS, BUNDLES, BY_NAME, SINGLE_FILES, Artifact

DOWNLOADS_DIR = ".downloads"  # under the checkpoints root: finished and partial (`.part`) downloads
EXTRACT_PREFIX = ".extract-"  # temporary extraction folders under the checkpoints root
CHUNK = 1 << 20
USER_AGENT = "spiritlm-recall-checkpoints-fetch/1"
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


class FetchError(RuntimeError):
    """A fetch cannot go on; the message names the problem and the fix, and never holds a link."""


def _norm(name: str) -> str:
    """Artifact names compared without case or separators: spirit-lm-base-7b == Spirit_LM_Base_7B == spiritlmbase7b."""
    return re.sub(r"[-_.\s]", "", name).lower()


_NORM_ARTIFACTS = {_norm(a.name): a.name for a in ARTIFACTS}
_NORM_BUNDLES = {_norm(b): b for b in BUNDLES}


# ------------------------------------------------------------------------------------------------ links


def redact(url: str) -> str:
    """The only form in which a link is ever shown: host + file name (no path, no query string, no fragment)."""
    parts = urllib.parse.urlsplit(url)
    name = _file_name(url) or "?"
    return f"{parts.hostname or '?'}/{name}"


def _file_name(url: str) -> str:
    return urllib.parse.unquote(PurePosixPath(urllib.parse.urlsplit(url).path).name)


_URL = re.compile(r"https?://[^\s<>\"'`\]\[(){}|\\^]+", re.IGNORECASE)


def extract_links(text: str) -> list[str]:
    """Every http(s) URL in `text` (pasted lines or a whole email: plain, HTML or quoted-printable), in order,
    without duplicates and without trailing punctuation."""
    if re.search(r"=3D|=\r?\n", text):  # quoted-printable email source: undo soft line breaks and =XX escapes
        text = quopri.decodestring(text.encode("utf-8", "replace")).decode("utf-8", "replace")
    text = html.unescape(text)
    links: list[str] = []
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(".,;:!?*'\"")
        if url not in links:
            links.append(url)
    return links


def _strip_archive_suffix(name: str) -> tuple[str, str]:
    low = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if low.endswith(suffix):
            return name[: -len(suffix)], suffix
    return name, ""


@dataclass
class Link:
    """A recognised link: what it holds and where it goes. `url` is secret (never print it; use `label`)."""

    url: str = field(repr=False)
    label: str  # redact(url)
    file_name: str
    artifacts: tuple[str, ...]  # artifact names it holds
    archive: bool  # an archive to extract, else a single file
    member: str | None = None  # single file: its name inside the artifact folder

    @property
    def needed(self) -> bool:
        return any(BY_NAME[a].needed for a in self.artifacts)


def recognise(url: str) -> Link | None:
    """What a link holds, from its file name (and, for a single file of ambiguous name, the folders of its path);
    None when it names no SpiritLM artifact."""
    name = _file_name(url)
    stem, suffix = _strip_archive_suffix(name)
    label = redact(url)
    if suffix:
        key = _norm(stem)
        if key in _NORM_ARTIFACTS:
            return Link(url, label, name, (_NORM_ARTIFACTS[key],), True)
        if key in _NORM_BUNDLES:
            return Link(url, label, name, BUNDLES[_NORM_BUNDLES[key]], True)
        return None
    if name in SINGLE_FILES:
        return Link(url, label, name, (SINGLE_FILES[name],), False, member=name)
    folders = [_norm(urllib.parse.unquote(p)) for p in PurePosixPath(urllib.parse.urlsplit(url).path).parts[:-1]]
    for folder in reversed(folders):
        owner = _NORM_ARTIFACTS.get(folder)
        if owner and name in BY_NAME[owner].files:
            return Link(url, label, name, (owner,), False, member=name)
    return None


# ------------------------------------------------------------------------------------------------ download


def _sidecar(part: Path) -> Path:
    return part.with_name(part.name + ".json")


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


def _http_error(link: Link, code: int) -> FetchError:
    if code in (401, 403, 410) or code == 400:
        return FetchError(
            f"the server refused {link.label} (HTTP {code}). Download links from Meta expire (and may be limited in "
            "number of uses): request new links (https://ai.meta.com/resources/models-and-libraries/spirit-lm-"
            "downloads/) and rerun with them; finished files are kept and partial downloads resume.")
    if code == 404:
        return FetchError(f"{link.label} was not found on its server (HTTP 404): check the link was pasted whole, "
                          "or request new links from Meta.")
    return FetchError(f"the server answered HTTP {code} for {link.label}; rerun later (partial downloads resume).")


def _check_space(folder: Path, needed: int, what: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise FetchError(f"disk full: {what} needs {needed / 1e9:.2f} GB but {folder} has {free / 1e9:.2f} GB free. "
                         "Free some space (or pass another --into) and rerun: finished files are kept and the "
                         "download resumes.")


def _disk_full(error: OSError, folder: Path, what: str) -> FetchError:
    return FetchError(f"disk full while {what} in {folder} ({os.strerror(error.errno or errno.ENOSPC)}). Free some "
                      "space and rerun: the download resumes from its .part file.")


class _Interrupted(Exception):
    """The transfer stopped before its end; the .part file keeps what arrived."""


def _open(link: Link, offset: int, validator: str | None, timeout: float):
    request = urllib.request.Request(link.url, headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        if validator:
            request.add_header("If-Range", validator)
    return urllib.request.urlopen(request, timeout=timeout)  # noqa: S310 (https links from the user)


def _transfer(link: Link, part: Path, timeout: float, progress: bool, say: Callable[[str], None]) -> None:
    """One attempt: resume `part` from its size when the server honours Range, else restart it; raises _Interrupted
    when the body ends early (the part file keeps what arrived) and FetchError for what a retry cannot fix."""
    from tqdm import tqdm  # lazy: tqdm

    meta_path = _sidecar(part)
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() and part.is_file() else {}
    offset = part.stat().st_size if part.is_file() else 0
    if offset and meta.get("total") is not None and offset > meta["total"]:
        offset = 0  # more than the file holds: start over
    try:
        response = _open(link, offset, meta.get("etag") or meta.get("last_modified"), timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:  # nothing after `offset`: complete, or a stale part of another file
            m = re.match(r"bytes\s+\*/(\d+)", error.headers.get("Content-Range", ""))
            total = int(m.group(1)) if m else meta.get("total")
            if total is not None and offset == total:
                return
            part.unlink()
            raise _Interrupted("the partial file did not match the server's; restarting") from None
        raise _http_error(link, error.code) from None
    except urllib.error.URLError as error:
        reason = getattr(error, "reason", error)
        if isinstance(reason, (TimeoutError, ConnectionError)):
            raise _Interrupted(type(reason).__name__) from None
        raise FetchError(f"could not reach {link.label} ({type(reason).__name__}: {reason}); check the network "
                         "and rerun.") from None
    except (TimeoutError, ConnectionError) as error:
        raise _Interrupted(type(error).__name__) from None
    except (ValueError, http.client.HTTPException) as error:  # their messages may quote the link: never shown
        raise FetchError(f"the link for {link.label} is malformed or its server's answer is not HTTP "
                         f"({type(error).__name__}); paste the link again, whole.") from None
    with response:
        status = response.status
        length = response.headers.get("Content-Length")
        length = int(length) if length is not None and length.isdigit() else None
        if status == 206:
            m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:  # a range we did not ask for: cannot splice it, start over
                part.unlink(missing_ok=True)
                raise _Interrupted("unexpected Content-Range; restarting")
            mode, start = "ab", offset
            total = int(m.group(3)) if m.group(3) != "*" else (offset + length if length is not None else None)
        else:
            if offset:
                say(f"  {link.label}: the server sent the whole file, so it does not resume downloads (no Range "
                    "support, or the file changed); restarting it")
            mode, start, total = "wb", 0, length
        if total is None:
            say(f"  {link.label}: the server sent no size; the size cannot be checked (the archive still is)")
        else:
            _check_space(part.parent, total - start, f"downloading {link.label}")
        meta_path.write_text(json.dumps({"file": link.file_name, "total": total,
                                         "etag": response.headers.get("ETag"),
                                         "last_modified": response.headers.get("Last-Modified")}))
        done = start
        try:
            with open(part, mode) as sink, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                                unit_divisor=1024, desc=link.file_name, disable=not progress,
                                                leave=False) as bar:
                while True:
                    try:
                        chunk = response.read(CHUNK)
                    except Exception as error:  # IncompleteRead, reset, timeout: what arrived is kept
                        raise _Interrupted(type(error).__name__) from None
                    if not chunk:
                        break
                    sink.write(chunk)
                    done += len(chunk)
                    bar.update(len(chunk))
                sink.flush()
                os.fsync(sink.fileno())
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(error, part.parent, f"downloading {link.label}") from None
            raise
        if total is not None and done < total:
            raise _Interrupted(f"{done} of {total} bytes")
        if total is not None and done > total:
            part.unlink()
            raise FetchError(f"{link.label}: received {done} bytes, more than the announced {total}; the partial "
                             "file was deleted, rerun to download it again.")


def download(link: Link, folder: Path, retries: int = 3, timeout: float = 60.0, progress: bool = True,
             backoff: float = 2.0, say: Callable[[str], None] = print) -> Path:
    """Download `link` into `folder/<file name>` through `<file name>.part` (resumed across attempts and reruns);
    returns the finished file. Retries an interrupted transfer `retries` times, each resuming where it stopped."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / link.file_name
    if final.is_file():
        say(f"  {link.label}: already downloaded")
        return final
    part = folder / (link.file_name + ".part")
    for attempt in range(retries + 1):
        if part.is_file() and part.stat().st_size:
            say(f"  {link.label}: resuming at {part.stat().st_size:,} bytes")
        try:
            _transfer(link, part, timeout, progress, say)
        except _Interrupted as why:
            if attempt == retries:
                size = part.stat().st_size if part.is_file() else 0
                if not size:
                    raise FetchError(f"could not download {link.label} ({why}; {retries + 1} attempt(s)). Check "
                                     "the network and rerun the same command.") from None
                raise FetchError(f"the download of {link.label} was interrupted ({why}) after {size:,} bytes, "
                                 f"{retries + 1} attempt(s). Rerun the same command: it resumes from "
                                 f"{part.name}.") from None
            say(f"  {link.label}: interrupted ({why}); retrying")
            time.sleep(min(30.0, backoff * 2 ** attempt))
            continue
        break
    os.replace(part, final)
    _sidecar(part).unlink(missing_ok=True)
    return final


# ------------------------------------------------------------------------------------------------ archives


class CorruptArchive(Exception):
    """The archive cannot be read to its end, or a member escapes the target folder."""


def _safe_member(name: str, what: str = "member") -> None:
    """Refuse a name that is absolute or climbs out of the extraction folder (after normalisation)."""
    norm = posixpath.normpath(name.replace("\\", "/"))
    if norm.startswith("/") or norm == ".." or norm.startswith("../") or re.match(r"^[A-Za-z]:", name):
        raise CorruptArchive(f"{what} {name!r} would land outside the target folder")


def _extract_tar(archive: Path, into: Path) -> list[str]:
    names = []
    try:
        with tarfile.open(archive, "r:*") as tar:
            for member in tar:  # streamed: one decompression pass
                _safe_member(member.name)
                if member.issym():
                    _safe_member(member.linkname if member.linkname.startswith("/") else
                                 posixpath.join(posixpath.dirname(member.name), member.linkname),
                                 f"link {member.name!r} ->")
                elif member.islnk():
                    _safe_member(member.linkname, f"link {member.name!r} ->")
                elif not (member.isfile() or member.isdir()):
                    raise CorruptArchive(f"member {member.name!r} is a device or FIFO")
                tar.extract(member, into, filter="data")
                names.append(member.name)
            fileobj = tar.fileobj
            while fileobj is not None and fileobj.read(CHUNK):  # to the end: a gzip/bz2/xz trailer check
                pass
    except (tarfile.TarError, EOFError, OSError, ValueError) as error:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CorruptArchive(f"{type(error).__name__}: {error}") from None
    return names


def _extract_zip(archive: Path, into: Path) -> list[str]:
    names = []
    try:
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _safe_member(info.filename)
                zf.extract(info, into)  # reads every byte: a CRC mismatch raises BadZipFile
                names.append(info.filename)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError) as error:
        if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise CorruptArchive(f"{type(error).__name__}: {error}") from None
    return names


def _find_folder(tree: Path, artifact: Artifact) -> Path | None:
    """The folder named after `artifact` inside an extracted tree (shallowest first)."""
    key = _norm(artifact.name)
    found = sorted((p for p in tree.rglob("*") if p.is_dir() and _norm(p.name) == key), key=lambda p: len(p.parts))
    return found[0] if found else None


def _content_root(tree: Path) -> Path:
    """An archive of one artifact holds its files at the top or under one wrapper folder."""
    entries = list(tree.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        return _content_root(entries[0])
    return tree


def _place(source: Path, target: Path) -> None:
    """Move an artifact folder into place: one rename when the target is absent, else file by file (each a rename),
    never leaving a half-written file at its final name."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        os.rename(source, target)
        return
    for path in sorted(source.rglob("*")):
        dest = target / path.relative_to(source)
        if path.is_dir():
            dest.mkdir(parents=True, exist_ok=True)
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)


def missing_in(root: Path, artifact: Artifact) -> list[str]:
    """Files of `artifact` absent under `root`."""
    return [f for f in artifact.files if not (root / artifact.folder / f).is_file()]


def install(downloaded: Path, link: Link, root: Path, include_all: bool, say: Callable[[str], None] = print
            ) -> list[str]:
    """Put a finished download into the layout: a single file into its artifact folder; an archive extracted into a
    temporary folder under `root`, its artifact folders renamed into place. Returns the artifact names installed.
    A corrupt archive (or one with a member escaping the folder) is deleted and a FetchError says to rerun."""
    if not link.archive:
        artifact = BY_NAME[link.artifacts[0]]
        target = root / artifact.folder / (link.member or link.file_name)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(downloaded, target)
        return [artifact.name]
    _check_space(root, downloaded.stat().st_size, f"extracting {link.file_name}")
    tmp = Path(tempfile.mkdtemp(prefix=EXTRACT_PREFIX, dir=root))
    try:
        try:
            extract = _extract_zip if link.file_name.lower().endswith(".zip") else _extract_tar
            names = extract(downloaded, tmp)
        except CorruptArchive as why:
            downloaded.unlink(missing_ok=True)
            raise FetchError(f"{link.file_name} is not a readable archive ({why}); it was deleted. Rerun the same "
                             "command to download it again.") from None
        except OSError as error:
            if error.errno in (errno.ENOSPC, errno.EDQUOT):
                raise _disk_full(error, root, f"extracting {link.file_name}") from None
            raise
        installed = []
        wanted = [BY_NAME[a] for a in link.artifacts if include_all or BY_NAME[a].needed]
        for artifact in wanted:
            source = _find_folder(tmp, artifact)
            if source is None and len(link.artifacts) == 1:
                source = _content_root(tmp)
            if source is None:
                continue
            lacking = [f for f in artifact.files if not (source / f).is_file()]
            if lacking and artifact.needed:
                raise FetchError(f"{link.file_name} holds no complete {artifact.name} folder (missing: "
                                 f"{', '.join(lacking)}; it holds {', '.join(sorted(names)[:12])}"
                                 f"{' ...' if len(names) > 12 else ''}). The download was kept in {downloaded.parent}"
                                 "; please report this layout.")
            if lacking:
                say(f"  note: {artifact.name} from {link.file_name} lacks {', '.join(lacking)} (not needed)")
            _place(source, root / artifact.folder)
            installed.append(artifact.name)
        if not installed:
            raise FetchError(f"{link.file_name} holds none of {', '.join(a.name for a in wanted)} (it holds "
                             f"{', '.join(sorted(names)[:12])}); the download was kept in {downloaded.parent}.")
        downloaded.unlink()
        return installed
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------------------ the command


@dataclass
class Plan:
    """Which links to fetch, which to skip (and why), and which name no artifact (as labels)."""

    fetch: list[Link]
    skipped: list[tuple[Link, str]]
    unrecognised: list[str]


def plan(urls: Iterable[str], root: Path, include_all: bool) -> Plan:
    """Sort the links: what the base run needs (or everything with `include_all`), minus what is already in place."""
    out = Plan([], [], [])
    claimed: set[str] = set()
    for url in urls:
        link = recognise(url)
        if link is None:
            out.unrecognised.append(redact(url))
            continue
        wanted = [a for a in link.artifacts if include_all or BY_NAME[a].needed]
        if not wanted:
            out.skipped.append((link, "not needed by the base run (--all fetches it)"))
            continue
        present = [a for a in wanted if not missing_in(root, BY_NAME[a])]
        if len(present) == len(wanted) and link.archive:
            out.skipped.append((link, "already in place"))
            continue
        if not link.archive and (root / BY_NAME[link.artifacts[0]].folder / (link.member or "")).is_file():
            out.skipped.append((link, "already in place"))
            continue
        key = f"{link.artifacts}:{link.member}"
        if key in claimed:
            out.skipped.append((link, "another link holds the same"))
            continue
        claimed.add(key)
        out.fetch.append(link)
    return out


def fetch(text: str, root: Path, include_all: bool = False, retries: int = 3, progress: bool = True,
          timeout: float = 60.0, backoff: float = 2.0, say: Callable[[str], None] = print) -> list[str]:
    """Fetch every artifact the links in `text` hold that the base run needs (all with `include_all`) into `root`;
    returns the files of the base layout still missing (empty: `checkpoints check` passes)."""
    urls = extract_links(text)
    root.mkdir(parents=True, exist_ok=True)
    for leftover in root.glob(EXTRACT_PREFIX + "*"):  # from a run killed during extraction
        shutil.rmtree(leftover, ignore_errors=True)
    todo = plan(urls, root, include_all)
    if not todo.fetch and not todo.skipped:
        seen = ", ".join(todo.unrecognised) or "none"
        raise FetchError(f"no SpiritLM download link recognised (links seen: {seen}). Paste the links from Meta's "
                         "email, one per line or the whole email; recognised names: "
                         + ", ".join(sorted(BY_NAME)) + " (archives .tar/.tar.gz/.zip or single files).")
    for label in todo.unrecognised:
        say(f"ignored (names no SpiritLM artifact): {label}")
    for link, why in todo.skipped:
        say(f"skipped {link.label}: {why}")
    downloads = root / DOWNLOADS_DIR
    for i, link in enumerate(todo.fetch, 1):
        wanted = [BY_NAME[a] for a in link.artifacts if include_all or BY_NAME[a].needed]
        if link.archive and not any(missing_in(root, a) for a in wanted):
            say(f"[{i}/{len(todo.fetch)}] {link.label}: already in place (from an earlier link)")
            continue
        say(f"[{i}/{len(todo.fetch)}] {link.label} -> " + ", ".join(str(BY_NAME[a].folder) for a in link.artifacts
                                                                     if include_all or BY_NAME[a].needed))
        path = download(link, downloads, retries=retries, timeout=timeout, progress=progress, backoff=backoff,
                        say=say)
        installed = install(path, link, root, include_all, say=say)
        say(f"  installed {', '.join(installed)}")
    if downloads.is_dir() and not any(downloads.iterdir()):
        downloads.rmdir()
    return [f"{a.folder}/{f}" for a in ARTIFACTS if a.needed for f in missing_in(root, a)]


__all__ = ["ARTIFACTS", "BUNDLES", "SINGLE_FILES", "Artifact", "FetchError", "Link", "Plan", "download",
           "extract_links", "fetch", "install", "missing_in", "plan", "recognise", "redact"]
