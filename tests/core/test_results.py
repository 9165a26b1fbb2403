"""The results-folder object: one rule finds an arm's run folder, resolved once, and the ambiguous case (two run
folders of an arm, no selection.json) gives the same error to each of its readers: the pipeline, verify and
report.html. The speech model's fact subsets are read from the run's record, never guessed."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

from artifact import verification as v
from artifact.analysis.aggregate import aggregate_run
from artifact.core.fileio import write_json_atomic
from artifact.core.layout import ResultsFolderError
from artifact.core.names import EMBEDDED_SPEECH
from artifact.core.results import SUBSETS_KEY, MissingRunFolderError, ResultsFolder
from artifact.experiments.choice import ModelChoice
from artifact.experiments.pipeline import PipelineRun, aggregate_step
from artifact.experiments.profiles import PROFILES
from artifact.report.html import build_report_html
from tests.support.fake_runs import fake_run


@pytest.fixture
def two_t2t_folders(tmp_path) -> Path:
    """A results folder with two T->T run folders (another fact file each), one S->T run, and no selection.json."""
    out = tmp_path / "embedded-smoke"
    for fingerprint in ("e" * 64, "f" * 64):
        aggregate_run(fake_run(out / "runs", "t2t", range(10, 14), 0, 0.3, fingerprint=fingerprint), kinds=("mlp",))
    aggregate_run(fake_run(out / "runs", "s2t", range(10, 14), 1, 0.05), kinds=("mlp",))
    return out


def ambiguity(results: Path) -> str:
    with pytest.raises(ResultsFolderError) as caught:
        ResultsFolder(results).run_dir("t2t")
    return str(caught.value)


def test_the_rule_selection_first_then_the_only_folder(two_t2t_folders):
    results = two_t2t_folders
    t2t = sorted((results / "runs").glob("t2t-*"))
    s2t = next((results / "runs").glob("s2t-*"))
    folder = ResultsFolder(results)
    assert folder.run_dir("s2t") == s2t  # the only one
    message = ambiguity(results)
    assert "several t2t run folders" in message and all(p.name in message for p in t2t)
    assert "selection.json" in message and "keep one run folder per arm" in message
    write_json_atomic(results / "selection.json", {"t2t_run": t2t[1].name, "s2t_run": s2t.name})
    assert ResultsFolder(results).run_dirs() == {"t2t": t2t[1], "s2t": s2t}
    write_json_atomic(results / "selection.json", {"t2t_run": "t2t-gone", "s2t_run": s2t.name})
    with pytest.raises(MissingRunFolderError, match="missing run folder: .*t2t-gone.*named by"):
        ResultsFolder(results).run_dir("t2t")


def test_each_arm_is_resolved_once(two_t2t_folders):
    results = two_t2t_folders
    t2t = sorted((results / "runs").glob("t2t-*"))
    s2t = next((results / "runs").glob("s2t-*"))
    write_json_atomic(results / "selection.json", {"t2t_run": t2t[0].name, "s2t_run": s2t.name})
    folder = ResultsFolder(results)
    assert folder.run_dir("t2t") == t2t[0]
    write_json_atomic(results / "selection.json", {"t2t_run": t2t[1].name, "s2t_run": s2t.name})
    assert folder.run_dir("t2t") == t2t[0]  # what this object found, kept
    assert ResultsFolder.of(folder) is folder and ResultsFolder(results).run_dir("t2t") == t2t[1]


def test_the_pipeline_verify_and_the_report_give_the_same_error(two_t2t_folders, tmp_path):
    results = two_t2t_folders
    message = ambiguity(results)
    # the pipeline: every step after the known step finds the run folders through the object
    choice = ModelChoice(name="embedded", t2t_model="embedded", s2t_model="embedded-speech", banner="",
                         front_end={}, front_end_banner="")
    with pytest.raises(ResultsFolderError) as caught:
        aggregate_step(PipelineRun(PROFILES["smoke"], choice, results, progress=False))
    assert str(caught.value) == message
    # verify: the recomputation and the run settings fail with it, and nothing is judged on one of the two folders
    expected = tmp_path / "expected"
    expected.mkdir()
    (expected / "manifest.json").write_text(json.dumps({"settings": {"t2t": {"arm": "t2t"}, "s2t": {"arm": "s2t"}}}))
    report = v.verify(results, expected)
    assert report.verdict == v.FAIL
    failing = {(c.check, c.arm): c.detail for c in report.checks if c.verdict == v.FAIL}
    assert failing[("trace_files", "t2t")] == message
    assert failing[("files", None)] == message
    assert not [c for c in report.checks if c.verdict == v.PASS and c.arm == "t2t"]
    # report.html: said in the figures section, the rest of the page built
    page = build_report_html(results)
    assert f"No figures of this arm: T-&gt;T: {html.escape(message)}" in page
    assert 'id="manifest"' in page


def test_subsets_are_read_from_the_record(two_t2t_folders):
    results = two_t2t_folders
    t2t = sorted((results / "runs").glob("t2t-*"))[0]
    s2t = next((results / "runs").glob("s2t-*"))
    assert ResultsFolder(results).subsets() == {}  # no selection.json: run folders compared by hand
    selection = {"t2t_run": t2t.name, "s2t_run": s2t.name, SUBSETS_KEY: {"train": [10, 11], "held_out": ["12"]}}
    write_json_atomic(results / "selection.json", selection)
    assert ResultsFolder(results).subsets() == {"train": ["10", "11"], "held_out": ["12"]}
    del selection[SUBSETS_KEY]
    write_json_atomic(results / "selection.json", selection)
    assert ResultsFolder(results).subsets() == {}  # a model without subsets (the fake runs' 'tiny')
    settings = json.loads((s2t / "settings.json").read_text())
    settings["model"] = EMBEDDED_SPEECH
    (s2t / "settings.json").write_text(json.dumps(settings))
    with pytest.raises(ResultsFolderError, match="does not record the speech model's fact subsets.*--no-recompute"):
        ResultsFolder(results).subsets()


def test_the_pipeline_records_the_subsets_and_adds_them_to_an_older_folder(two_t2t_folders, monkeypatch):
    """The subsets come from the shipped speech model's manifest once, in the pipeline (which has the model
    package); a folder written before they were recorded gets them on its next run instead of failing."""
    from types import SimpleNamespace

    from artifact.models.embedded_speech import read_manifest

    results = two_t2t_folders
    t2t = sorted((results / "runs").glob("t2t-*"))[0]
    s2t = next((results / "runs").glob("s2t-*"))
    write_json_atomic(results / "selection.json", {"t2t_run": t2t.name, "s2t_run": s2t.name})  # an older one
    manifest = read_manifest()
    choice = ModelChoice(name="embedded", t2t_model="embedded", s2t_model="embedded-speech", banner="",
                         front_end={}, front_end_banner="")
    run = PipelineRun(PROFILES["smoke"], choice, results, progress=False)
    own = SimpleNamespace(settings=SimpleNamespace(facts_fingerprint=manifest["facts_fingerprints"]["own"]))
    monkeypatch.setattr(run, "prepared", lambda arm: own)  # the prepared S->T arm loads models; only its facts count
    subsets = run.subsets()
    wanted = {name: [key.split(":", 1)[1] for key in manifest[field] if key.startswith("own:")]
              for name, field in (("train", "train_facts"), ("held_out", "held_out_facts"))}
    assert subsets == wanted and wanted["train"] and wanted["held_out"]
    assert json.loads((results / "selection.json").read_text())[SUBSETS_KEY] == wanted
    assert ResultsFolder(results).subsets() == wanted  # what verify reads, without the model package
    spiritlm = PipelineRun(PROFILES["smoke"], ModelChoice(name="spiritlm", t2t_model="spiritlm", s2t_model="spiritlm",
                                                          banner="", front_end={}), results, progress=False)
    from artifact.experiments.pipeline import speech_model_subsets

    assert speech_model_subsets(spiritlm) == {}
