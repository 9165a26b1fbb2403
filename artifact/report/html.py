"""`report.html`: one self-contained page per results folder, to read a run in the order a reviewer asks.

Order: the verdict (did this run reproduce the stored one?), the paper's claims with the statistics behind each
verdict and their margins, the figures (T->T beside S->T; the carry-over analyses when present), the verify checks
(failed first), the run manifest. Everything is read from the files the pipeline writes (`verify/report.json`,
`comparison/comparison.json` and `summary.md`, `comparison/figures/*.png`, `runs/*/figures/*.png`, `carryover/`,
`selection.json`, `steps.json`, `manifest.json`); whatever is missing is said in plain words, never a crash.

Self-contained: no network, no script; images are embedded as data URIs, small CI charts are inline SVG; the only
links are anchors within the page and relative links to files of the results folder that exist when it is written
(the PDF versions of the figures, the markdown reports). Print CSS makes it print to PDF cleanly (A4).

Torch-free and numpy-free (stdlib only), so it runs wherever the results folder is.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Callable

from artifact.core.fileio import write_atomic
from artifact.core.layout import (
    PIPELINE_FILE,
    REPORT_HTML,
    SELECTION_FILE,
    STEPS_FILE,
)
from artifact.core.results import ResultsFolder
from artifact.report.page import CSS, Page, esc, read_json_or_problem
from artifact.report.sections import (
    section_checks,
    section_claims,
    section_figures,
    section_manifest,
    section_verdict,
)


def build_report_html(results: Path) -> str:
    """The page for `results` as one HTML string (reads only; never raises on missing or malformed parts)."""
    results = Path(results)
    page = Page(results)
    folder = ResultsFolder(results)
    report, report_problem = read_json_or_problem(folder.verify_report)
    comparison, comparison_problem = read_json_or_problem(folder.comparison_file)
    manifest, manifest_problem = read_json_or_problem(folder.manifest_file)
    selection, _ = read_json_or_problem(results / SELECTION_FILE)
    steps, _ = read_json_or_problem(results / STEPS_FILE)
    pipeline, _ = read_json_or_problem(results / PIPELINE_FILE)
    # A file that holds something other than a JSON object counts as unreadable.
    if report is not None and not isinstance(report, dict):
        report, report_problem = None, "verify/report.json holds no JSON object"
    if comparison is not None and not isinstance(comparison, dict):
        comparison, comparison_problem = None, "comparison.json holds no JSON object"
    if manifest is not None and not isinstance(manifest, dict):
        manifest, manifest_problem = None, "manifest.json holds no JSON object"
    selection = selection if isinstance(selection, dict) else None
    steps = steps if isinstance(steps, dict) else None
    pipeline = pipeline if isinstance(pipeline, dict) else None

    model = (manifest or {}).get("model_name") or (pipeline or {}).get("model") or "?"
    profile = (manifest or {}).get("profile") or ((pipeline or {}).get("profile") or {}).get("name") or "?"
    if isinstance(profile, dict):
        profile = profile.get("name", "?")
    commit = ((manifest or {}).get("code") or {}).get("commit")
    made = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections: list[tuple[str, Callable[[], None]]] = [
        ("verdict", lambda: section_verdict(page, report, report_problem, comparison, selection)),
        ("claims", lambda: section_claims(page, comparison, comparison_problem, report)),
        ("figures", lambda: section_figures(page, folder)),
        ("checks", lambda: section_checks(page, report, report_problem)),
        ("manifest", lambda: section_manifest(page, manifest, manifest_problem, steps)),
    ]
    for name, build in sections:
        mark = len(page.parts)
        try:
            build()
        except Exception as error:  # a malformed file must not cost the reader the rest of the page
            del page.parts[mark:]
            page.add(f'<section id="{name}"><h2>{esc(name)}</h2><p class="missing">This part could not be built '
                     f"from the results folder ({esc(type(error).__name__)}: {esc(error)}).</p></section>")
    title = f"{model} / {profile}: did the run reproduce? (T->T vs S->T causal tracing)"
    head = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
            f"<header><h1>Factual recall from text and speech: run <code>{esc(results.name)}</code></h1>"
            f"<p>model {esc(model)} · profile {esc(profile)} · code {esc(commit or 'unknown')} · report written "
            f"{esc(made)}</p></header>"
            '<nav><a href="#verdict">Verdict</a><a href="#claims">Claims</a><a href="#figures">Figures</a>'
            '<a href="#checks">Verify checks</a><a href="#manifest">Manifest</a></nav>')
    foot = (f"<footer>Written by <code>python -m artifact report --results {esc(results.name)}</code> from the files "
            f"of the results folder; {page.images} figures embedded. Self-contained: no network, no script."
            "</footer></main></body></html>\n")
    return head + "\n".join(page.parts) + foot


def write_report_html(results: Path) -> Path:
    """Write `<results>/report.html` atomically (`write_atomic`: a full disk is one DiskFullError naming the folder,
    and no half-written page or temporary file is left) and return its path."""
    results = Path(results)
    if not results.is_dir():
        raise FileNotFoundError(f"{results} is not a results folder (run ./run_all.sh first, or pass --results DIR)")
    text = build_report_html(results)
    target = results / REPORT_HTML
    write_atomic(target, lambda handle: handle.write(text.encode("utf-8")))
    return target
