"""The cost command prints the arithmetic of the full-run estimate."""

from artifact.cli import main


def test_cost_command_prints_the_arithmetic(capsys):
    assert main(["cost", "--known-fraction", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "1209 x 0.5 = 604" in out and "spoken T=60" in out and "total: engine" in out
    assert main(["cost", "--mfu", "0"]) == 2
