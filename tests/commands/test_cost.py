"""The cost command prints the arithmetic of the full-run estimate."""

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
