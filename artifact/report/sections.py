"""The sections of report.html, in reading order: the verdict, the claims with their statistics and margins, the
figures, the verify checks (failed first), the manifest. Each reads what exists and says plainly what is missing.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Iterable

from artifact.analysis.claims import margin_of, requirement_of
from artifact.core.layout import (
    COMPARISON_DIR,
    COMPARISON_FILE,
    COMPARISON_MD,
    CORRUPTION_DIR,
    FIGURES_DIR,
    MANIFEST_FILE,
    PIPELINE_FILE,
    REPORT_JSON,
    REPORT_MD,
    STEPS_FILE,
    SUMMARY_FILE,
    TRANSCRIPTION_DIR,
    VERIFY_DIR,
    ResultsFolderError,
)
from artifact.core.names import ARM_LABELS, KIND_NAMES, KINDS
from artifact.core.results import MissingRunFolderError, ResultsFolder
from artifact.report.page import Page, esc, format_value, markdown_to_html, relative_path

VERDICT_ORDER = {"FAIL": 0, "INFO": 1, "SKIP": 2, "PASS": 3}


SET_ORDER = ("both", "own", "train", "held_out")


def _claim_checks(report: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {str(c.get("group")): c for c in (report or {}).get("checks", []) if c.get("check") == "claim"}


def verdict_of(report: dict[str, Any] | None) -> str:
    """PASS, FAIL or NO VERDICT."""
    if not report:
        return "NO VERDICT"
    verdict = str(report.get("verdict", "")).upper()
    counts = report.get("counts") or {}
    judged = sum(int(counts.get(v, 0) or 0) for v in ("PASS", "FAIL"))
    if verdict not in ("PASS", "FAIL") or (counts and judged == 0):
        return "NO VERDICT"
    return verdict


def verdict_sentence(report: dict[str, Any] | None, problem: str | None) -> str:
    """One sentence in plain words: did this run reproduce the stored one?"""
    if report is None:
        why = problem or "verify/report.json is absent"
        return (f"No verdict: verify did not run ({why}), so this run was not compared with the stored expected "
                "results. Run ./verify.py --results on this folder.")
    counts = {k: int(v or 0) for k, v in (report.get("counts") or {}).items()}
    expected = Path(str(report.get("expected", "?"))).name
    judged = counts.get("PASS", 0) + counts.get("FAIL", 0)
    info = counts.get("INFO", 0)
    skipped = report.get("skipped") or {}
    verdict = verdict_of(report)
    tail = ""
    if info:
        tail += f" {info} check{'s' if info != 1 else ''} only informative (not judged)."
    if counts.get("SKIP", 0):
        tail += (f" {counts['SKIP']} check{'s' if counts['SKIP'] != 1 else ''} skipped (could not fail or not "
                 "possible; not counted as passed).")
    if skipped:
        tail += " Not possible: " + "; ".join(str(k) for k in skipped) + " (see the verify checks)."
    if verdict == "PASS":
        return (f"Yes: this run reproduces the stored expected results (expected/{expected}): all {judged} checks "
                f"that could be made passed.{tail}")
    if verdict == "FAIL":
        return (f"No: {counts.get('FAIL', 0)} of {judged} checks against the stored expected results "
                f"(expected/{expected}) failed; they are listed first under the verify checks.{tail}")
    return f"No verdict: verify found nothing it could judge against expected/{expected}.{tail}"


def section_verdict(page: Page, report: dict[str, Any] | None, problem: str | None,
                     comparison: dict[str, Any] | None, selection: dict[str, Any] | None) -> None:
    verdict = verdict_of(report)
    cls = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "none")
    page.add(f'<section id="verdict" class="verdict {cls}"><div class="big">{esc(verdict)}</div>'
             f'<p class="sentence">{esc(verdict_sentence(report, problem))}</p>')
    failed = [c for c in (report or {}).get("checks", []) if c.get("verdict") == "FAIL"]
    if failed:
        names = ["{} ({})".format(c.get("check", "?"), "/".join(str(c[k]) for k in ("arm", "kind", "metric", "group")
                                                                if c.get(k) is not None) or "-") for c in failed[:4]]
        more = f" and {len(failed) - 4} more" if len(failed) > 4 else ""
        page.add(f'<p class="failed">Failed: <a href="#checks">{esc(", ".join(names))}{more}</a></p>')
    tier = next((p for p in (report or {}).get("possible", []) if str(p).startswith("tier:")), None)
    if tier:
        page.add(f'<p class="tier">{esc(str(tier)[0].upper() + str(tier)[1:])}</p>')
    closest = (report or {}).get("closest") or []
    if closest:
        page.add('<p class="closest">Closest to their tolerances (share used): '
                 + esc("; ".join(f"{c.get('check')} {float(c.get('used', 0)):.2f}" for c in closest)) + "</p>")
    claims = (comparison or {}).get("claims") or {}
    checks = _claim_checks(report)
    if claims:
        items = []
        for cid, c in claims.items():
            check = checks.get(cid)
            exp = f" (stored: {esc(check.get('expected'))})" if check and check.get("expected") is not None else ""
            items.append(f'<li><b>{esc(cid)}</b> <span class="claim {_claim_class(c.get("verdict"))}">'
                         f'{esc(c.get("verdict"))}</span>{exp}</li>')
        page.add('<ul class="claimline">' + "".join(items) + "</ul>")
    if selection:
        parts = []
        for key, label in (("known_t2t", "Known-t2t"), ("known_s2t", "Known-s2t"), ("known_both", "known in both")):
            if isinstance(selection.get(key), list):
                parts.append(f"{label} {len(selection[key])}")
        traced = selection.get("traced")
        if isinstance(traced, list):
            parts.append(f"traced {len(traced)} per arm")
        if parts:
            page.add(f'<p class="facts">Facts: {esc(", ".join(parts))}.</p>')
    links = [page.link(page.results / VERIFY_DIR / REPORT_MD, "verify/report.md"),
             page.link(page.results / COMPARISON_DIR / SUMMARY_FILE, "comparison/summary.md")]
    page.add(f'<p class="srcline">Sources: {" · ".join(links)}</p></section>')


def _claim_class(verdict: Any) -> str:
    return {"supported": "sup", "not supported": "nsup", "inconclusive": "inc"}.get(str(verdict), "inc")


def margin(condition: dict[str, Any]) -> float | None:
    """The condition's one margin, as comparison.json stores it (claims.condition_margin, read by claims.margin_of):
    how far the CI's nearer end lies on the required side of the threshold (negative: the CI reaches across it by
    that much); None when the CI or the requirement is unknown."""
    return margin_of(condition)


def _thresholds(condition: dict[str, Any]) -> list[float]:
    requirement = requirement_of(condition)
    return list(requirement[1]) if requirement else []


def ci_svg(condition: dict[str, Any], width: int = 150, height: int = 18) -> str:
    """A small inline chart: the CI as a bar, the estimate as a dot, the threshold(s) as dashed lines."""
    lo, hi, value = condition.get("ci_low"), condition.get("ci_high"), condition.get("value")
    marks = _thresholds(condition)
    points = [x for x in (lo, hi, value, *marks) if isinstance(x, (int, float)) and math.isfinite(x)]
    if lo is None or hi is None or not points:
        return '<span class="na">no CI</span>'
    a, b = min(points), max(points)
    pad = (b - a) * 0.08 or 1.0
    a, b = a - pad, b + pad
    x = lambda v: 4 + (v - a) / (b - a) * (width - 8)  # noqa: E731
    colour = {"holds": "#1a7f37", "contradicted": "#b42318"}.get(str(condition.get("outcome")), "#9a6700")
    parts = [f'<svg class="ci" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="CI {format_value(lo)} to {format_value(hi)}, required {esc(condition.get("requirement"))}">']
    for t in marks:
        parts.append(f'<line x1="{x(t):.1f}" y1="1" x2="{x(t):.1f}" y2="{height - 1}" stroke="#555" '
                     'stroke-dasharray="2,2"/>')
    parts.append(f'<rect x="{x(lo):.1f}" y="{height / 2 - 3:.1f}" width="{max(1.5, x(hi) - x(lo)):.1f}" height="6" '
                 f'fill="{colour}" opacity="0.55"/>')
    if isinstance(value, (int, float)) and math.isfinite(value):
        parts.append(f'<circle cx="{x(value):.1f}" cy="{height / 2:.1f}" r="3" fill="{colour}"/>')
    parts.append("</svg>")
    return "".join(parts)


def section_claims(page: Page, comparison: dict[str, Any] | None, problem: str | None,
                    report: dict[str, Any] | None) -> None:
    page.add('<section id="claims"><h2>The paper\'s claims</h2>')
    summary = page.results / COMPARISON_DIR / SUMMARY_FILE
    claims = (comparison or {}).get("claims")
    if not claims:
        if summary.is_file():
            page.add(f'<p class="missing">comparison.json has no claims ({esc(problem or "no claims section")}); '
                     "here is comparison/summary.md as written:</p>" + markdown_to_html(summary.read_text()))
        else:
            page.add(f'<p class="missing">No claims: the comparison step did not run ({esc(problem or "no claims")}'
                     "; comparison/summary.md is absent too).</p>")
        page.add("</section>")
        return
    boot = comparison.get("bootstrap") or {}
    rules = comparison.get("claims_rules") or {}
    page.add(f'<p class="note">Each claim is a decision rule on 95% bootstrap CIs over facts (metric '
             f'{esc(comparison.get("metric", "prob"))}, {esc(boot.get("n_resamples", "?"))} resamples): '
             f'{esc(rules.get("combination", ""))}. <i>Margin</i>: how far the CI\'s nearer end lies on the required '
             "side of the threshold (negative: the CI reaches across it by that much). In the charts the bar is the "
             "CI, the dot the estimate, dashed lines the threshold.</p>")
    checks = _claim_checks(report)
    sets = comparison.get("sets") or {}
    rows = []
    for cid, c in claims.items():
        check = checks.get(cid)
        stored = esc(check.get("expected")) if check else "n/a"
        vcheck = esc(check.get("verdict")) if check else "not checked"
        rows.append(f'<tr><td><a href="#claim-{esc(cid)}">{esc(cid)}</a></td><td>{esc(c.get("claim", ""))}</td>'
                    f'<td><code>{esc(c.get("set", ""))}</code></td>'
                    f'<td><span class="claim {_claim_class(c.get("verdict"))}">{esc(c.get("verdict"))}</span></td>'
                    f'<td>{stored}</td><td class="v-{vcheck.lower()}">{vcheck}</td></tr>')
    page.add('<table class="claims"><thead><tr><th>claim</th><th>statement (paper)</th><th>fact set</th>'
             "<th>this run</th><th>stored</th><th>verify</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>")
    for cid, c in claims.items():
        set_info = sets.get(c.get("set"), {}) if isinstance(sets, dict) else {}
        n = _set_size(set_info)
        page.add(f'<div class="claimbox" id="claim-{esc(cid)}"><h3>{esc(cid)}: {esc(c.get("claim", ""))} '
                 f'<span class="claim {_claim_class(c.get("verdict"))}">{esc(c.get("verdict"))}</span></h3>'
                 f'<p class="note">Set <code>{esc(c.get("set", ""))}</code>'
                 f'{": " + esc(set_info.get("description")) if set_info.get("description") else ""}{n}. '
                 f'Rule: {esc(c.get("rule", ""))}.</p>')
        if c.get("note"):
            page.add(f'<p class="missing">Not evaluable: {esc(c["note"])}.</p>')
        conds = c.get("conditions") or []
        if conds:
            trs = []
            for cond in conds:
                m = margin(cond)
                outcome = str(cond.get("outcome", ""))
                trs.append(f'<tr><td>{esc(cond.get("statistic", ""))}</td><td>{esc(cond.get("kind", ""))}</td>'
                           f'<td class="num">{format_value(cond.get("value"))}</td>'
                           f'<td class="num">[{format_value(cond.get("ci_low"))}, {format_value(cond.get("ci_high"))}]</td>'
                           f'<td>{ci_svg(cond)}</td><td>{esc(cond.get("requirement", ""))}</td>'
                           f'<td class="num margin">{format_value(m)}</td>'
                           f'<td class="o-{esc(outcome)}">{esc(outcome)}</td></tr>')
            page.add('<table class="conds"><thead><tr><th>statistic</th><th>kind</th><th>estimate</th>'
                     "<th>95% CI</th><th></th><th>required</th><th>margin</th><th>outcome</th></tr></thead><tbody>"
                     + "".join(trs) + "</tbody></table>")
        page.add("</div>")
    by_set = comparison.get("claims_by_set") or {}
    if by_set:
        names = list(claims)
        head = "".join(f"<th>{esc(n)}</th>" for n in names)
        body = "".join(
            f'<tr><td><code>{esc(s)}</code>{_set_size(sets.get(s, {}) if isinstance(sets, dict) else {})}</td>'
            + "".join(f'<td><span class="claim {_claim_class(v.get(n))}">{esc(v.get(n, "n/a"))}</span></td>'
                      for n in names) + "</tr>"
            for s, v in by_set.items())
        page.add('<h3>Verdicts on every fact set</h3><table class="byset"><thead><tr><th>set</th>' + head
                 + "</tr></thead><tbody>" + body + "</tbody></table>")
    page.add(f'<p class="srcline">Sources: {page.link(page.results / COMPARISON_DIR / COMPARISON_FILE)} · '
             f'{page.link(summary)} · {page.link(page.results / COMPARISON_DIR / COMPARISON_MD)}</p></section>')


def _set_size(set_info: dict[str, Any]) -> str:
    n = set_info.get("n_facts") if isinstance(set_info, dict) else None
    if not isinstance(n, dict) or not n:
        return ""
    sizes = {(v.get("t2t"), v.get("s2t")) for v in n.values() if isinstance(v, dict)}
    if len(sizes) == 1:
        t, s = sizes.pop()
        return f" (n = {t} T->T, {s} S->T facts)"
    return ""


def _figure_caption(stem: str) -> str:
    """Plain words for the pipeline's figure names."""
    words = stem.split("_")
    if words[0] in ("curves", "heatmaps", "normalised") and len(words) >= 3:
        kind = KIND_NAMES.get(words[-1], words[-1])
        fset = "_".join(words[1:-1])
        what = {"curves": "AIE by layer, T->T and S->T with 95% CIs, and their difference",
                "heatmaps": "AIE by token group and layer, T->T beside S->T",
                "normalised": "length-normalised AIE, T->T beside S->T"}[words[0]]
        return f"{kind}: {what} (set '{fset}')"
    if stem.startswith("aie_heatmap_") and len(words) >= 4:
        return f"{KIND_NAMES.get(words[2], words[2])}: AIE by token group and layer ({words[3]})"
    if stem.startswith("aie_layers_"):
        return f"AIE by layer at the last subject token and the last token, every kind ({words[-1]})"
    if words[0] in ("patching", "knockout", "lens") and len(words) >= 2:
        what = {"patching": "cross-modal patching: each modality's clean state written into the other's corrupted "
                            "run, beside each modality's own restore",
                "knockout": "attention knockout: change of P(answer) when the last token cannot attend to the "
                            "subject, text and speech",
                "lens": "logit lens: P(answer) read out per layer at the last subject token and the last token, "
                        "text and speech"}[words[0]]
        return f"{what} (set '{'_'.join(words[1:])}')"
    if stem.startswith("severed"):
        return "severed path (ROME Fig. 3): " + " ".join(words[1:])
    return stem.replace("_", " ")


def _kind_rank(stem: str) -> tuple[int, str]:
    for i, kind in enumerate(KINDS):
        if f"_{kind}" in stem:
            return i, stem
    return len(KINDS), stem


def section_figures(page: Page, folder: ResultsFolder) -> None:
    results = page.results
    page.add('<section id="figures"><h2>Figures</h2>')
    any_figure = False
    # 1. The comparison: each figure holds both arms; the paired set first.
    cmp_dir = results / COMPARISON_DIR / FIGURES_DIR
    cmp_pngs = sorted(cmp_dir.glob("*.png")) if cmp_dir.is_dir() else []
    if cmp_pngs:
        any_figure = True
        by_set: dict[str, list[Path]] = {}
        for png in cmp_pngs:
            words = png.stem.split("_")
            by_set.setdefault("_".join(words[1:-1]) if len(words) >= 3 else "other", []).append(png)
        order = [s for s in SET_ORDER if s in by_set] + sorted(s for s in by_set if s not in SET_ORDER)
        page.add('<h3 id="fig-comparison">T->T and S->T compared</h3><p class="note">Each figure shows both arms. '
                 "Fact sets: " + ", ".join(f'<a href="#fig-set-{esc(s)}"><code>{esc(s)}</code></a>' for s in order)
                 + ".</p>")
        for fset in order:
            page.add(f'<h4 id="fig-set-{esc(fset)}">Set <code>{esc(fset)}</code></h4>')
            pngs = sorted(by_set[fset], key=lambda p: (_kind_rank(p.stem)[0], not p.stem.startswith("heatmaps"),
                                                         p.stem))
            for png in pngs:
                page.add(page.image(png, _figure_caption(png.stem)))
    # 2. Each arm's own figures, T->T beside S->T.
    runs, unfound = {}, []
    for arm in ARM_LABELS:  # the run folders the pipeline compared, by the rule verify uses
        try:
            runs[arm] = folder.run_dir(arm)
        except MissingRunFolderError:
            continue
        except ResultsFolderError as error:
            unfound.append(f"{ARM_LABELS[arm]}: {error}")
    for problem in unfound:
        page.add(f'<p class="missing">No figures of this arm: {esc(problem)}</p>')
    per_arm = {arm: {p.stem: p for p in sorted((d / "figures").glob("*.png"))} for arm, d in runs.items()
               if (d / "figures").is_dir()}
    stems = sorted({s for figs in per_arm.values() for s in figs},
                   key=lambda s: ("logprob" in s, not s.startswith("aie_heatmap"), _kind_rank(s)))
    if stems:
        any_figure = True
        page.add('<h3 id="fig-arms">Each arm, T->T beside S->T</h3><p class="note">From each run\'s own figures '
                 "(" + ", ".join(f"{ARM_LABELS[a]}: <code>runs/{esc(d.name)}</code>" for a, d in runs.items())
                 + ").</p>")
        for stem in stems:
            cells = []
            for arm in ARM_LABELS:
                png = per_arm.get(arm, {}).get(stem)
                cells.append(page.image(png, f"{ARM_LABELS[arm]}: {_figure_caption(stem)}") if png else
                             f'<p class="missing">{ARM_LABELS[arm]}: no {esc(stem)}.png</p>')
            page.add('<div class="pair">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>")
    # 3. Carry-over analyses, when a later step writes them.
    carry = folder.carryover_dir
    if carry.is_dir():
        page.add('<h3 id="fig-carryover">Carry-over analyses</h3>')
        docs = sorted(carry.rglob("*.md"))
        for doc in docs:
            page.add(f'<div class="md"><p class="src">{esc(relative_path(doc, results))}</p>{markdown_to_html(doc.read_text())}'
                     "</div>")
        pngs = sorted(carry.rglob("*.png"))
        for png in pngs:
            page.add(page.image(png, _figure_caption(png.stem)))
        if pngs:
            any_figure = True
        if not docs and not pngs:
            page.add('<p class="missing">carryover/ holds no figure or summary yet.</p>')
    # 4. Beyond the paper (issue 30): implicit transcription and corruption choice, when their steps ran.
    for name, title in ((TRANSCRIPTION_DIR, "Implicit transcription"), (CORRUPTION_DIR, "Corruption choice")):
        any_figure |= _step_figures(page, results / name, f"fig-{name}", f"Beyond the paper: {title.lower()}")
    if not any_figure:
        page.add('<p class="missing">No figures: neither comparison/figures/ nor runs/*/figures/ holds a PNG (the '
                 "figure steps did not run).</p>")
    page.add("</section>")


def _step_figures(page: Page, step: Path, anchor: str, title: str) -> bool:
    """A later step's summary (summary.md) and figures under a heading; True when it drew a figure."""
    if not step.is_dir():
        return False
    page.add(f'<h3 id="{esc(anchor)}">{esc(title)}</h3>')
    summary = step / SUMMARY_FILE
    if summary.is_file():
        page.add(f'<div class="md"><p class="src">{esc(relative_path(summary, page.results))}</p>'
                 f"{markdown_to_html(summary.read_text())}</div>")
    pngs = sorted(step.rglob("*.png"))
    for png in pngs:
        page.add(page.image(png, _figure_caption(png.stem)))
    if not pngs and not summary.is_file():
        page.add(f'<p class="missing">{esc(step.name)}/ holds no figure or summary yet.</p>')
    return bool(pngs)


def section_checks(page: Page, report: dict[str, Any] | None, problem: str | None) -> None:
    page.add('<section id="checks"><h2>Verify checks</h2>')
    if report is None:
        page.add(f'<p class="missing">No verify report: verify did not run ({esc(problem or "")}).</p></section>')
        return
    counts = report.get("counts") or {}
    page.add(f'<p>Compared with <code>{esc(report.get("expected", "?"))}</code>: '
             + ", ".join(f'<span class="v-{esc(str(k).lower())}">{esc(v)} {esc(k)}</span>'
                         for k, v in counts.items() if v) + ".</p>")
    possible = report.get("possible") or []
    skipped = report.get("skipped") or {}
    page.add("<p><b>Possible:</b> " + (esc("; ".join(map(str, possible))) or "none") + "</p>")
    if skipped:
        page.add("<p><b>Not possible:</b></p><ul>" + "".join(f"<li>{esc(k)}: {esc(v)}</li>"
                                                               for k, v in skipped.items()) + "</ul>")
    checks = list(report.get("checks") or [])
    checks.sort(key=lambda c: VERDICT_ORDER.get(str(c.get("verdict")), 1))  # stable: FAIL, INFO, SKIP, PASS
    rows = []
    for c in checks:
        verdict = str(c.get("verdict", ""))
        where = " / ".join(esc(c.get(k)) for k in ("arm", "kind", "metric", "group") if c.get(k) is not None)
        rows.append(f'<tr class="r-{esc(verdict.lower())}"><td class="v-{esc(verdict.lower())}">{esc(verdict)}</td>'
                    f'<td>{esc(c.get("check", ""))}</td><td>{where}</td><td class="num">{esc(format_value(c.get("observed")))}'
                    f'</td><td class="num">{esc(format_value(c.get("expected")))}</td>'
                    f'<td class="num">{esc(format_value(c.get("tolerance")))}</td><td class="detail">'
                    f'{esc(c.get("detail", ""))}</td></tr>')
    page.add('<table class="checks"><thead><tr><th>verdict</th><th>check</th><th>where</th><th>observed</th>'
             "<th>expected</th><th>tolerance</th><th>detail</th></tr></thead><tbody>" + "".join(rows)
             + "</tbody></table>")
    page.add(f'<p class="srcline">Sources: {page.link(page.results / VERIFY_DIR / REPORT_JSON)} · '
             f'{page.link(page.results / VERIFY_DIR / REPORT_MD)}; what each check means and how its tolerance was '
             "calibrated: expected/README.md in the artifact.</p></section>")


def _kv_table(rows: Iterable[tuple[str, Any]], cls: str = "kv") -> str:
    body = "".join(f"<tr><th>{esc(k)}</th><td>{_value_html(v)}</td></tr>" for k, v in rows)
    return f'<table class="{cls}"><tbody>{body}</tbody></table>' if body else '<p class="missing">none recorded</p>'


def _value_html(value: Any) -> str:
    if isinstance(value, list) and len(value) > 12 and all(not isinstance(v, (dict, list)) for v in value):
        head = ", ".join(map(str, value[:12]))
        return f"<code>{len(value)} items: {esc(head)}, ...</code>"
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{40,64}", value):
        return f'<code class="hash">{esc(value)}</code>'
    if isinstance(value, (dict, list)):
        return f"<code>{esc(json.dumps(value))}</code>"
    return esc(format_value(value, 6))


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts as dotted keys (lists of scalars stay whole)."""
    if isinstance(value, dict):
        out: list[tuple[str, Any]] = []
        for k, v in value.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    return [(prefix, value)]


def section_manifest(page: Page, manifest: dict[str, Any] | None, problem: str | None,
                      steps: dict[str, Any] | None) -> None:
    page.add('<section id="manifest"><h2>Run manifest</h2>')
    if manifest is None:
        page.add(f'<p class="missing">No manifest: the manifest step did not run ({esc(problem or "")}).</p>')
    else:
        code = manifest.get("code") or {}
        dirty = code.get("dirty")
        page.add("<h3>Code</h3>" + _kv_table([
            ("commit", code.get("commit")),
            ("working tree", "dirty" if dirty else "clean" if dirty is False else "unknown"),
            ("changed files", code.get("dirty_paths") or "none"),
            ("read from", code.get("source")),
            ("command", " ".join(map(str, manifest.get("command") or []))),
            ("created", manifest.get("created_at")), ("updated", manifest.get("updated_at")),
        ]))
        page.add("<h3>Environment</h3>" + _kv_table(
            list((manifest.get("environment") or {}).items()) + [(f"package {k}", v) for k, v in
                                                                 (manifest.get("packages") or {}).items()]
            + [(f"lock {k}", v) for k, v in (manifest.get("locks") or {}).items()]
            + [(f"run {k}", v) for k, v in (manifest.get("run") or {}).items()]))
        page.add("<h3>Fingerprints</h3>" + _kv_table(
            [("facts", manifest.get("facts_fingerprint"))]
            + _flatten(manifest.get("model") or {}, "model") + _flatten(manifest.get("unit_tokenizer") or {},
                                                                      "unit tokenizer")))
        page.add("<h3>Settings</h3>" + _kv_table(_flatten(manifest.get("settings") or {})))
    times = (manifest or {}).get("steps") or {k: v.get("seconds") for k, v in (steps or {}).items()
                                             if isinstance(v, dict)}
    untimed = (manifest or {}).get("untimed_attempts") or {k: v.get("untimed_attempts") for k, v in
                                                           (steps or {}).items() if isinstance(v, dict)}
    untimed = {k: v for k, v in untimed.items() if isinstance(v, int) and v > 0} if isinstance(untimed, dict) else {}
    if times:
        total = sum(float(v) for v in times.values() if isinstance(v, (int, float)))
        rows = [(k, (f"{float(v):.1f} s" if isinstance(v, (int, float)) else v)
                 + (f" + {untimed[k]} untimed attempt{'s' if untimed[k] > 1 else ''}" if k in untimed else ""))
                for k, v in times.items()]
        count = sum(untimed.values())
        lower = f"; a lower bound: {count} stopped attempt{'s' if count > 1 else ''} not timed" if count else ""
        page.add("<h3>Step times</h3>" + _kv_table(
            rows + [(f"total (sum of steps{lower})", f"{total:.0f} s ({total / 60:.1f} min)")], "kv steps"))
    page.add(f'<p class="srcline">Sources: {page.link(page.results / MANIFEST_FILE)} · '
             f'{page.link(page.results / STEPS_FILE)} · {page.link(page.results / PIPELINE_FILE)}</p></section>')
