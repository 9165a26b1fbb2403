"""Bad input (issue 29): every mistake a hand-edited fact file, a wrong path or a stray option can carry ends in one
`error:` line that names the problem and the fix, exit code 2, and no traceback; weights holding NaN or inf are
refused when loaded (not NaN curves); a Known filter that leaves nothing stops before the traces."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from tests.support.faults import (
    ENV,
    REPO,
    TRACEBACK,
    artifact,
    assert_one_line_error,
    run,
    run_command,
    tiny_model,
)

GOOD = {"known_id": 1, "subject": "Paris", "attribute": "France", "template": "{} is located in the country of",
        "prediction": "", "prompt": "Paris is located in the country of", "relation_id": "P17"}


def facts_file(tmp_path, content) -> str:
    path = tmp_path / "facts.json"
    path.write_bytes(content if isinstance(content, bytes) else json.dumps(content).encode())
    return str(path)


CASES = {
    "malformed JSON": (b'[{"known_id": 1, "subject": "Paris",', ["not valid JSON", "fix or replace it"]),
    "missing fields": ([{k: v for k, v in GOOD.items() if k != "attribute"}],
                       ["record 0 (known_id 1)", "missing field(s) attribute"]),
    "duplicate ids": ([GOOD, {**GOOD, "subject": "Lyon", "prompt": "Lyon is located in the country of"}],
                      ["record 1 (known_id 1)", "duplicates record 0", "unique known_id"]),
    "subject not in prompt": ([{**GOOD, "subject": "Berlin"}], ["'Berlin' does not occur in prompt"]),
    "empty prompt": ([{**GOOD, "prompt": ""}], ["field 'prompt' is empty"]),
    "non-UTF-8 byte": (json.dumps([GOOD]).replace("Paris", "Par\x00is").encode().replace(b"\x00", b"\xe9"),
                       ["not UTF-8", "byte 0xe9 at offset", "save the file as UTF-8"]),
}


def main_in_process(capsys, *argv: str) -> subprocess.CompletedProcess:
    """`python -m artifact ARGV` run in this process (its imports are warm), as a CompletedProcess."""
    from artifact.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_fact_file_is_one_line_naming_the_problem(case, tmp_path, capsys):
    content, needles = CASES[case]
    path = facts_file(tmp_path, content)
    result = main_in_process(capsys, "run", "--model", "embedded", "--facts", path, "--out", str(tmp_path / "out"),
                             "--no-progress")
    assert_one_line_error(result, path, *needles)
    assert not (tmp_path / "out").exists()  # stopped before any model or results folder


def test_a_bad_fact_file_in_a_real_process_shows_no_traceback(tmp_path):
    path = facts_file(tmp_path, b"\xff\xfe[]")
    result = artifact("known", "--facts", path, "--out", str(tmp_path / "known.json"))
    assert_one_line_error(result, path, "not UTF-8", "[traceback: ARTIFACT_DEBUG=1]")
    debug = artifact("known", "--facts", path, "--out", str(tmp_path / "known.json"),
                     env={**ENV, "ARTIFACT_DEBUG": "1"})
    assert TRACEBACK in debug.stderr and "FactsError" in debug.stderr  # a bug stays debuggable


def test_a_checkpoints_path_that_is_a_file(tmp_path, capsys):
    path = tmp_path / "checkpoints.tar"
    path.write_bytes(b"not a folder")
    result = main_in_process(capsys, "pipeline", "--checkpoints", str(path), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, f"--checkpoints {path} is a file", "checkpoints root folder")
    missing = main_in_process(capsys, "pipeline", "--checkpoints", str(tmp_path / "nowhere"), "--out",
                              str(tmp_path / "out"))
    assert_one_line_error(missing, "does not exist")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, needle", [
    (["pipeline", "--profile", "huge"], "argument --profile: invalid choice: 'huge'"),
    (["pipeline", "--frobnicate"], "unrecognized arguments: --frobnicate"),
    (["run", "--kinds", "hidden,residual"], "Unknown kind(s) ['residual']"),
], ids=["unknown profile", "unknown option", "unknown kind"])
def test_an_unknown_profile_or_option(argv, needle, tmp_path, capsys):
    try:
        result = main_in_process(capsys, *argv, "--out", str(tmp_path / "out"))
        code, err = result.returncode, result.stderr
    except SystemExit as exit_:  # argparse's usage error
        code, err = exit_.code, capsys.readouterr().err
    assert TRACEBACK not in err and code == 2, err
    assert needle in err


def test_an_expected_profile_from_another_version(tmp_path):
    """An expected profile recorded in another format is refused with NO VERDICT (exit 2) naming it, before any
    check could misread it."""
    profile = tmp_path / "embedded-smoke"
    shutil.copytree(REPO / "expected" / "embedded-smoke", profile)
    manifest = json.loads((profile / "manifest.json").read_text())
    manifest["format"] = 2
    (profile / "manifest.json").write_text(json.dumps(manifest))
    results = tmp_path / "results"
    results.mkdir()
    done = run([sys.executable, str(REPO / "verify.py"), "--results", str(results), "--expected", str(profile)])
    assert TRACEBACK not in done.stderr and done.returncode == 2, done.stdout + done.stderr
    assert "NO VERDICT" in done.stdout and str(profile) in done.stdout and "format 2" in done.stdout
    assert "verify.py --record" in done.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("bad-input") / "tiny")


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_nan_or_inf_in_the_weights_is_refused_when_loading(tiny, value, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    model_dir, facts = tiny
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    model = AutoModelForCausalLM.from_pretrained(broken)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[3, 5] = value
    model.save_pretrained(broken)
    result = main_in_process(capsys, *run_command(broken, facts, tmp_path / "out")[3:])
    assert_one_line_error(result, "weight model.layers.1.mlp.down_proj.weight", "1 NaN or inf value(s)",
                          "checkpoint is damaged")
    assert not list((tmp_path / "out").glob("*/traces/*/*.npz"))


EMPTY_SELECTION = textwrap.dedent("""
    import sys, dataclasses
    import artifact.experiments.profiles as profiles
    smoke = profiles.PROFILES["smoke"]
    profiles.PROFILES["smoke"] = dataclasses.replace(smoke, facts=sys.argv[1], count=2, candidates=2,
                                                     trace=dataclasses.replace(smoke.trace, samples=1),
                                                     held_out_share=0.0)
    from artifact.cli import main
    sys.exit(main(["pipeline", "--out", sys.argv[2], "--no-progress", "--no-verify"]))
""")


def test_an_empty_selection_after_the_known_filter_stops_before_the_traces(tmp_path):
    """Facts the embedded models do not know (wrong answers): the Known step says so and the run stops, exit 2,
    with no trace step started."""
    wrong = [{**GOOD, "attribute": "Antarctica"},
             {"known_id": 2, "subject": "Berlin", "attribute": "Peru", "template": "{} is the capital of",
              "prediction": "", "prompt": "Berlin is the capital of", "relation_id": "P1376"}]
    path = facts_file(tmp_path, wrong)
    out = tmp_path / "out"
    result = run([sys.executable, "-c", EMPTY_SELECTION, path, str(out)], env={**ENV, "OMP_NUM_THREADS": "2"})
    assert_one_line_error(result, "the Known filter left no fact to trace", "Known-t2t 0 of 2",
                          "stopping before the traces")
    steps = json.loads((out / "steps.json").read_text())
    assert not steps.get("known", {}).get("done") and "t2t" not in steps
    assert not list(out.glob("runs/*/traces"))
