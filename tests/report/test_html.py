"""report.html: built from a results folder written by the project's own writers (runner-format traces, aggregate,
figures, comparison, verify report, manifest) on synthetic effects, then read back in a real headless Chromium
(Debian's chromium + chromedriver; skipped with the reason when they are absent)."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artifact import verification as v
from artifact.cli import main
from artifact.core.fileio import write_npz_atomic
from artifact.core.layout import result_path
from artifact.core.settings import RunSettings
from artifact.core.trace_settings import TraceSettings
from artifact.experiments.runner import open_run_dir
from artifact.report import html as rh
from artifact.report.page import format_value
from artifact.report.sections import margin, verdict_of

REPO = Path(__file__).resolve().parents[2]
LAYERS = 8
B = 200  # bootstrap resamples: enough for a page, fast


def fake_run(root: Path, arm: str, ids, seed: int, strength: float) -> Path:
    """A run folder with one npz per fact and kind in the runner's format (a peak at the last subject token)."""
    rng = np.random.default_rng(seed)
    settings = RunSettings(arm=arm, model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint="f" * 64,
                           noise_spec="0.1", noise=0.1, trace=TraceSettings(samples=2, window=2),
                           positions="all")
    run_dir = open_run_dir(root, settings)
    for known_id in ids:
        n_tok = int(rng.integers(7, 11)) if arm == "t2t" else int(rng.integers(14, 18))
        e = 1 + int(rng.integers(1, 4))
        for kind in ("mlp", "attn"):
            scores = 0.05 + rng.normal(0, 0.01, (n_tok, LAYERS))
            scores[e - 1, 2:5] += strength
            write_npz_atomic(result_path(run_dir, kind, known_id), {
                "known_id": np.asarray(known_id), "scores": scores, "logprobs": np.log(np.clip(scores, 1e-6, 1)),
                "low_score": np.float64(0.05), "high_score": np.float64(0.6), "low_logprob": np.float64(np.log(0.05)),
                "high_logprob": np.float64(np.log(0.6)), "subject_range": np.asarray([1, e], dtype=np.int64),
                "last_position": np.int64(n_tok - 1), "positions": np.arange(n_tok)})
    return run_dir


def make_results(root: Path) -> Path:
    """results/<model>-<profile> as the pipeline leaves it, at toy scale, with a verify report holding a FAIL and an
    INFO check among PASSes."""
    from artifact.analysis.aggregate import aggregate_run
    from artifact.analysis.compare import compare_runs
    from artifact.figures.comparison import plot_comparison
    from artifact.figures.run import plot_run
    from artifact.manifest import collect_manifest, write_manifest

    runs = root / "runs"
    t2t = fake_run(runs, "t2t", range(10, 20), 0, 0.3)
    s2t = fake_run(runs, "s2t", range(12, 22), 1, 0.08)
    for run in (t2t, s2t):
        aggregate_run(run, kinds=("mlp", "attn"), n_resamples=B)
        plot_run(run, metrics=("prob",))
    document = compare_runs(t2t, s2t, root / "comparison", kinds=("mlp", "attn"), n_resamples=B)
    plot_comparison(document, root / "comparison", ("both",))
    both = [str(i) for i in range(12, 20)]
    (root / "selection.json").write_text(json.dumps({
        "t2t_run": t2t.name, "s2t_run": s2t.name, "known_t2t": [str(i) for i in range(10, 20)],
        "known_s2t": [str(i) for i in range(12, 22)], "known_both": both, "traced": both}))
    checks = [v.Check("known_set", v.PASS, arm="t2t", observed=0, expected=0, tolerance=1, detail="same"),
              v.Check("curve_band", v.FAIL, arm="s2t", kind="mlp", metric="prob", group="last_subject",
                      observed=0.31, expected=0.0, tolerance=0.12, detail="curve outside its equivalence band"),
              v.Check("claim", v.INFO, group="C2", observed="supported", expected="not supported",
                      tolerance="unstable", detail="S->T: the AIE is lower and more diffuse than in T->T."),
              v.Check("curve_correlation", v.PASS, arm="t2t", kind="mlp", metric="prob", group="last",
                      observed=0.999, expected=1.0, tolerance=0.99, detail="Pearson r")]
    report = v.Report(str(root), str(root.parent / "expected" / "tiny-smoke"), checks,
                      ["tier: other-seed (another noise seed)", "curves (t2t, s2t)", "claims (3 from claims.json)"],
                      {"curves t2t severed": "not traced"})
    v.write_report(v.conclude(report), root / "verify")
    steps = {"known": 1.5, "t2t": 12.0, "s2t": 30.0, "aggregate": 0.5, "compare": 3.0, "carryover": 4.0,
             "transcription": 1.0, "corruption": 5.0, "figures": 2.0}
    (root / "steps.json").write_text(json.dumps({k: {"done": True, "seconds": s} for k, s in steps.items()}))
    write_manifest(root, {**collect_manifest(settings={"profile": {"name": "smoke"}}, steps=steps,
                                             facts_fingerprint="f" * 64),
                          "profile": "smoke", "model_name": "tiny"})
    return root


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    return make_results(tmp_path_factory.mktemp("report") / "tiny-smoke")


def test_the_page_reads_in_order_and_embeds_everything(results):
    path = rh.write_report_html(results)
    page = path.read_text()
    # Reading order: verdict, claims, figures, checks, manifest.
    starts = [page.index(f'<section id="{s}"') for s in ("verdict", "claims", "figures", "checks", "manifest")]
    assert starts == sorted(starts)
    verdict = page[starts[0]:starts[1]]
    assert '<div class="big">FAIL</div>' in verdict and "No: 1 of 3 checks" in verdict
    assert "1 check only informative" in verdict and "curves t2t severed" in verdict
    assert "Failed: " in verdict and "curve_band (s2t/mlp/prob/last_subject)" in verdict
    # the tier and the passed checks closest to their tolerances, on the first screen
    assert "Tier: other-seed (another noise seed)" in verdict
    assert "Closest to their tolerances (share used): curve_correlation t2t/mlp/prob/last 0.10; known_set t2t 0.00" \
        in verdict
    # Claims: each verdict with its conditions, CI chart and margin.
    claims = json.loads((results / "comparison" / "comparison.json").read_text())["claims"]
    for cid, c in claims.items():
        assert f'id="claim-{cid}"' in page and c["verdict"] in page
    assert page.count('<svg class="ci"') == sum(len(c["conditions"]) for c in claims.values())
    # Figures: every PNG of the comparison and of both runs, embedded; T->T beside S->T.
    pngs = list((results / "comparison" / "figures").glob("*.png")) + list(results.glob("runs/*/figures/*.png"))
    assert len(pngs) > 6 and page.count('<img src="data:image/png;base64,') == len(pngs)
    assert page.count('<div class="pair">') == len(list(results.glob("runs/t2t-*/figures/*.png")))
    # Checks: failed first, then INFO, then PASS.
    table = page[page.index('<table class="checks">'):]
    order = [table.index(f'class="r-{x}"') for x in ("fail", "info", "pass")]
    assert order == sorted(order)
    # Manifest: code, environment, step times.
    assert "Step times" in page and "total (sum of steps)" in page and "59 s" in page
    # Self-contained: no script, no network link; every relative link names an existing file.
    assert "<script" not in page and not re.search(r'(src|href)="(https?:)?//', page)
    for href in re.findall(r'href="([^"#][^"]*)"', page):
        assert (results / href).is_file(), href
    for anchor in re.findall(r'href="#([^"]+)"', page):
        assert f'id="{anchor}"' in page, anchor


def test_one_margin_per_condition_in_every_output(tmp_path, capsys):
    """issue 28 part 5: comparison.json, summary.md, report.html and the sizing (`cost --size-from`) show the same
    margin for every condition of a run. The run's S->T effect is the stronger, so C2's "lower" condition is
    contradicted: there the summary used to print how far the CI's far end lay beyond the threshold, the page how far
    its near end lay on the passing side (two numbers for one condition)."""
    from artifact.analysis.aggregate import aggregate_run
    from artifact.analysis.claims import condition_margin
    from artifact.analysis.compare import compare_runs

    root = tmp_path / "tiny-smoke"
    t2t = fake_run(root / "runs", "t2t", range(10, 20), 0, 0.1)
    s2t = fake_run(root / "runs", "s2t", range(10, 20), 1, 0.4)
    for run in (t2t, s2t):
        aggregate_run(run, kinds=("mlp", "attn"), n_resamples=B)
    compare_runs(t2t, s2t, root / "comparison", kinds=("mlp", "attn"), n_resamples=B)
    (root / "selection.json").write_text(json.dumps({"t2t_run": t2t.name, "s2t_run": s2t.name,
                                                     "traced": [str(i) for i in range(10, 20)]}))
    claims = json.loads((root / "comparison" / "comparison.json").read_text())["claims"]
    conditions = [c for claim in claims.values() for c in claim["conditions"]]
    stored = [c["margin"] for c in conditions]
    assert all(c["operator"] in (">", "<", "within") and c["thresholds"] for c in conditions)
    assert stored == [condition_margin(c["operator"], c["thresholds"], c["ci_low"], c["ci_high"])
                      for c in conditions]
    contradicted = [c for c in conditions if c["outcome"] == "contradicted"]
    assert contradicted and all(c["margin"] < 0 for c in contradicted)
    expected = [format_value(m) for m in stored]
    summary = (root / "comparison" / "summary.md").read_text()
    assert re.findall(r"\(margin ([^)]+)\)\.", summary) == expected
    page = rh.build_report_html(root)
    assert re.findall(r'<td class="num margin">([^<]+)</td>', page) == expected
    assert main(["cost", "--size-from", str(root)]) == 0
    sized = re.findall(r" margin (\S+)  -> ", capsys.readouterr().out)
    assert sized == [format_value(m) for c, m in zip(conditions, stored) if c["operator"] != "within"]


def test_missing_parts_are_said_plainly(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    page = rh.write_report_html(empty).read_text()
    assert '<div class="big">NO VERDICT</div>' in page
    assert "No verdict: verify did not run" in page and "No verify report: verify did not run" in page
    assert "No claims: the comparison step did not run" in page
    assert "No figures" in page and "No manifest: the manifest step did not run" in page
    # Malformed files: said, the rest of the page still built.
    (empty / "verify").mkdir()
    (empty / "verify" / "report.json").write_text("{not json")
    (empty / "manifest.json").write_text("[1, 2]")
    page = rh.build_report_html(empty)
    assert "report.json could not be read (JSONDecodeError" in page
    assert "manifest.json holds no JSON object" in page
    with pytest.raises(FileNotFoundError, match="not a results folder"):
        rh.write_report_html(tmp_path / "nope")


def test_step_times_say_which_attempts_were_not_timed(tmp_path):
    from artifact.manifest import collect_manifest, write_manifest

    folder = tmp_path / "resumed"
    folder.mkdir()
    write_manifest(folder, {**collect_manifest(steps={"known": 146.0, "t2t": 354.0}), "untimed_attempts": {"t2t": 1}})
    page = rh.build_report_html(folder)
    assert "354.0 s + 1 untimed attempt" in page and "146.0 s<" in page
    assert "total (sum of steps; a lower bound: 1 stopped attempt not timed)</th><td>500 s" in page
    # a hand-edited manifest with a malformed entry: the times are still shown, without the note
    write_manifest(folder, {**collect_manifest(steps={"t2t": 354.0}), "untimed_attempts": "t2t"}, keep_steps=False)
    page = rh.build_report_html(folder)
    assert "354.0 s<" in page and "total (sum of steps)</th>" in page


def test_margins_and_verdicts():
    cond = {"ci_low": 0.2, "ci_high": 0.5, "requirement": "> 0"}
    assert margin(cond) == pytest.approx(0.2)
    assert margin({**cond, "requirement": "< 1"}) == pytest.approx(0.5)
    assert margin({**cond, "requirement": "within 0.1-0.7"}) == pytest.approx(0.1)
    assert margin({"ci_low": -0.1, "ci_high": 0.3, "requirement": "> 0"}) == pytest.approx(-0.1)
    assert margin({"ci_low": None, "ci_high": 0.3, "requirement": "> 0"}) is None
    # a condition that stores its operator: its stored margin is THE margin (never recomputed from a string)
    assert margin({"ci_low": -0.3, "ci_high": -0.1, "operator": ">", "thresholds": [0.0], "margin": -0.3}) == -0.3
    assert verdict_of(None) == "NO VERDICT"
    assert verdict_of({"verdict": "PASS", "counts": {"PASS": 3}}) == "PASS"
    assert verdict_of({"verdict": "FAIL", "counts": {"PASS": 0, "FAIL": 0, "INFO": 2}}) == "NO VERDICT"


def test_report_command_writes_the_page(results, capsys):
    assert main(["report", "--results", str(results)]) == 0
    assert f"report: {results / 'report.html'}" in capsys.readouterr().out


def test_run_all_ends_with_the_path_of_report_html(results, tmp_path):
    """./run_all.sh on a results folder whose steps are all done: manifest, verify, then report.html, whose path is
    the last line printed."""
    folder = tmp_path / "embedded-smoke"
    shutil.copytree(results, folder)
    (folder / "report.html").unlink(missing_ok=True)
    env = {**os.environ, "ARTIFACT_SKIP_BOOTSTRAP": "1", "ARTIFACT_PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    env.pop("SPIRITLM_CHECKPOINTS_DIR", None)
    done = subprocess.run([str(REPO / "run_all.sh"), "--model", "embedded", "--out", str(folder), "--no-progress"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode in (0, 1), done.stdout[-3000:] + done.stderr[-3000:]  # a verdict, never an error
    assert "figures: done in an earlier run, skipped" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == f"report.html: {folder / 'report.html'}"
    page = (folder / "report.html").read_text()
    verdict = "PASS" if done.returncode == 0 else "FAIL"
    assert f'<div class="big">{verdict}</div>' in page


# ------------------------------------------------------------------------------------------- in a real browser


def browser_or_skip() -> None:
    from artifact.report.browser import BrowserUnavailable, find_browser

    try:
        find_browser()
    except BrowserUnavailable as why:
        pytest.skip(str(why))


def _real_results() -> list[Path]:
    """The smoke run of this checkout, when ./run_all.sh has produced it (never in CI)."""
    folder = REPO / "results" / "embedded-smoke"
    return [folder] if (folder / "verify" / "report.json").is_file() else []


@pytest.mark.parametrize("which", ["synthetic", *(["run_all"] if _real_results() else [])])
def test_in_headless_chromium(results, which):
    """What a reader sees at 1366x768: the verdict in the first viewport, every image decoded, every link to a
    target that exists, no sideways scrolling, no script, an A4 print; the first viewport saved as report.png."""
    browser_or_skip()
    from artifact.report.browser import check_report

    folder = results if which == "synthetic" else _real_results()[0]
    html = rh.write_report_html(folder)
    shot = folder / "report.png"
    check = check_report(html, screenshot=shot)
    assert check.problems == []
    assert check.verdict == ("FAIL" if which == "synthetic" else "PASS") and check.verdict_in_first_viewport
    assert check.viewport[0] == 1366 and check.sections == ["verdict", "claims", "figures", "checks", "manifest"]
    assert check.images == html.read_text().count("<img ") > 6 and check.links > 10
    assert check.pdf_pages and check.pdf_pages >= 3
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">I", png[16:20])[0] == 1366


def test_the_browser_check_sees_broken_images_links_and_a_hidden_verdict(results, tmp_path):
    browser_or_skip()
    from artifact.report.browser import check_report

    folder = tmp_path / "copy"
    shutil.copytree(results, folder)
    page = rh.write_report_html(folder).read_text()
    page = page.replace("data:image/png;base64,iVBOR", "data:image/png;base64,AAAA", 1)  # one undecodable image
    page = page.replace('<a href="#claims">', '<a href="#nowhere">', 1)
    page = page.replace('<section id="verdict"', '<div style="height:2000px"></div><section id="verdict"', 1)
    (folder / "report.html").write_text(page)
    (folder / "manifest.json").unlink()  # a link to it is now dangling
    check = check_report(folder / "report.html")
    assert len(check.broken_images) == 1
    assert any("#nowhere" in b for b in check.broken_links) and any("manifest.json" in b for b in check.broken_links)
    assert not check.verdict_in_first_viewport
