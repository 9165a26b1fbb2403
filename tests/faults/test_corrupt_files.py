"""Corrupted files left behind (issue 29): a truncated or bit-flipped trace or carry-over file is detected by its
CRC-32s on resume and computed again, bitwise equal to the undamaged one, and never aggregated: a damaged file that
reaches an aggregate stops it with one line naming the file to delete. Real runs of the `run` command on a tiny
seeded Llama."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from artifact.core.fileio import DamagedFileError, npz_problem, write_npz_atomic
from tests.support.faults import (
    artifact,
    assert_one_line_error,
    assert_same_arrays,
    flip_bit,
    run,
    run_command,
    tiny_model,
    truncate,
)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run (2 facts x hidden, mlp) and a pristine copy of it."""
    root = tmp_path_factory.mktemp("corrupt")
    model, facts = tiny_model(root / "tiny")
    out = root / "out"
    result = run(run_command(model, facts, out))
    assert result.returncode == 0, result.stderr
    pristine = root / "pristine"
    shutil.copytree(out, pristine)
    return model, facts, out, pristine


def traces(out):
    return sorted(out.glob("*/traces/*/*.npz"))


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_a_damaged_trace_is_detected_and_computed_again(finished, damage, tmp_path):
    model, facts, _, pristine = finished
    out = tmp_path / "out"
    shutil.copytree(pristine, out)
    victim = traces(out)[1]
    damage(victim)
    assert npz_problem(victim) is not None
    resumed = run(run_command(model, facts, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 results computed, 3 already present" in resumed.stdout, resumed.stdout
    assert "damaged result file" in resumed.stderr and victim.name in resumed.stderr
    for path in traces(out):
        assert_same_arrays(path, pristine / path.relative_to(out))


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_aggregating_a_damaged_trace_stops_with_one_line_naming_it(finished, damage, tmp_path):
    _, _, _, pristine = finished
    out = tmp_path / "out"
    shutil.copytree(pristine, out)
    victim = traces(out)[0]
    damage(victim)
    (run_dir,) = out.glob("t2t-*")
    result = artifact("aggregate", "--results", str(run_dir), "--resamples", "50")
    assert_one_line_error(result, str(victim), "damaged", "Delete it and rerun")
    assert not (run_dir / "aggregate" / "aie.json").exists()


def test_a_bit_flip_in_any_byte_of_an_array_is_found(tmp_path):
    """CRC-32 per member: every single-bit flip inside the stored arrays is detected (checked at each byte of a
    small trace-like file's data)."""
    path = tmp_path / "a.npz"
    write_npz_atomic(path, {"scores": np.linspace(0, 1, 24).reshape(4, 6), "known_id": np.asarray(3)})
    clean = path.read_bytes()
    missed = []
    for offset in range(len(clean)):
        data = bytearray(clean)
        data[offset] ^= 0x01
        path.write_bytes(bytes(data))
        if npz_problem(path) is None:
            try:
                with np.load(path) as loaded:
                    same = all(np.array_equal(loaded[k], v) for k, v in
                               {"scores": np.linspace(0, 1, 24).reshape(4, 6), "known_id": np.asarray(3)}.items())
            except Exception:  # noqa: BLE001 - a flip npz_problem passed must at least not load wrong numbers
                same = False
            if not same:
                missed.append(offset)
    assert not missed, f"bit flips at {missed[:5]} pass the check and change the numbers"


def test_damaged_carryover_fact_file_is_computed_again_or_named(tmp_path):
    """Carry-over fact files: on resume a damaged one counts as not done; the aggregate names it."""
    from artifact.experiments.carryover import fact_path, load_fact_files

    path = fact_path(tmp_path, 7)
    write_npz_atomic(path, {"knockout_prob": np.ones((2, 3)), "known_id": np.asarray("7")})
    assert npz_problem(path) is None
    truncate(path)
    with pytest.raises(DamagedFileError, match="7.npz is damaged.*carry-over step computes it again"):
        load_fact_files(tmp_path, [7])
