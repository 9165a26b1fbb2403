"""The page's building blocks: escaping, number formats, JSON reading without a crash, embedded PNGs, a small
markdown renderer, and the stylesheet (screen and print).
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
import struct
from pathlib import Path
from typing import Any


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def format_value(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "nan"
        return f"{value:.{digits}g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def read_json_or_problem(path: Path) -> tuple[Any, str | None]:
    """(data, None) or (None, a plain sentence saying why not)."""
    if not path.is_file():
        return None, f"{path.name} is absent"
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except (OSError, ValueError) as error:
        return None, f"{path.name} could not be read ({type(error).__name__}: {error})"


def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[:8] != b"\x89PNG\r\n\x1a\n" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def relative_path(path: Path, results: Path) -> str:
    return path.relative_to(results).as_posix()


class Page:
    """Collects the sections of the page and the anchors they define."""

    def __init__(self, results: Path):
        self.results = results
        self.parts: list[str] = []
        self.images = 0
        self.image_bytes = 0

    def add(self, text: str) -> None:
        self.parts.append(text)

    def link(self, path: Path, text: str | None = None) -> str:
        """A relative link to a file of the results folder, or plain text when the file is absent."""
        label = esc(text if text is not None else relative_path(path, self.results))
        if path.is_file():
            return f'<a href="{esc(relative_path(path, self.results))}">{label}</a>'
        return label

    def image(self, path: Path, caption: str, pdf: bool = True) -> str:
        """A figure with its PNG embedded (a data URI) and, when present, a link to its PDF."""
        try:
            data = path.read_bytes()
        except OSError as error:
            return f'<figure class="fig"><p class="missing">{esc(relative_path(path, self.results))} could not be read ' \
                   f'({esc(error)})</p></figure>'
        size = _png_size(data)
        if size is None:
            return f'<figure class="fig"><p class="missing">{esc(relative_path(path, self.results))} is not a PNG file' \
                   '</p></figure>'
        self.images += 1
        self.image_bytes += len(data)
        uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
        pdf_path = path.with_suffix(".pdf")
        extra = f' · {self.link(pdf_path, "PDF")}' if pdf and pdf_path.is_file() else ""
        return (f'<figure class="fig"><img src="{uri}" width="{size[0]}" height="{size[1]}" alt="{esc(caption)}">'
                f'<figcaption>{esc(caption)} <span class="src">({esc(relative_path(path, self.results))}{extra})</span>'
                "</figcaption></figure>")


def _inline_md(text: str) -> str:
    out = esc(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"(?<![*\w])\*([^*]+)\*(?!\w)", r"<i>\1</i>", out)
    return out


def markdown_to_html(text: str) -> str:
    """The small markdown the pipeline writes (headings, paragraphs, bullets, pipe tables, bold, code) as HTML;
    no links are made."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif m := re.match(r"^(#{1,6})\s+(.*)", line):
            level = min(6, len(m.group(1)) + 2)
            out.append(f"<h{level}>{_inline_md(m.group(2))}</h{level}>")
            i += 1
        elif line.lstrip().startswith("|"):
            rows = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                cells = [c.strip() for c in re.split(r"(?<!\\)\|", lines[i].strip())[1:-1]]
                if not all(re.fullmatch(r":?-{3,}:?", c) for c in cells):
                    rows.append(cells)
                i += 1
            if rows:
                head = "".join(f"<th>{_inline_md(c)}</th>" for c in rows[0])
                body = "".join("<tr>" + "".join(f"<td>{_inline_md(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
                out.append(f'<table class="md"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
        elif re.match(r"^\s*[-*]\s+", line):
            items = []
            while i < len(lines) and re.match(r"^\s*[-*]\s+", lines[i]):
                item = re.sub(r"^\s*[-*]\s+", "", lines[i])
                items.append(f"<li>{_inline_md(item)}</li>")
                i += 1
            out.append("<ul>" + "".join(items) + "</ul>")
        else:
            para = []
            while i < len(lines) and lines[i].strip() and not re.match(r"^(#|\s*\||\s*[-*]\s)", lines[i]):
                para.append(lines[i].strip())
                i += 1
            out.append(f"<p>{_inline_md(' '.join(para))}</p>")
    return "\n".join(out)


CSS = """
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --pass:#1a7f37; --fail:#b42318; --none:#9a6700;
        --bg-pass:#dafbe1; --bg-fail:#ffebe9; --bg-none:#fff8c5; }
* { box-sizing: border-box; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0; background: #fff; }
main { max-width: 1180px; margin: 0 auto; padding: 12px 24px 48px; }
header h1 { font-size: 20px; margin: 6px 0 2px; }
header p { margin: 0; color: var(--muted); font-size: 13px; }
nav { margin: 8px 0 10px; font-size: 14px; }
nav a { margin-right: 14px; }
a { color: #0b5cad; }
h2 { font-size: 19px; border-bottom: 1px solid var(--line); padding-bottom: 4px; margin-top: 34px; }
h3 { font-size: 16px; margin: 22px 0 8px; }
h4 { font-size: 15px; margin: 18px 0 6px; }
code { font: 12.5px/1.3 ui-monospace, "DejaVu Sans Mono", monospace; background: #f6f8fa; padding: 0 3px;
       border-radius: 3px; overflow-wrap: anywhere; }
.verdict { border: 2px solid; border-radius: 8px; padding: 10px 18px 8px; margin-top: 6px; }
.verdict.pass { border-color: var(--pass); background: var(--bg-pass); }
.verdict.fail { border-color: var(--fail); background: var(--bg-fail); }
.verdict.none { border-color: var(--none); background: var(--bg-none); }
.verdict .big { font-size: 44px; font-weight: 800; letter-spacing: 1px; line-height: 1.1; }
.verdict.pass .big { color: var(--pass); } .verdict.fail .big { color: var(--fail); }
.verdict.none .big { color: var(--none); }
.verdict .sentence { font-size: 17px; margin: 4px 0 6px; }
.verdict p, .verdict ul { margin: 4px 0; }
.claimline { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: 6px 22px; }
.facts, .srcline, .note, .src { color: var(--muted); font-size: 13px; }
.verdict .failed { font-weight: 600; }
.missing { color: var(--none); font-style: italic; }
.claim { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 13px; font-weight: 600;
         white-space: nowrap; }
.claim.sup { background: var(--bg-pass); color: var(--pass); }
.claim.nsup { background: var(--bg-fail); color: var(--fail); }
.claim.inc { background: #eaeef2; color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13.5px; }
th, td { border: 1px solid var(--line); padding: 3px 7px; vertical-align: top; text-align: left; }
thead th { background: #f6f8fa; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.detail { font-size: 12.5px; color: var(--muted); max-width: 420px; }
table.checks, table.claims, table.conds { width: 100%; }
table.kv th { width: 230px; font-weight: 600; background: #f6f8fa; }
table.kv td { overflow-wrap: anywhere; }
.v-pass, .o-holds { color: var(--pass); font-weight: 600; }
.v-fail, .o-contradicted { color: var(--fail); font-weight: 700; }
.v-info, .v-skip, .o-undecided { color: var(--none); font-weight: 600; }
tr.r-fail td { background: var(--bg-fail); }
tr.r-info td { background: #fffbe6; }
.claimbox { border-left: 3px solid var(--line); padding-left: 12px; margin: 14px 0; }
.claimbox h3 { margin-top: 8px; }
svg.ci { vertical-align: middle; }
.fig { margin: 10px 0 18px; text-align: center; break-inside: avoid; page-break-inside: avoid; }
.fig img { max-width: min(100%, 960px); height: auto; border: 1px solid #eef1f4; }
.pair .fig img { max-width: 100%; }
.fig figcaption { font-size: 13px; margin-top: 3px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; align-items: start; }
.pair .fig { margin: 6px 0 12px; }
.md { border: 1px solid var(--line); border-radius: 6px; padding: 4px 14px; margin: 10px 0; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
@media screen and (max-width: 800px) { .pair { grid-template-columns: 1fr; } main { padding: 8px 10px; } }
@media print {
  @page { size: A4; margin: 12mm; }
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav { display: none; }
  a { color: inherit; text-decoration: none; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-before: page; page-break-before: always; margin-top: 0; }
  h2, h3, h4 { break-after: avoid; page-break-after: avoid; }
  tr, .fig { break-inside: avoid; page-break-inside: avoid; }
  table { font-size: 8.5pt; }
  td.num { white-space: normal; }
  thead { display: table-header-group; }
  .verdict .big { font-size: 30pt; }
  .fig img { max-height: 235mm; width: auto; }
  td.detail { max-width: none; }
  .fig figcaption, .note, .srcline, .src { font-size: 8pt; }
}
"""
