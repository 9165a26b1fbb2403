"""The verify report: markdown (report.md), a terminal table, and JSON (report.json).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from artifact.core.fileio import write_atomic
from artifact.core.jsonable import jsonable
from artifact.verification.records import PASS, Report, closest_margins


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "nan" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(jsonable(value))
    return str(value)


def verdict_counts(report: Report) -> str:
    """The verdict line's counts: judged checks (PASS, FAIL) apart from SKIPs (checks that could not fail, or could
    not be made) and INFO, e.g. "PASS 120, FAIL 0, SKIP 15 (not judged), INFO 1"."""
    counts = report.to_dict()["counts"]
    return (f"PASS {counts[PASS]}, FAIL {counts['FAIL']}, SKIP {counts['SKIP']} (not judged)"
            + (f", INFO {counts['INFO']}" if counts["INFO"] else ""))


def render_markdown(report: Report) -> str:
    """report.md: verdict, which checks were possible and which were skipped (why), and every check."""
    doc = report.to_dict()
    lines = [f"# verify.py: {report.verdict}", "",
             f"- results: `{report.results}`", f"- expected: `{report.expected}`",
             f"- checks: {verdict_counts(report)}"]
    lines += [f"- {p}" for p in report.possible if p.startswith("tier:")]
    if doc["closest"]:
        lines.append("- closest to their tolerances (share used): "
                     + "; ".join(f"{c['check']} {c['used']:.2f}" for c in doc["closest"]))
    lines += ["", "## Checks possible", ""]
    lines += [f"- {p}" for p in report.possible] or ["- none"]
    lines += ["", "## Checks skipped", ""]
    lines += [f"- {k}: {v}" for k, v in report.skipped.items()] or ["- none"]
    lines += ["", "## Every check", "",
              "| verdict | check | arm | kind | metric | group | observed | expected | tolerance | detail |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in report.checks:
        cells = [c.verdict, c.check, c.arm, c.kind, c.metric, c.group, c.observed, c.expected, c.tolerance,
                 c.detail]
        lines.append("| " + " | ".join(_fmt(x).replace("|", "\\|") for x in cells) + " |")
    return "\n".join(lines) + "\n"


def render_table(report: Report, width: int = 110) -> str:
    """A short per-check table for the terminal, then the verdict."""
    lines = []
    for c in report.checks:
        where = "/".join(x for x in (c.arm, c.kind, c.metric, c.group) if x)
        obs = f"{_fmt(c.observed)} (tol {_fmt(c.tolerance)})" if c.tolerance is not None else _fmt(c.observed)
        line = f"{c.verdict:4}  {c.check:19} {where:28} {obs}"
        if c.verdict != PASS and c.detail:
            line += f"  {c.detail}"
        lines.append(line[:width] if c.verdict == PASS else line)
    for k, v in report.skipped.items():
        lines.append(f"SKIP  {k}: {v}")
    closest = closest_margins(report.checks)
    if closest:
        lines.append("closest to their tolerances (share used): "
                     + "; ".join(f"{label} {used:.2f}" for label, used in closest))
    possible = ", ".join(report.possible) or "no check possible"
    lines.append(f"verify: {report.verdict} ({verdict_counts(report)}; {possible})")
    return "\n".join(lines)


def write_report(report: Report, folder: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "report.json", folder / "report.md"
    json_text, md_text = json.dumps(report.to_dict(), indent=2) + "\n", render_markdown(report)
    write_atomic(json_path, lambda handle: handle.write(json_text.encode()))  # a full disk leaves no half report
    write_atomic(md_path, lambda handle: handle.write(md_text.encode()))
    return json_path, md_path
