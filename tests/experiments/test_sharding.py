"""Scale-out by sharding: the assignment rule, shard detection from torchrun and SLURM environments, per-shard locks
and plans in one shared folder, `merge`, and the acceptance test: two real CPU processes (by --shard and by torchrun's
environment) give exactly the aggregate of a single-process run with the same batch size."""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from artifact.analysis import aggregate as agg
from artifact.core.layout import ResultsFolderError, plan_path, result_path
from artifact.core.settings import RunSettings
from artifact.core.trace_settings import TraceSettings
from artifact.experiments.merge import MergeError, merge_runs
from artifact.experiments.runner import open_run_dir, run_items, run_lock, save_known
from artifact.experiments.sharding import (
    Shard,
    ShardError,
    device_from_env,
    ids_fingerprint,
    resolve_shard,
    shard_from_env,
)
from artifact.models import ModelAdapter
from artifact.prompts.build import TracePrompt
from tests.support.tiny_runs import IdTokenizer, StandInFact, TinyLoaded

REPO = Path(__file__).resolve().parents[2]

# ------------------------------------------------------------------------------------------------------ the rule


def test_shards_are_disjoint_covering_balanced_and_deterministic():
    ids = [7, 3, "b", 12, 0, "a", 5, 41, 2, 9, 100, "10x"]
    for count in (1, 2, 3, 5, 12, 20):
        parts = [Shard(i, count).select(ids) for i in range(count)]
        flat = [x for part in parts for x in part]
        assert sorted(map(str, flat)) == sorted(map(str, ids)) and len(flat) == len(ids)  # disjoint and covering
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 1  # balanced
        assert parts == [Shard(i, count).select(list(ids)) for i in range(count)]  # deterministic
    # sorted: 0 2 3 5 7 9 12 41 100 10x a b; shard 0 of 3 takes sorted positions 0, 3, 6, 9, kept in given order
    assert Shard(0, 3).select(ids) == [12, 0, 5, "10x"]
    assert Shard(0, 3).select([(i, f"p{i}") for i in ids], key=lambda item: item[0]) == [
        (12, "p12"), (0, "p0"), (5, "p5"), ("10x", "p10x")]


def test_assignment_is_independent_of_input_order():
    ids = list(range(40)) + [f"id-{i}" for i in range(9)]
    rng = np.random.default_rng(0)
    for count in (2, 3, 7):
        expected = [set(map(str, Shard(i, count).select(ids))) for i in range(count)]
        for _ in range(5):
            shuffled = [ids[i] for i in rng.permutation(len(ids))]
            assert [set(map(str, Shard(i, count).select(shuffled))) for i in range(count)] == expected
            selected = Shard(1, count).select(shuffled)
            assert selected == [x for x in shuffled if str(x) in expected[1]]  # keeps the given order
    assert ids_fingerprint(ids) == ids_fingerprint(list(reversed(ids))) != ids_fingerprint(ids[:-1])


@pytest.mark.parametrize("spec, message", [("3/3", "index must be in 0..2"), ("0/0", "count must be >= 1"),
                                           ("1", "written I/N"), ("a/b", "written I/N"), ("-1/2", "written I/N"),
                                           ("", "written I/N")])
def test_bad_shard_specs_give_clear_errors(spec, message):
    with pytest.raises(ShardError, match=message):
        Shard.parse(spec)


def test_shard_validation_and_names():
    assert Shard.parse(" 2 / 8 ") == Shard(2, 8) and Shard(2, 8).name == "shard-2-of-8" and str(Shard(2, 8)) == "2/8"
    with pytest.raises(ShardError, match="integer"):
        Shard(0.0, 2)
    assert Shard(0, 1).whole and resolve_shard("0/1", {"RANK": "1", "WORLD_SIZE": "2"}) is None  # 0/1 forces all


# --------------------------------------------------------------------------------------------------- environment


def test_env_detection_torchrun_slurm_and_both():
    assert shard_from_env({}) is None
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}) == Shard(1, 4)
    assert shard_from_env({"RANK": "0", "WORLD_SIZE": "1"}) is None  # one process: the whole run
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "3"}) == Shard(2, 3)
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "3"}) == Shard(2, 4)  # --array=3-6
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "14", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_MIN": "10",
                           "SLURM_ARRAY_TASK_STEP": "2"}) == Shard(2, 4)  # --array=10-16:2
    both = {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "2", "RANK": "2", "WORLD_SIZE": "4"}
    assert shard_from_env(both) == Shard(6, 8)  # torchrun inside each array task
    assert resolve_shard("1/3", both) == Shard(1, 3)  # the flag wins
    assert resolve_shard(None, both) == Shard(6, 8)
    if not torch.cuda.is_available():
        assert device_from_env({"LOCAL_RANK": "1"}) is None  # CPU: the default device
    assert device_from_env({}) is None


@pytest.mark.parametrize("env, message", [
    ({"RANK": "1"}, "RANK and WORLD_SIZE must be set together"),
    ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK=4, WORLD_SIZE=4"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x' is not an integer"),
    ({"SLURM_ARRAY_TASK_ID": "0"}, "SLURM_ARRAY_TASK_COUNT is unset"),
    ({"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_MIN": "1"}, "not a contiguous"),
    ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "3", "SLURM_ARRAY_TASK_STEP": "2"}, "not on the range"),
])
def test_bad_environments_give_clear_errors(env, message):
    with pytest.raises(ShardError, match=message):
        shard_from_env(env)


def test_cli_rejects_a_bad_shard_flag(capsys):
    from artifact.cli import main

    with pytest.raises(SystemExit):
        main(["run", "--shard", "2/2"])
    assert "index must be in 0..1" in capsys.readouterr().err


# ------------------------------------------------------------------------------------- in-process runs (fast)


def settings() -> RunSettings:
    return RunSettings(arm="t2t", model="tiny", dtype="torch.float32", device="cpu", facts_fingerprint="f" * 64,
                       noise_spec="0.5", noise=0.5, trace=TraceSettings(samples=2, window=3, seed=1, batch_size=16))


@pytest.fixture(scope="module")
def loaded_items(llama_tiny):
    specs = [([5, 17, 42, 8, 33, 61, 2], (2, 5)), ([7, 3, 11, 19, 23], (1, 2)), ([44, 45, 46, 12, 13], (0, 2)),
             ([9, 8, 7, 6, 5, 4], (3, 6)), ([21, 22, 23, 24, 25], (1, 3))]
    items = []
    for i, (ids, subject) in enumerate(specs):
        with torch.no_grad():
            target = int(llama_tiny(torch.tensor([ids])).logits[0, -1].argmax())
        prompt = TracePrompt(text=f"prompt {i}", input_ids=tuple(ids), subject_range=subject, target_id=target,
                             modality="text")
        items.append((StandInFact(30 - 3 * i, f"s{i}", f"a{i}", f"prompt {i}"), prompt))
    return TinyLoaded("tiny", llama_tiny, IdTokenizer(), ModelAdapter(llama_tiny)), items


JOBS = ("hidden", "mlp", "severed")


def aggregate_outputs(run_dir: Path) -> tuple[bytes, dict[str, np.ndarray], list]:
    """aggregate_run on the kinds present: aie.csv bytes, group_effects.npz arrays, the JSON rows."""
    kinds = tuple(k for k in ("hidden", "mlp", "attn") if (run_dir / "traces" / k).is_dir())
    doc = agg.aggregate_run(run_dir, kinds=kinds, n_resamples=200)
    with np.load(run_dir / "aggregate" / "group_effects.npz") as data:
        arrays = {name: data[name] for name in data.files}
    return (run_dir / "aggregate" / "aie.csv").read_bytes(), arrays, [doc["rows"], doc["severed_rows"]]


def assert_same_aggregate(a, b):
    assert a[0] == b[0]  # aie.csv bytes
    assert a[1].keys() == b[1].keys()
    for name in a[1]:
        assert a[1][name].dtype == b[1][name].dtype, name
        np.testing.assert_array_equal(a[1][name], b[1][name], err_msg=name)  # NaN == NaN, otherwise bitwise
        assert a[1][name].tobytes() == b[1][name].tobytes(), name
    assert a[2] == b[2] or json.dumps(a[2]) == json.dumps(b[2])


def test_shards_in_one_folder_aggregate_to_the_single_run(loaded_items, tmp_path):
    loaded, items = loaded_items
    single = open_run_dir(tmp_path / "single", settings())
    run_items(loaded, items, settings(), single, JOBS, progress=False)
    sharded = open_run_dir(tmp_path / "sharded", settings())
    computed = []
    for index in (2, 0, 1):
        summary = run_items(loaded, list(reversed(items)) if index else items, settings(), sharded, JOBS,
                            progress=False, shard=Shard(index, 3))
        assert summary.shard == Shard(index, 3) and not summary.skipped
        computed += summary.computed
    assert sorted(computed, key=str) == sorted(((f.known_id, j) for j in JOBS for f, _ in items), key=str)
    assert not (sharded / "plan.json").exists()
    plans = [json.loads(plan_path(sharded, Shard(i, 3).name).read_text()) for i in range(3)]
    # ids 30 27 24 21 18 sorted 18 21 24 27 30: shard 0 {18, 27}, 1 {21, 30}, 2 {24}, each in its given order
    assert [p["known_ids"] for p in plans] == [[27, 18], [21, 30], [24]]
    assert [p["shard"] for p in plans] == ["0/3", "1/3", "2/3"] and all(len(p["all_known_ids"]) == 5 for p in plans)
    assert {p["all_ids_sha256"] for p in plans} == {ids_fingerprint([f.known_id for f, _ in items])}
    assert_same_aggregate(aggregate_outputs(single), aggregate_outputs(sharded))
    again = run_items(loaded, items, settings(), sharded, JOBS, progress=False, shard=Shard(1, 3))  # resume
    assert not again.computed and len(again.skipped) == 2 * len(JOBS)


def test_missing_results_come_from_every_shard_plan(loaded_items, tmp_path):
    loaded, items = loaded_items
    run_dir = open_run_dir(tmp_path, settings())
    run_items(loaded, items, settings(), run_dir, ("hidden",), progress=False, shard=Shard(0, 2))
    mine = json.loads(plan_path(run_dir, Shard(0, 2).name).read_text())["known_ids"]
    missing = agg._missing(run_dir, {}, None)
    assert set(missing) == {"hidden"} and sorted(missing["hidden"]) == sorted(
        f.known_id for f, _ in items if f.known_id not in mine)  # shard 1 never ran: its facts are missing
    assert agg._missing(run_dir, {}, [mine[0]]) == {}


def test_aggregate_warns_when_shards_planned_different_fact_lists(loaded_items, tmp_path, caplog):
    loaded, items = loaded_items
    run_dir = open_run_dir(tmp_path, settings())
    run_items(loaded, items, settings(), run_dir, ("hidden",), progress=False, shard=Shard(0, 2))
    run_items(loaded, items[:3], settings(), run_dir, ("hidden",), progress=False, shard=Shard(1, 2))  # other --limit
    with caplog.at_level("WARNING"):
        agg._missing(run_dir, {}, None)
    assert "planned different fact lists" in caplog.text


def test_locks_let_shards_share_a_folder_but_not_a_shard(loaded_items, tmp_path):
    loaded, items = loaded_items
    run_dir = open_run_dir(tmp_path, settings())
    with run_lock(run_dir, Shard(0, 2)):
        with run_lock(run_dir, Shard(1, 2)):  # another shard of the same run: fine
            pass
        with pytest.raises(ResultsFolderError, match="shard 0/2 is already running"):
            with run_lock(run_dir, Shard(0, 2)):
                pass
        with pytest.raises(ResultsFolderError, match="in use by another run"):
            with run_lock(run_dir):
                pass
        with pytest.raises(ResultsFolderError, match="another number of shards"):
            with run_lock(run_dir, Shard(1, 3)):
                pass
    with run_lock(run_dir):
        with pytest.raises(ResultsFolderError, match="in use by an unsharded run"):
            with run_lock(run_dir, Shard(1, 2)):
                pass
    with run_lock(run_dir, Shard(1, 3)):  # the 2-way run has finished: another split is fine now
        pass


def test_a_filesystem_without_locks_gives_an_error_naming_the_way_out(tmp_path, monkeypatch):
    import errno

    def no_locks(handle, mode):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(ResultsFolderError, match="does not support file locks.*merge"):
        with run_lock(tmp_path, Shard(0, 2)):
            pass


def test_a_shard_removes_only_its_own_stale_temporary_files(loaded_items, tmp_path):
    loaded, items = loaded_items
    run_dir = open_run_dir(tmp_path, settings())
    ids = [f.known_id for f, _ in items]
    ours, theirs = Shard(0, 2).select(ids), Shard(1, 2).select(ids)
    own_tmp = result_path(run_dir, "hidden", ours[0]).with_name(f".tmp-{ours[0]}.npz.abc")
    other_tmp = result_path(run_dir, "hidden", theirs[0]).with_name(f".tmp-{theirs[0]}.npz.abc")
    for path in (own_tmp, other_tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"partial")
    run_items(loaded, items, settings(), run_dir, ("hidden",), progress=False, shard=Shard(0, 2))
    assert not own_tmp.exists() and other_tmp.exists()  # the other shard may be writing it right now
    run_items(loaded, items, settings(), run_dir, ("hidden",), progress=False)  # unsharded: cleans all
    assert not other_tmp.exists()


def test_known_file_is_written_once_and_must_agree(tmp_path):
    @dataclass
    class Check:
        known_id: int
        known: bool
        p_answer: float

    path = save_known(tmp_path, "rule", "text", [Check(1, True, 0.5), Check(2, False, 0.1)])
    first = path.read_bytes()
    save_known(tmp_path, "rule", "text", [Check(1, True, 0.5000001), Check(2, False, 0.1)])  # last bits may differ
    assert path.read_bytes() == first
    with pytest.raises(ResultsFolderError, match="disagrees"):
        save_known(tmp_path, "rule", "text", [Check(1, True, 0.5), Check(2, True, 0.6)])


def test_merge_of_separate_shard_folders_equals_the_single_run(loaded_items, tmp_path):
    loaded, items = loaded_items
    single = open_run_dir(tmp_path / "single", settings())
    run_items(loaded, items, settings(), single, JOBS, progress=False)
    parts = []
    for index in range(2):
        part = open_run_dir(tmp_path / f"part{index}", settings())
        run_items(loaded, items, settings(), part, JOBS, progress=False, shard=Shard(index, 2))
        save_known(part, "rule", "text", [])
        parts.append(part)
    into = tmp_path / "merged" / single.name
    report = merge_runs(into, [parts[0].parent, parts[1]])  # a root holding one run folder is fine too
    assert sum(n for k, n in report.copied.items() if k.startswith("traces/")) == len(items) * len(JOBS)
    assert report.copied["plans"] == 2 and report.copied["known.json"] == 1 and report.identical["known.json"] == 1
    assert_same_aggregate(aggregate_outputs(single), aggregate_outputs(into))
    again = merge_runs(into, parts)  # idempotent: everything is there already
    assert not again.copied and sum(again.identical.values()) == len(items) * len(JOBS) + 2 + 2

    # A conflicting duplicate (same fact and job, other numbers) stops the merge before anything is copied.
    victim = next((parts[1] / "traces" / "hidden").glob("*.npz"))
    (parts[0] / "traces" / "hidden" / victim.name).write_bytes(victim.read_bytes() + b"x")
    fresh = tmp_path / "fresh"
    with pytest.raises(MergeError, match="1 conflicting duplicate"):
        merge_runs(fresh, parts)
    assert not fresh.exists()
    other = open_run_dir(tmp_path / "other", RunSettings.from_dict({**settings().to_dict(), "samples": 3}))
    with pytest.raises(MergeError, match="other settings"):
        merge_runs(tmp_path / "fresh2", [parts[1], other])


# ------------------------------------------------------------------------ acceptance: real processes, one folder


@pytest.fixture(scope="module")
def model_folder_and_facts(tmp_path_factory) -> tuple[Path, Path, int]:
    """A tiny seeded Llama saved with the embedded SmolLM2 tokenizer, and facts it knows (its own predictions) and
    does not know."""
    from tests.support.tiny_runs import tiny_model_with_known_facts

    subjects = ["Paris", "Berlin", "Madrid", "Rome", "Vienna", "Oslo", "Lisbon", "Dublin", "Prague", "Warsaw",
                "Athens", "Cairo"]
    folder, facts, known = tiny_model_with_known_facts(
        tmp_path_factory.mktemp("shardlm") / "tiny", [(s, "{} is a city in", "P131") for s in subjects],
        seed=1, layers=3, max_known=6)
    assert known >= 3, "the tiny model must know a few facts for this test"
    return folder, facts, min(known, LIMIT)


LIMIT = 5


def run_command(folder: Path, facts: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "artifact", "run", "--model", str(folder), "--facts", str(facts), "--kinds",
            "hidden", "--samples", "2", "--window", "3", "--batch-size", "8", "--limit", str(LIMIT), "--out", str(out),
            "--no-progress", *extra]


@pytest.fixture(scope="module")
def pycache(tmp_path_factory) -> Path:
    """A private bytecode cache for the subprocesses: with PYTHONDONTWRITEBYTECODE set, every process would compile
    transformers from source again (about 10 s of CPU each); the first process fills it, the others reuse it."""
    return tmp_path_factory.mktemp("pycache")


def clean_env(pycache: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess: one thread, no shard variables of our own environment, `extra` added."""
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                                            "PYTHONDONTWRITEBYTECODE") and not k.startswith("SLURM_")}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
            "PYTHONPYCACHEPREFIX": str(pycache), **extra}


def run_together(commands: list[tuple[list[str], dict[str, str]]]) -> list[str]:
    """Start every command at once, wait for all; their stdout (a failure shows the stderr)."""
    processes = [subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for cmd, env in commands]
    outputs = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr
        outputs.append(stdout)
    return outputs


def the_run(out: Path) -> Path:
    (folder,) = [p for p in out.iterdir() if p.is_dir()]
    return folder


@pytest.fixture(scope="module")
def single_run(model_folder_and_facts, pycache, tmp_path_factory) -> tuple[Path, tuple]:
    """The reference: one process traces every fact (it also fills the bytecode cache); its folder and aggregate."""
    folder, facts, n = model_folder_and_facts
    out = tmp_path_factory.mktemp("single")
    (output,) = run_together([(run_command(folder, facts, out), clean_env(pycache))])
    assert f"{n} results computed, 0 already present, " in output
    return the_run(out), aggregate_outputs(the_run(out))


def test_two_processes_in_one_folder_give_exactly_the_single_process_aggregate(model_folder_and_facts, pycache,
                                                                               single_run, tmp_path):
    folder, facts, n = model_folder_and_facts
    reference, expected = single_run
    # Two shards started by flag, at once, into one shared folder.
    outputs = run_together([(run_command(folder, facts, tmp_path, "--shard", "0/2"), clean_env(pycache)),
                            (run_command(folder, facts, tmp_path, "--shard", "1/2"), clean_env(pycache))])
    assert f"{(n + 1) // 2} results computed, 0 already present (shard 0/2)" in outputs[0]
    assert f"{n // 2} results computed, 0 already present (shard 1/2)" in outputs[1]
    run_dir = the_run(tmp_path)
    assert run_dir.name == reference.name and not (run_dir / "plan.json").exists()
    assert sorted(p.name for p in (run_dir / "plans").iterdir()) == ["shard-0-of-2.json", "shard-1-of-2.json"]
    assert (run_dir / "known.json").read_bytes() == (reference / "known.json").read_bytes()
    assert_same_aggregate(expected, aggregate_outputs(run_dir))
    assert json.loads((run_dir / "aggregate" / "aie.json").read_text())["missing"] == {}


@pytest.mark.slow
def test_torchrun_environment_shards_in_separate_folders_merge_to_the_single_run(model_folder_and_facts, pycache,
                                                                                 single_run, tmp_path):
    folder, facts, n = model_folder_and_facts
    reference, expected = single_run
    # Two shards named by torchrun's environment (no flag), each in its own folder, joined by the `merge` command.
    outputs = run_together([(run_command(folder, facts, tmp_path / f"rank{r}"),
                             clean_env(pycache, RANK=str(r), WORLD_SIZE="2", LOCAL_RANK=str(r))) for r in range(2)])
    assert "(shard 0/2)" in outputs[0] and "(shard 1/2)" in outputs[1]
    merged = subprocess.run([sys.executable, "-m", "artifact", "merge", "--into", str(tmp_path / "merged"),
                             str(tmp_path / "rank0"), str(tmp_path / "rank1")], cwd=REPO, env=clean_env(pycache),
                            capture_output=True, text=True, timeout=300)
    assert merged.returncode == 0, merged.stderr
    assert f"{n} result files copied (hidden {n})" in merged.stdout
    assert (tmp_path / "merged" / "known.json").read_bytes() == (reference / "known.json").read_bytes()
    assert_same_aggregate(expected, aggregate_outputs(tmp_path / "merged"))
    assert json.loads((tmp_path / "merged" / "aggregate" / "aie.json").read_text())["missing"] == {}
