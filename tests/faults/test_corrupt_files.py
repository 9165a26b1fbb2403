"""Corrupted files left behind (issue 29): a truncated or bit-flipped trace or carry-over file is detected by its
CRC-32s on resume and computed again, bitwise equal to the undamaged one, and never aggregated: a damaged file that
reaches an aggregate stops it with one line naming the file to delete. Real runs of the `run` command on a tiny
seeded Llama."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from artifact.core.fileio import write_npz_atomic
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


def damaged_copy(pristine, tmp_path, index, damage):
    """A copy of the finished run folder with its `index`-th trace file damaged; (folder, that file)."""
    out = tmp_path / "out"
    shutil.copytree(pristine, out)
    victim = traces(out)[index]
    damage(victim)
    return out, victim


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_a_damaged_trace_is_detected_and_computed_again(finished, damage, tmp_path):
    model, facts, _, pristine = finished
    out, victim = damaged_copy(pristine, tmp_path, 1, damage)
    resumed = run(run_command(model, facts, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 results computed, 3 already present" in resumed.stdout, resumed.stdout
    assert "damaged result file" in resumed.stderr and victim.name in resumed.stderr
    for path in traces(out):
        assert_same_arrays(path, pristine / path.relative_to(out))


def drop_per_sample_arrays(path):
    """Rewrite a trace as a version from before issue 28 wrote it: the means only, no per-sample arrays."""
    with np.load(path) as stored:
        arrays = {name: stored[name] for name in stored.files if not name.endswith("_per_sample")}
    assert len(arrays) < len(np.load(path).files), "the trace must hold per-sample arrays to drop"
    path.unlink()
    write_npz_atomic(path, arrays)


def test_a_trace_from_an_older_version_without_per_sample_arrays_is_computed_again(finished, tmp_path):
    """Resuming a folder an older version started: its intact traces without per-sample arrays are not trusted
    (the folder would hold them for some facts only, depending on where it was stopped), but computed again, with
    the same means; found by the real smoke kill run of issue 29."""
    model, facts, _, pristine = finished
    out, victim = damaged_copy(pristine, tmp_path, 2, drop_per_sample_arrays)
    resumed = run(run_command(model, facts, out))
    assert resumed.returncode == 0, resumed.stderr
    assert "1 results computed, 3 already present" in resumed.stdout, resumed.stdout
    assert "out-of-date result file" in resumed.stderr and victim.name in resumed.stderr, resumed.stderr
    assert "Traceback" not in resumed.stderr
    for path in traces(out):
        assert_same_arrays(path, pristine / path.relative_to(out))


@pytest.mark.parametrize("damage", [truncate, flip_bit], ids=["truncated", "bit-flipped"])
def test_aggregating_a_damaged_trace_stops_with_one_line_naming_it(finished, damage, tmp_path):
    _, _, _, pristine = finished
    out, victim = damaged_copy(pristine, tmp_path, 0, damage)
    (run_dir,) = out.glob("t2t-*")
    result = artifact("aggregate", "--results", str(run_dir), "--resamples", "50")
    assert_one_line_error(result, str(victim), "damaged", "Delete it and rerun")
    assert not (run_dir / "aggregate" / "aie.json").exists()


def test_a_bit_flip_in_any_byte_of_an_array_is_found(tmp_path):
    """CRC-32 per member: every single-bit flip inside the stored arrays is detected (checked at each byte of a
    small trace-like file's data)."""
    from artifact.core.fileio import npz_problem

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
    from artifact.core.fileio import DamagedFileError, npz_problem
    from artifact.analysis.carryover_document import load_fact_files
    from artifact.core.layout import carryover_fact_path

    path = carryover_fact_path(tmp_path, 7)
    write_npz_atomic(path, {"knockout_prob": np.ones((2, 3)), "known_id": np.asarray("7")})
    assert npz_problem(path) is None
    truncate(path)
    with pytest.raises(DamagedFileError, match="7.npz is damaged.*carry-over step computes it again"):
        load_fact_files(tmp_path, [7])


def test_a_damaged_speech_cache_entry_is_computed_again(tmp_path, caplog):
    """A bit-flipped or truncated entry fails its sha256 and is replaced; an entry from before digests (none
    stored) is still read."""
    from artifact.speech.cache import SpeechCache

    cache = SpeechCache(tmp_path)
    calls = []

    def compute():
        calls.append(1)
        return np.arange(64, dtype=np.float32)

    first = cache.array("audio", "ab" * 32, compute)
    entry = cache.path("audio", "ab" * 32, "npy")
    flip_bit(entry, 0.9)  # in the float data: still a loadable .npy, with one wrong number
    again = cache.array("audio", "ab" * 32, compute)
    assert len(calls) == 2 and np.array_equal(first, again) and "is damaged" in caplog.text
    assert cache.array("audio", "ab" * 32, compute) is not None and len(calls) == 2  # replaced: a hit now
    truncate(cache.path("audio", "ab" * 32, "npy"))
    cache.array("audio", "ab" * 32, compute)
    assert len(calls) == 3
    value = cache.json("words", "cd" * 32, lambda: {"w": [1, 2]})
    cache.path("words", "cd" * 32, "json").with_name("cd" * 32 + ".json.sha256").unlink()  # an older entry
    assert cache.json("words", "cd" * 32, lambda: pytest.fail("recomputed")) == value


def test_a_damaged_cached_model_folder_is_found(tmp_path):
    """The model cache's record (sha256, size, mtime per file): a truncated file, a rewritten one with a flipped
    bit, or a missing one is named; an intact folder costs no read of its files."""
    from artifact.models.loading import cached_folder_problem, write_folder_digests

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 64)
    (folder / "config.json").write_text("{}")
    write_folder_digests(folder)
    assert cached_folder_problem(folder) is None
    flip_bit(folder / "model.safetensors")
    assert "differs from its recorded sha256" in cached_folder_problem(folder)
    truncate(folder / "model.safetensors")
    assert "bytes" in cached_folder_problem(folder) and "were written" in cached_folder_problem(folder)
    (folder / "model.safetensors").unlink()
    assert "model.safetensors is missing" in cached_folder_problem(folder)


@pytest.mark.slow
def test_a_half_written_dequantised_model_is_rebuilt(tmp_path):
    """A copy of the real cache whose model.safetensors lost its second half (and a temporary folder of a killed
    dequantisation beside it): loading warns, dequantises again and gives the same weights."""
    import subprocess
    import sys

    from artifact.models.loading import cached_folder_problem, embedded_model_dir
    from tests.support.faults import ENV, REPO

    original = embedded_model_dir()
    cache = tmp_path / "cache"
    copy = cache / "embedded" / original.name
    shutil.copytree(original, copy)
    (cache / "embedded" / ".tmp-killed").mkdir()
    truncate(copy / "model.safetensors")
    code = "from artifact.models.loading import embedded_model_dir; print(embedded_model_dir())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**ENV, "ARTIFACT_CACHE_DIR": str(cache)},
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    assert "is damaged" in done.stderr and "dequantising it again" in done.stderr
    assert cached_folder_problem(copy) is None
    from safetensors.numpy import load_file

    rebuilt, reference = load_file(copy / "model.safetensors"), load_file(original / "model.safetensors")
    assert sorted(rebuilt) == sorted(reference)
    for name in reference:
        assert np.array_equal(rebuilt[name], reference[name]), name


def test_a_damaged_step_log_is_set_aside_and_every_step_runs_again(tmp_path, capsys):
    from artifact.experiments.pipeline import StepLog

    log = StepLog.load(tmp_path / "steps.json")
    log.start("known")
    log.record("known", 1.0, {"selection.json": "0" * 64})
    truncate(tmp_path / "steps.json")
    again = StepLog.load(tmp_path / "steps.json")
    assert not again.done("known") and "steps.json is damaged; every step runs again" in capsys.readouterr().out


def test_a_rerun_removes_the_temporary_files_a_killed_run_left(tmp_path):
    """Found by the kill run: a SIGKILL in the figures step left a figure's `.tmp-` file. A rerun (holding the
    results lock) removes them, except in trace folders, which the runner cleans under its own lock."""
    from artifact.experiments.pipeline import remove_stale_temporaries

    left = [tmp_path / "runs" / "t2t-x" / "figures" / ".tmp-aie.pdf.abc", tmp_path / "comparison" / ".tmp-c.json.1",
            tmp_path / "carryover" / "facts" / ".tmp-3.npz.2"]
    kept = tmp_path / "runs" / "t2t-x" / "traces" / "mlp" / ".tmp-4.npz.3"
    for path in [*left, kept]:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    remove_stale_temporaries(tmp_path)
    assert not any(path.exists() for path in left) and kept.exists()
