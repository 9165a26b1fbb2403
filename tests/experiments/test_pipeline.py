"""The pipeline's model selection (one banner line, clear errors for an incomplete SpiritLM layout) and step log."""

from pathlib import Path

import pytest

from artifact.core.spiritlm import missing_checkpoint_files
from artifact.experiments.choice import ModelSelectionError, select_model
from artifact.experiments.pipeline import StepLog, check_results_folder
from artifact.experiments.profiles import PROFILES


def _layout(root: Path, skip: int | None = None) -> None:
    for n, rel in enumerate(missing_checkpoint_files(root)):
        if n != skip:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(b"x")


def test_default_is_embedded_without_checkpoints(monkeypatch):
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    choice = select_model(None, None)
    assert (choice.name, choice.t2t_model, choice.s2t_model) == ("embedded", "embedded", "embedded-speech")
    assert "no SpiritLM checkpoints given" in choice.banner and "--checkpoints" in choice.banner
    assert "\n" not in choice.banner


def test_default_is_spiritlm_with_a_complete_layout(tmp_path, monkeypatch):
    _layout(tmp_path)
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    choice = select_model(None, None, front_end="offline")
    assert choice.name == "spiritlm" and choice.front_end["unit_tokenizer"] == "spiritlm"
    assert choice.front_end["tts"] == "espeak-ng" and "as asked" in choice.front_end_banner
    assert str(tmp_path) in choice.banner


def test_front_end_choice_per_model_and_stage():
    """auto: the paper's stages that can run here, offline for the others, said in one line; paper: no fallback;
    the embedded speech model takes the offline front end only (it was trained on its units)."""
    from artifact.speech.front_end import FrontEndChoiceError, choose_front_end

    def only_whisper_missing(stage, name):
        return "no small.pt in /weights/whisper" if name == "whisper-small" else None

    auto = choose_front_end("spiritlm", "auto", probe=only_whisper_missing)
    assert auto.config == {"tts": "melotts", "recognizer": "none", "aligner": "mms-fa", "unit_tokenizer": "spiritlm",
                           "validate_alignment": False}
    assert auto.fallbacks == {"recognizer": "no small.pt in /weights/whisper"}
    assert "whisper-small -> none" in auto.banner and "no small.pt" in auto.banner and "\n" not in auto.banner
    everything = choose_front_end("spiritlm", "auto", probe=lambda stage, name: None)
    assert (everything.config["tts"], everything.config["recognizer"], everything.fallbacks) == (
        "melotts", "whisper-small", {})
    with pytest.raises(FrontEndChoiceError, match="whisper-small .no small.pt.*--front-end offline"):
        choose_front_end("spiritlm", "paper", probe=only_whisper_missing)
    probed = []
    offline = choose_front_end("spiritlm", "offline", probe=lambda stage, name: probed.append(name))
    assert offline.config["tts"] == "espeak-ng" and offline.config["unit_tokenizer"] == "spiritlm" and not probed
    embedded = choose_front_end("embedded", "auto", probe=lambda stage, name: None)
    assert embedded.config == {"tts": "espeak-ng", "recognizer": "none", "aligner": "pocketsphinx",
                               "unit_tokenizer": "kmeans-logmel", "validate_alignment": False}
    with pytest.raises(FrontEndChoiceError, match="trained on the offline front end"):
        choose_front_end("embedded", "paper")


def test_incomplete_checkpoints_are_refused_never_ignored(tmp_path, monkeypatch):
    """Checkpoints given (option or variable) but incomplete: exit-2 error naming each missing file, with or without
    --model spiritlm; only --model embedded runs the embedded models then (an explicit request wins)."""
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    _layout(tmp_path, skip=0)
    missing = missing_checkpoint_files(tmp_path)
    assert len(missing) == 1
    for requested in (None, "spiritlm"):
        with pytest.raises(ModelSelectionError, match=f"^--checkpoints {tmp_path} lacks 1 file.*{missing[0]}.*"
                                                      "--model embedded"):
            select_model(requested, str(tmp_path))
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    with pytest.raises(ModelSelectionError, match=f"^SPIRITLM_CHECKPOINTS_DIR={tmp_path} lacks 1 file"):
        select_model(None, None)
    choice = select_model("embedded", None)
    assert choice.name == "embedded" and f"the checkpoints at {tmp_path} are not used" in choice.banner
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR")
    with pytest.raises(ModelSelectionError, match="--checkpoints DIR or set SPIRITLM_CHECKPOINTS_DIR"):
        select_model("spiritlm", None)
    with pytest.raises(ModelSelectionError, match="--model must be one of 'embedded', 'spiritlm'"):
        select_model("gpt2", None)


def test_a_mount_one_level_too_high_names_the_nested_layout(tmp_path, monkeypatch):
    """spiritlm's README layout, DIR/checkpoints/spiritlm_model/...: "did you mean DIR/checkpoints", exact path; the
    same up to three levels down, and for a nested layout that is itself incomplete."""
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    nested = tmp_path / "spiritlm" / "checkpoints"
    _layout(nested)
    (tmp_path / ".hidden" / "spiritlm_model").mkdir(parents=True)  # hidden folders are not searched
    for given in (tmp_path / "spiritlm", tmp_path):
        with pytest.raises(ModelSelectionError) as info:
            select_model(None, str(given))
        message = str(info.value)
        assert f"Did you mean {nested}? It holds the complete layout: pass --checkpoints {nested}" in message
        assert "lacks 8 file(s)" in message and "spiritlm_model/spirit-lm-base-7b/pytorch_model.bin" in message
        assert "\n" not in message
    assert select_model(None, str(nested)).name == "spiritlm"
    deep = tmp_path / "deep"
    _layout(deep / "a" / "b" / "c" / "d")  # four levels down: beyond the search
    with pytest.raises(ModelSelectionError) as info:
        select_model(None, str(deep))
    assert "Did you mean" not in str(info.value)
    partial = tmp_path / "partial"
    _layout(partial / "checkpoints", skip=3)
    with pytest.raises(ModelSelectionError, match=f"folders are in {partial / 'checkpoints'}, which lacks 1 file"):
        select_model(None, str(partial))


def test_a_folder_one_level_too_low_or_a_file_is_refused_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    _layout(tmp_path / "root")
    with pytest.raises(ModelSelectionError, match="looks like one level of the layout itself.*folder above it"):
        select_model(None, str(tmp_path / "root" / "spiritlm_model"))
    archive = tmp_path / "spirit-lm-base-7b.tar.gz"
    archive.write_bytes(b"x")
    with pytest.raises(ModelSelectionError, match=f"--checkpoints {archive} is a file: it must be the SpiritLM "
                                                  "checkpoints root folder"):
        select_model(None, str(archive))
    with pytest.raises(ModelSelectionError, match="does not exist: it must be"):
        select_model("spiritlm", str(tmp_path / "absent"))


def test_the_cli_exits_2_on_a_wrong_mount(tmp_path, monkeypatch, capsys):
    from artifact.cli import main
    from artifact.experiments import pipeline

    def fail(run):
        raise AssertionError(f"the {run.choice.name} models ran despite the wrong mount")

    monkeypatch.setattr(pipeline, "STEPS", (pipeline.Step("known", "would run the models", fail),))
    monkeypatch.delenv("SPIRITLM_CHECKPOINTS_DIR", raising=False)
    _layout(tmp_path / "checkpoints")
    monkeypatch.setenv("SPIRITLM_CHECKPOINTS_DIR", str(tmp_path))
    assert main(["pipeline", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: SPIRITLM_CHECKPOINTS_DIR={tmp_path} lacks 8 file(s)") and f"Did you mean {tmp_path / 'checkpoints'}?" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_step_log_survives_a_restart(tmp_path):
    log = StepLog.load(tmp_path / "steps.json")
    assert not log.done("known")
    log.record("known", 1.5)
    again = StepLog.load(tmp_path / "steps.json")
    assert again.done("known") and again.steps["known"]["seconds"] == 1.5
    assert not again.done("t2t")


def test_a_killed_attempt_is_counted_as_untimed(tmp_path):
    log = StepLog.load(tmp_path / "steps.json")
    log.start("t2t")  # killed: no record
    again = StepLog.load(tmp_path / "steps.json")
    again.start("t2t")
    again.record("t2t", 354.0)
    assert again.steps["t2t"]["seconds"] == 354.0 and again.untimed("t2t") == 1
    assert StepLog.load(tmp_path / "steps.json").untimed("t2t") == 1
    # a step that finished in its first attempt has none, and a step begun before attempts were counted has one
    again.start("s2t")
    again.record("s2t", 10.0)
    assert again.untimed("s2t") == 0 and "untimed_attempts" not in again.steps["s2t"]
    again.steps["aggregate"] = {"done": False, "started_ns": 1}
    again.start("aggregate")
    again.record("aggregate", 1.0)
    assert again.untimed("aggregate") == 1


def test_command_lists_every_profile_without_loading_torch():
    import subprocess
    import sys

    code = ("import sys; from artifact.cli import main\n"
            "try:\n    main(['pipeline', '--help'])\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    for name in PROFILES:
        assert name in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "False", out.stdout + out.stderr


def test_profiles_are_the_documented_scales():
    assert set(PROFILES) == {"smoke", "standard", "review", "full"}
    smoke, standard, review, full = (PROFILES[n] for n in ("smoke", "standard", "review", "full"))
    assert smoke.facts == "own" and 12 <= smoke.count <= 16 and smoke.paired_only and smoke.candidates is None
    assert standard.models == ("embedded",) and standard.count > smoke.count and standard.held_out_share > 0
    assert review.models == ("spiritlm",) and review.facts == "known_1000" and review.paired_only
    assert (full.facts, full.trace.samples, full.t2t_positions, full.s2t_positions, full.count) == (
        "known_1000", 10, "all", "all", None) and not full.paired_only
    for p in PROFILES.values():
        assert p.purpose and p.budget and p.description
    # carry-over: every analysis everywhere; smoke leaves attention out of cross-modal patching for time
    assert smoke.carryover.patch_kinds == ("hidden", "mlp")
    for p in (standard, review, full):
        assert p.carryover.patch_kinds == ("hidden", "mlp", "attn") and len(p.carryover.analyses) == 3


def test_carryover_plan_refuses_unknown_values():
    from artifact.experiments.profiles import CarryOverPlan

    with pytest.raises(ValueError, match="patch_kinds must be distinct values of hidden, mlp, attn"):
        CarryOverPlan(patch_kinds=("hidden", "residual"))
    with pytest.raises(ValueError, match="positions"):
        CarryOverPlan(positions=("last", "last"))


def test_cost_model_estimates_each_profile_per_device():
    from artifact.experiments.cost import describe_estimate, estimate

    review = estimate(PROFILES["review"], "spiritlm", "h100")
    assert 0.5 * 3600 < review["trace_seconds"] < 2 * 3600  # the review profile fits its 2-hour budget
    smoke = estimate(PROFILES["smoke"], "embedded", "cpu")
    assert smoke["arms"]["s2t"]["tflop_per_fact"] > smoke["arms"]["t2t"]["tflop_per_fact"]  # speech is longer
    assert "min" in describe_estimate(smoke) and "measured" in describe_estimate(smoke)
    assert "depends on how many facts" in describe_estimate(estimate(PROFILES["full"], "spiritlm", "h100"))


def test_a_results_folder_refuses_other_settings(tmp_path):
    """Finished steps are skipped on a rerun, so a folder must never be reused for other settings."""
    from dataclasses import replace

    smoke = PROFILES["smoke"].to_dict()
    check_results_folder(tmp_path, {"profile": smoke, "model": "embedded"})
    check_results_folder(tmp_path, {"profile": smoke, "model": "embedded"})  # the same run resumes
    other = replace(PROFILES["smoke"], trace=replace(PROFILES["smoke"].trace, seed=2)).to_dict()
    with pytest.raises(ValueError, match="profile differ.*another --out"):
        check_results_folder(tmp_path, {"profile": other, "model": "embedded"})


def test_a_folder_from_before_the_carryover_step_resumes(tmp_path):
    """A results folder written before profiles had a carry-over plan takes today's plan once and resumes (the plan
    only configures a later step); afterwards another plan is refused like any other setting."""
    import json
    from dataclasses import replace

    from artifact.core.layout import PIPELINE_FILE
    from artifact.experiments.profiles import CarryOverPlan

    old = PROFILES["standard"].to_dict()
    old.pop("carryover")
    (tmp_path / PIPELINE_FILE).write_text(json.dumps({"profile": old, "model": "embedded"}))
    check_results_folder(tmp_path, {"profile": PROFILES["standard"].to_dict(), "model": "embedded"})
    assert json.loads((tmp_path / PIPELINE_FILE).read_text())["profile"]["carryover"]["patch_kinds"] == [
        "hidden", "mlp", "attn"]
    reworded = replace(PROFILES["standard"], description="said otherwise", budget="elsewhere").to_dict()
    check_results_folder(tmp_path, {"profile": reworded, "model": "embedded"})  # words do not define a run
    other = replace(PROFILES["standard"], carryover=CarryOverPlan(patch_kinds=("hidden",))).to_dict()
    with pytest.raises(ValueError, match="profile differ"):
        check_results_folder(tmp_path, {"profile": other, "model": "embedded"})


def test_the_estimate_from_real_prompts_sums_each_facts_cost():
    """After the Known step the estimate uses each traced fact's own prompt: a long prompt costs more than two short
    ones, which a mean shape would hide."""
    from artifact.experiments.cost import PromptShape, estimate, fact_flops, model_shape

    profile = PROFILES["smoke"]
    prompts = {"t2t": [PromptShape(6, 1, 2), PromptShape(12, 1, 4)], "s2t": [PromptShape(30, 1, 10)]}
    est = estimate(profile, "embedded", "cpu", prompts=prompts)
    expected = sum(fact_flops(model_shape("embedded"), p, profile.t2t_positions, profile.trace.samples,
                              profile.trace.window, profile.kinds) for p in prompts["t2t"])
    assert est["arms"]["t2t"]["facts"] == 2 and est["arms"]["s2t"]["facts"] == 1
    assert est["arms"]["t2t"]["from_real_prompts"]
    assert abs(est["arms"]["t2t"]["seconds"] * est["flops_per_second"] - expected) < 1e-3 * expected


def test_the_corruption_plan_per_profile_and_its_checks():
    """Smoke runs the corruption choice on a subset (MLP only, for time); standard and review on every
    carry-over fact and kind; the plan refuses a baseline-less or unknown setting."""
    from artifact.experiments.pipeline import STEPS
    from artifact.experiments.profiles import SMOKE_CORRUPTION_FACTS, CorruptionPlan

    smoke = PROFILES["smoke"].corruption
    assert smoke.facts == SMOKE_CORRUPTION_FACTS and smoke.kinds == ("mlp",) and smoke.replacement
    for name in ("standard", "review", "full"):
        plan = PROFILES[name].corruption
        assert plan.facts is None and plan.kinds is None and plan.multiples == (1.0, 3.0, 5.0) and plan.replacement
    order = [step.name for step in STEPS]
    assert order.index("carryover") < order.index("transcription") < order.index("corruption") < order.index(
        "figures")
    with pytest.raises(ValueError, match="including 3"):
        CorruptionPlan(multiples=(1.0, 5.0))
    with pytest.raises(ValueError, match="kinds"):
        CorruptionPlan(kinds=("residual",))
    with pytest.raises(ValueError, match="facts"):
        CorruptionPlan(facts=-1)


def test_a_folder_from_before_the_corruption_step_resumes(tmp_path):
    """A results folder written before profiles had a corruption plan takes today's once and resumes."""
    import json
    from dataclasses import asdict

    from artifact.core.layout import PIPELINE_FILE

    old = asdict(PROFILES["smoke"])
    old.pop("corruption")
    (tmp_path / PIPELINE_FILE).write_text(json.dumps({"profile": old, "model": "embedded"}))
    check_results_folder(tmp_path, {"profile": asdict(PROFILES["smoke"]), "model": "embedded"})
    assert json.loads((tmp_path / PIPELINE_FILE).read_text())["profile"]["corruption"]["facts"] == 2
