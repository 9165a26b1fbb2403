"""`checkpoints fetch` against a local HTTP server (Range support written here) serving a SpiritLM-shaped checkpoint
packed as archives: BRIEF section 2's names and folders, tiny bytes (the fetcher never loads a model).

Every test checks the redaction rule: the signed query string and the path token of the links appear in no output
file, log line, stdout or stderr."""

from __future__ import annotations

import gzip
import io
import logging
import random
import re
import socket
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from artifact.cli import main
from artifact import download as cf

SECRET = "Sig0x5ecret9d1a7"  # the signature in each link's query string
PATH_TOKEN = "tok7Hf3kQpath"  # an opaque token in each link's path


def source_tree(root: Path) -> Path:
    """Meta's whole checkpoint tree (spiritlm checkpoints/README.md), tiny files; the LM weights are 300 kB of
    seeded random bytes so that a transfer can be cut in the middle of its body. The base model's tokenizer files are
    a real SpiritLM-shaped tokenizer: the check that ends a fetch loads it."""
    from tests.support.spiritlm_checkpoint import write_tokenizer

    rng = random.Random(0)
    for artifact in cf.ARTIFACTS:
        for name in artifact.files:
            path = root / artifact.folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            big = name in ("pytorch_model.bin", "mhubert_base_25hz.pt", "generator.pt")
            path.write_bytes(rng.randbytes(300_000 if big else 64) if big else f"{artifact.name}/{name}\n".encode())
    write_tokenizer(root / cf.BY_NAME["spirit-lm-base-7b"].folder)
    return root


def tar_bytes(root: Path, members: dict[str, Path], mode: str = "w:gz") -> bytes:
    """A tar archive of {name inside the archive: file or folder}."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for arcname, path in members.items():
            tar.add(root / path, arcname=arcname)
    return buf.getvalue()


def zip_bytes(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, arcname=path.name)  # files at the top, no wrapper folder
    return buf.getvalue()


def meta_archives(src: Path) -> dict[str, bytes]:
    """One download per artifact, in the shapes a link may take: a wrapper folder (tar.gz), files at the top (zip),
    plain tar, and a deep path (checkpoints/speech_tokenizer/...)."""
    a = {x.name: x for x in cf.ARTIFACTS}
    return {
        "spirit-lm-base-7b.tar.gz": tar_bytes(src, {"spirit-lm-base-7b": a["spirit-lm-base-7b"].folder}),
        "hubert_25hz.zip": zip_bytes(src / a["hubert_25hz"].folder),
        "spirit-lm-expressive-7b.tar.gz": tar_bytes(src, {"spirit-lm-expressive-7b":
                                                          a["spirit-lm-expressive-7b"].folder}),
        "hifigan_spiritlm_base.tar": tar_bytes(src, {"hifigan_spiritlm_base": a["hifigan_spiritlm_base"].folder},
                                               "w"),
        "hifigan_spiritlm_expressive_w2v2.tar.gz": tar_bytes(src, {
            "hifigan_spiritlm_expressive_w2v2": a["hifigan_spiritlm_expressive_w2v2"].folder}),
        "style_encoder_w2v2.tar.gz": tar_bytes(src, {"style_encoder_w2v2": a["style_encoder_w2v2"].folder}),
        "vqvae_f0_quantizer.tar.gz": tar_bytes(src, {"checkpoints/speech_tokenizer/vqvae_f0_quantizer":
                                                     a["vqvae_f0_quantizer"].folder}),
    }


class MetaLikeServer(ThreadingHTTPServer):
    """Serves `files` at /dl/<token>/<name>, only with the right signature (else 403, like a presigned link);
    honours `Range: bytes=N-` unless `ranges` is off; cuts the body in half once for names in `drop_once`."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files = dict(files)
        self.ranges = True
        self.drop_once: set[str] = set()
        self.forbidden: set[str] = set()
        self.requests: list[tuple[str, str | None]] = []  # (file name, Range header)

    def url(self, name: str) -> str:
        host, port = self.server_address[:2]
        return (f"http://{host}:{port}/dl/{PATH_TOKEN}/{name}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=604800"
                f"&X-Amz-Signature={SECRET}")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: MetaLikeServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the server's log stays out of the outputs)
        pass

    def _empty(self, code: int, headers: dict[str, str] | None = None) -> None:
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        path, _, query = self.path.partition("?")
        name = path.rsplit("/", 1)[-1]
        srv = self.server
        srv.requests.append((name, self.headers.get("Range")))
        if parse_qs(query).get("X-Amz-Signature") != [SECRET] or name in srv.forbidden:
            return self._empty(403)
        if name not in srv.files:
            return self._empty(404)
        body = srv.files[name]
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        etag = f'"{len(body)}-{hash(body) & 0xffff:x}"'
        if match and srv.ranges:
            start = int(match.group(1))
            if start >= len(body):
                return self._empty(416, {"Content-Range": f"bytes */{len(body)}"})
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        if srv.ranges:
            self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        chunk = body[start:]
        if name in srv.drop_once:  # the connection dies mid-body
            srv.drop_once.discard(name)
            self.wfile.write(chunk[: len(chunk) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(chunk)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return source_tree(tmp_path / "source")


@pytest.fixture
def server(src: Path):
    srv = MetaLikeServer(meta_archives(src))
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def email(server: MetaLikeServer, names: list[str]) -> str:
    """An approval email as a reviewer would paste it: prose, links in angle brackets, one with a trailing full stop,
    one HTML-escaped, and an unrelated link."""
    lines = ["Hi,", "", "Your request for Spirit LM has been approved. Download links (valid for 7 days):", ""]
    for i, name in enumerate(names):
        url = server.url(name)
        lines.append({0: f"- {name.split('.')[0]}: <{url}>", 1: f"{name}: {url}.",
                      2: f'<a href="{url.replace("&", "&amp;")}">{name}</a>'}[i % 3])
    lines += ["", "License: https://ai.meta.com/resources/models-and-libraries/spirit-lm-downloads/ .", "Meta AI"]
    return "\n".join(lines) + "\n"


def write_links(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mail" / "links.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def assert_no_secret(tmp_path: Path, captured: str, caplog: pytest.LogCaptureFixture) -> None:
    """The redaction rule: nothing written, printed or logged holds the link's signature or path token."""
    texts = {"stdout/stderr": captured, "log": caplog.text}
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.parent.name != "mail":  # the user's own links file holds them, of course
            texts[str(path)] = path.read_bytes().decode("latin-1")
            texts[f"name of {path}"] = str(path)
    for where, text in texts.items():
        assert SECRET not in text and PATH_TOKEN not in text, f"a secret leaked into {where}"


def same_tree(src: Path, root: Path, artifacts) -> None:
    for artifact in artifacts:
        for name in artifact.files:
            got = root / artifact.folder / name
            assert got.read_bytes() == (src / artifact.folder / name).read_bytes(), got


def _sidecar_of(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def needed() -> list[cf.Artifact]:
    return [a for a in cf.ARTIFACTS if a.needed]


def test_links_are_read_from_email_text_and_named_by_file_name(server):
    names = ["spirit-lm-base-7b.tar.gz", "hubert_25hz.zip", "hifigan_spiritlm_base.tar"]
    urls = cf.extract_links(email(server, names))
    assert urls == [server.url(n) for n in names] + [
        "https://ai.meta.com/resources/models-and-libraries/spirit-lm-downloads/"]
    assert [cf.recognise(u).artifacts for u in urls[:3]] == [("spirit-lm-base-7b",), ("hubert_25hz",),
                                                             ("hifigan_spiritlm_base",)]
    assert cf.recognise(urls[3]) is None
    assert cf.redact(urls[0]) == "127.0.0.1/spirit-lm-base-7b.tar.gz"
    # Quoted-printable email source (soft line breaks, =3D) gives the same links.
    qp = email(server, names[:1]).replace("=", "=3D")
    qp = qp[:60] + "=\n" + qp[60:]
    assert cf.extract_links(qp)[0] == urls[0]
    # Names without case or separators, bundles, single files by name or by their folder in the path.
    link = cf.recognise("https://x.example/a/Spirit_LM_Base_7B.TAR.GZ?sig=1")
    assert link and link.artifacts == ("spirit-lm-base-7b",) and link.archive
    assert cf.recognise("https://x.example/speech_tokenizer.tar").artifacts == cf.BUNDLES["speech_tokenizer"]
    assert cf.recognise("https://x.example/q/L11_quantizer_500.pt?s=2").member == "L11_quantizer_500.pt"
    assert cf.recognise("https://x.example/spirit-lm-base-7b/pytorch_model.bin").artifacts == ("spirit-lm-base-7b",)
    assert cf.recognise("https://x.example/pytorch_model.bin") is None  # base or expressive? not guessed
    assert cf.recognise("https://x.example/spirit-lm-base-7b/notes.txt") is None


def test_fetch_takes_what_the_base_run_needs_and_ends_with_the_check(tmp_path, src, server, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    names = sorted(server.files)
    links = write_links(tmp_path, email(server, names))
    root = tmp_path / "ckpt"
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--no-progress"]) == 0
    out = capsys.readouterr()
    same_tree(src, root, needed())
    assert "OK:" in out.out
    assert sorted(p.name for p in (root / "speech_tokenizer").iterdir()) == ["hubert_25hz"]
    assert sorted(p.name for p in (root / "spiritlm_model").iterdir()) == ["spirit-lm-base-7b"]
    assert {n for n, _ in server.requests} == {"spirit-lm-base-7b.tar.gz", "hubert_25hz.zip"}  # nothing else asked
    assert out.out.count("not needed by the base run") == 5
    assert not (root / cf.DOWNLOADS_DIR).exists() and not list(root.glob(cf.EXTRACT_PREFIX + "*"))
    # A rerun finds everything in place and asks the server for nothing.
    server.requests.clear()
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--no-progress"]) == 0
    out2 = capsys.readouterr()
    assert server.requests == [] and out2.out.count("already in place") == 2
    assert_no_secret(tmp_path, out.out + out.err + out2.out + out2.err, caplog)


def test_fetch_all_fills_the_whole_tree_from_a_bundle_and_single_files(tmp_path, src, server, capsys, caplog):
    a = {x.name: x for x in cf.ARTIFACTS}
    server.files["speech_tokenizer.tar.gz"] = tar_bytes(src, {"speech_tokenizer": Path("speech_tokenizer")})
    for name in a["hubert_25hz"].files:  # the HuBERT files also as single-file links
        server.files[name] = (src / a["hubert_25hz"].folder / name).read_bytes()
    names = ["spirit-lm-base-7b.tar.gz", "spirit-lm-expressive-7b.tar.gz", "mhubert_base_25hz.pt",
             "L11_quantizer_500.pt", "speech_tokenizer.tar.gz"]
    links = write_links(tmp_path, email(server, names))
    root = tmp_path / "ckpt"
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--all", "--no-progress"]) == 0
    out = capsys.readouterr()
    same_tree(src, root, cf.ARTIFACTS)
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_an_interrupted_transfer_resumes_on_rerun_byte_identical(tmp_path, src, server, capsys, caplog):
    server.drop_once.add("spirit-lm-base-7b.tar.gz")
    links = write_links(tmp_path, email(server, ["spirit-lm-base-7b.tar.gz", "hubert_25hz.zip"]))
    root = tmp_path / "ckpt"
    args = ["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--retries", "0"]
    assert main(args) == 2  # progress bar on: it must not show the link either
    first = capsys.readouterr()
    assert "interrupted" in first.err and "Rerun the same command: it resumes" in first.err
    part = root / cf.DOWNLOADS_DIR / "spirit-lm-base-7b.tar.gz.part"
    size = part.stat().st_size
    total = len(server.files["spirit-lm-base-7b.tar.gz"])
    assert 0 < size < total
    assert not (root / "spiritlm_model").exists()  # nothing half-extracted
    assert _sidecar_of(part).is_file()
    assert_no_secret(tmp_path, first.out + first.err, caplog)  # the .part file and its sidecar included
    assert main(args) == 0
    second = capsys.readouterr()
    assert server.requests[-2] == ("spirit-lm-base-7b.tar.gz", f"bytes={size}-")  # resumed where it stopped
    assert f"resuming at {size:,} bytes" in second.out
    same_tree(src, root, needed())
    assert not part.exists()
    assert_no_secret(tmp_path, first.out + first.err + second.out + second.err, caplog)


def test_automatic_retry_resumes_within_one_run(tmp_path, src, server, capsys, caplog):
    server.drop_once.add("spirit-lm-base-7b.tar.gz")
    missing = cf.fetch(email(server, ["spirit-lm-base-7b.tar.gz", "hubert_25hz.zip"]), tmp_path / "ckpt",
                       retries=2, backoff=0, progress=False)
    assert missing == []
    ranges = [r for n, r in server.requests if n == "spirit-lm-base-7b.tar.gz"]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=") and ranges[1] != "bytes=0-"
    same_tree(src, tmp_path / "ckpt", needed())
    out = capsys.readouterr()
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_a_server_without_range_support_restarts_cleanly(tmp_path, src, server, capsys, caplog):
    server.ranges = False
    server.drop_once.add("spirit-lm-base-7b.tar.gz")
    missing = cf.fetch(email(server, ["spirit-lm-base-7b.tar.gz", "hubert_25hz.zip"]), tmp_path / "ckpt",
                       retries=1, backoff=0, progress=False)
    assert missing == []
    out = capsys.readouterr()
    assert "does not resume downloads" in out.out
    same_tree(src, tmp_path / "ckpt", needed())  # a naive append would have doubled the first half
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_a_corrupt_archive_is_refused_and_deleted(tmp_path, server, capsys, caplog):
    good = server.files["spirit-lm-base-7b.tar.gz"]
    raw = gzip.decompress(good)
    bad = bytearray(gzip.compress(raw, mtime=0))
    bad[len(bad) // 2] ^= 0xFF  # same size, one damaged byte in the deflate stream
    server.files["spirit-lm-base-7b.tar.gz"] = bytes(bad)
    links = write_links(tmp_path, email(server, ["spirit-lm-base-7b.tar.gz", "hubert_25hz.zip"]))
    root = tmp_path / "ckpt"
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--no-progress"]) == 2
    out = capsys.readouterr()
    assert "spirit-lm-base-7b.tar.gz is not a readable archive" in out.err and "it was deleted" in out.err
    assert "Rerun the same command to download it again" in out.err
    assert not list((root / cf.DOWNLOADS_DIR).iterdir())
    assert not (root / "spiritlm_model").exists() and not list(root.glob(cf.EXTRACT_PREFIX + "*"))
    server.files["spirit-lm-base-7b.tar.gz"] = good  # the rerun downloads it again
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(root), "--no-progress"]) == 0
    out2 = capsys.readouterr()
    assert_no_secret(tmp_path, out.out + out.err + out2.out + out2.err, caplog)


@pytest.mark.parametrize("evil", ["../escaped.txt", "/tmp/escaped-abs.txt", "spirit-lm-base-7b/link"])
def test_members_escaping_the_target_folder_are_refused(tmp_path, server, capsys, evil):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(evil)
        if evil.endswith("link"):
            info.type, info.linkname = tarfile.SYMTYPE, "../../../escaped.txt"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"evil"))
    server.files["spirit-lm-base-7b.tar"] = buf.getvalue()
    root = tmp_path / "ckpt"
    with pytest.raises(cf.FetchError, match="would land outside the target folder"):
        cf.fetch(email(server, ["spirit-lm-base-7b.tar"]), root, progress=False)
    assert not (tmp_path / "escaped.txt").exists() and not Path("/tmp/escaped-abs.txt").exists()
    assert not list(root.rglob("escaped*")) and not (root / cf.DOWNLOADS_DIR / "spirit-lm-base-7b.tar").exists()


def test_an_expired_link_says_to_request_new_ones(tmp_path, server, capsys, caplog):
    server.forbidden.add("spirit-lm-base-7b.tar.gz")
    links = write_links(tmp_path, email(server, ["spirit-lm-base-7b.tar.gz"]))
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(tmp_path / "ckpt")]) == 2
    out = capsys.readouterr()
    assert "HTTP 403" in out.err and "links from Meta expire" in out.err and "request new links" in out.err
    assert "127.0.0.1/spirit-lm-base-7b.tar.gz" in out.err
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_no_link_recognised(tmp_path, capsys):
    links = write_links(tmp_path, "Thanks! See https://ai.meta.com/llama/?utm=abc and https://example.org/x.pdf\n")
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(tmp_path / "ckpt")]) == 2
    err = capsys.readouterr().err
    assert "no SpiritLM download link recognised" in err and "example.org/x.pdf" in err and "utm" not in err


def test_a_malformed_link_is_refused_without_quoting_it(tmp_path, capsys, caplog):
    links = write_links(tmp_path, f"http://127.0.0.1:8x/{PATH_TOKEN}/spirit-lm-base-7b.tar.gz?s={SECRET}\n")
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(tmp_path / "ckpt")]) == 2
    out = capsys.readouterr()
    assert "the link for 127.0.0.1/spirit-lm-base-7b.tar.gz is malformed" in out.err
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_disk_full_is_said_before_writing(tmp_path, server, capsys, caplog, monkeypatch):
    class Usage:
        free = 1000

    monkeypatch.setattr(cf.shutil, "disk_usage", lambda path: Usage)
    links = write_links(tmp_path, email(server, ["spirit-lm-base-7b.tar.gz"]))
    assert main(["checkpoints", "fetch", "--links", str(links), "--into", str(tmp_path / "ckpt")]) == 2
    out = capsys.readouterr()
    assert "disk full" in out.err and "0.00 GB free" in out.err and "rerun" in out.err
    assert_no_secret(tmp_path, out.out + out.err, caplog)


def test_check_still_works_and_fetch_needs_its_arguments(tmp_path, capsys):
    assert main(["checkpoints", "check", str(tmp_path)]) == 1
    assert "lacks 8 file(s)" in capsys.readouterr().out
    assert main(["checkpoints", "fetch", "--into", str(tmp_path)]) == 2
    assert "needs --links FILE" in capsys.readouterr().err
