"""The cost command prints the arithmetic of the full-run estimate."""

import re

from artifact.cli import main


def test_cost_command_prints_the_arithmetic(capsys):
    assert main(["cost", "--known-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "1209 x 0.5 = 604" in out and "spoken T=60" in out and "total: engine" in out
    assert main(["cost", "--mfu", "0"]) == 2


def test_cost_of_a_profile_per_model_and_device(capsys):
    assert main(["cost", "--profile", "review", "--model", "spiritlm", "--device", "h100"]) == 0
    out = capsys.readouterr().out
    assert "profile review" in out and "150 facts" in out and "one H100" in out
    assert main(["cost", "--profile", "smoke", "--model", "embedded", "--device", "cpu"]) == 0
    assert "2 CPU cores" in capsys.readouterr().out
    assert main(["cost", "--profile", "nonesuch"]) == 2
    assert "--profile must be one of smoke, standard, review, full" in capsys.readouterr().err


def test_the_estimate_line_says_when_the_corruption_choice_is_left_out():
    """--no-corruption-choice (a plan of no fact): the banner's estimate names no corruption time, and says so."""
    from dataclasses import replace

    from artifact.experiments.cost import describe_estimate, estimate
    from artifact.experiments.profiles import PROFILES

    standard = PROFILES["standard"]
    full = describe_estimate(estimate(standard, "embedded", "cpu"))
    assert re.search(r"corruption choice [0-9.]+ h more$", full) and "no corruption choice" not in full, full
    left_out = describe_estimate(estimate(replace(standard, corruption=replace(standard.corruption, facts=0)),
                                          "embedded", "cpu"))
    assert re.search(r"implicit transcription [0-9.]+ s more; no corruption choice$", left_out), left_out
