"""Open a `report.html` in a real headless Chromium and check what a reader sees: no broken image, no link to a
missing target, the verdict within the first viewport, no sideways scrolling, a PDF print; save a screenshot.

Driven through Debian's `chromedriver` with the W3C WebDriver protocol (plain HTTP + JSON, so stdlib urllib: no
Python package, no browser download). Chromium runs with the flags that work in a sandboxed, offline machine
(headless, no sandbox, no GPU, no background networking, a fresh profile).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic", "--disable-dev-shm-usage",
                  "--hide-scrollbars")
INSTALL_HINT = ("Debian's chromium and chromium-driver are needed (scripts/bootstrap.sh installs them for the tests "
                "when run as root with apt-get; else 'sudo apt-get install chromium chromium-driver')")

# What the page shows, measured in the browser (plain DOM, no framework).
PROBE_JS = """
const vw = window.innerWidth, vh = window.innerHeight;
const rect = e => { if (!e) return null; const r = e.getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
const big = document.querySelector('#verdict .big'), sentence = document.querySelector('#verdict .sentence');
const images = Array.from(document.images);
const links = Array.from(document.querySelectorAll('a[href]')).map(a => a.getAttribute('href'));
const anchors = links.filter(h => h.startsWith('#'));
return {
  viewport: [vw, vh],
  title: document.title,
  verdict: big ? big.textContent.trim() : null,
  verdict_rect: rect(big), sentence_rect: rect(sentence),
  images: images.length,
  broken_images: images.filter(i => !i.complete || i.naturalWidth === 0)
    .map(i => (i.getAttribute('alt') || '') + ' <' + (i.getAttribute('src') || '').slice(0, 40) + '>'),
  links: links,
  missing_anchors: anchors.filter(h => !document.getElementById(decodeURIComponent(h.slice(1)))),
  scripts: document.scripts.length,
  scroll_width: document.documentElement.scrollWidth,
  page_height: document.documentElement.scrollHeight,
  sections: Array.from(document.querySelectorAll('main > section')).map(s => s.id),
};
"""


class BrowserUnavailable(RuntimeError):
    """No Chromium or ChromeDriver here; the message says how to install them."""


@dataclass
class BrowserCheck:
    """What the browser saw; `problems` is empty when the page is good."""

    viewport: tuple[int, int]
    verdict: str | None
    verdict_in_first_viewport: bool
    images: int
    broken_images: list[str]
    links: int
    broken_links: list[str]
    sections: list[str]
    page_height: int
    horizontal_overflow: bool
    scripts: int
    pdf_pages: int | None
    screenshot: str | None
    seconds: float
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def find_browser() -> tuple[str, str]:
    """(chromium, chromedriver) executables, or BrowserUnavailable naming what is missing."""
    chromium = os.environ.get("ARTIFACT_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("ARTIFACT_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", chromium), ("chromedriver", driver)) if not path]
    if missing:
        raise BrowserUnavailable(f"{' and '.join(missing)} not found: {INSTALL_HINT}")
    return str(chromium), str(driver)


class _WebDriver:
    """The few WebDriver commands used here, over HTTP to a chromedriver this object starts and stops."""

    def __init__(self, chromium: str, driver: str, window: tuple[int, int], timeout: float):
        self.timeout = timeout
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.profile = tempfile.mkdtemp(prefix="report-chromium-")
        self.proc = subprocess.Popen([driver, f"--port={port}"], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.session: str | None = None
        deadline = time.time() + timeout
        while True:
            try:
                self._call("GET", "/status")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.time() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise BrowserUnavailable(f"chromedriver ({driver}) did not start") from None
                time.sleep(0.1)
        args = [*CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", f"--window-size={window[0]},{window[1]}"]
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium, "args": args}}}}
        try:
            self.session = self._call("POST", "/session", caps)["sessionId"]
        except Exception as error:
            self.close()
            raise BrowserUnavailable(f"Chromium ({chromium}) did not start under chromedriver: {error}") from None

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read())["value"]
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("value", {})
            raise RuntimeError(f"WebDriver {path}: {detail.get('error')}: {detail.get('message', '')[:300]}") \
                from None

    def cmd(self, method: str, path: str, body: Any = None) -> Any:
        return self._call(method, f"/session/{self.session}{path}", body)

    def close(self) -> None:
        try:
            if self.session:
                self._call("DELETE", f"/session/{self.session}")
        except Exception:
            pass
        finally:
            self.session = None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


def _pdf_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", pdf))


def check_report(html_path: Path, screenshot: Path | None = None, window: tuple[int, int] = (1366, 768),
                 pdf: Path | None = None, timeout: float = 120.0) -> BrowserCheck:
    """Load `html_path` in headless Chromium at a laptop's window size and check it (see BrowserCheck); save the
    first viewport as a PNG to `screenshot` and the A4 print to `pdf` when given."""
    html_path = Path(html_path).resolve()
    chromium, driver = find_browser()
    started = time.time()
    wd = _WebDriver(chromium, driver, window, timeout)
    try:
        wd.cmd("POST", "/url", {"url": html_path.as_uri()})
        seen = wd.cmd("POST", "/execute/sync", {"script": PROBE_JS, "args": []})
        shot = base64.b64decode(wd.cmd("GET", "/screenshot"))
        printed = base64.b64decode(wd.cmd("POST", "/print", {
            "page": {"width": 21.0, "height": 29.7}, "background": True, "orientation": "portrait"}))
    finally:
        wd.close()
    if screenshot is not None:
        Path(screenshot).write_bytes(shot)
    if pdf is not None:
        Path(pdf).write_bytes(printed)
    vw, vh = seen["viewport"]
    rects = [seen.get("verdict_rect"), seen.get("sentence_rect")]
    in_view = all(r is not None and r["top"] >= 0 and r["bottom"] <= vh and r["right"] <= vw for r in rects)
    broken_links = [f"{h} (no such anchor)" for h in seen["missing_anchors"]]
    for href in seen["links"]:
        if href.startswith("#"):
            continue
        parts = urllib.parse.urlsplit(href)
        if parts.scheme or parts.netloc:
            broken_links.append(f"{href} (leaves the file: the report must work offline)")
        elif not (html_path.parent / urllib.parse.unquote(parts.path)).is_file():
            broken_links.append(f"{href} (no such file)")
    check = BrowserCheck(
        viewport=(vw, vh), verdict=seen.get("verdict"), verdict_in_first_viewport=in_view, images=seen["images"],
        broken_images=seen["broken_images"], links=len(seen["links"]), broken_links=broken_links,
        sections=seen["sections"], page_height=seen["page_height"], horizontal_overflow=seen["scroll_width"] > vw,
        scripts=seen["scripts"], pdf_pages=_pdf_pages(printed) if printed.startswith(b"%PDF") else None,
        screenshot=str(screenshot) if screenshot is not None else None, seconds=round(time.time() - started, 1))
    if check.verdict not in ("PASS", "FAIL", "NO VERDICT"):
        check.problems.append(f"no verdict shown (found {check.verdict!r})")
    if not in_view:
        check.problems.append(f"the verdict is not within the first {vw}x{vh} viewport")
    check.problems += [f"broken image: {b}" for b in check.broken_images]
    check.problems += [f"broken link: {b}" for b in broken_links]
    if check.horizontal_overflow:
        check.problems.append(f"the page scrolls sideways ({seen['scroll_width']} px wide in a {vw} px viewport)")
    if check.scripts:
        check.problems.append(f"{check.scripts} script element(s): the report should need none")
    if not check.pdf_pages:
        check.problems.append("printing to PDF gave no page")
    return check


__all__ = ["BrowserCheck", "BrowserUnavailable", "CHROMIUM_FLAGS", "check_report", "find_browser"]
