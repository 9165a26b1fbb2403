"""The whole pipeline behind `run_all.sh`: facts -> known filters (text and speech) -> T->T and S->T traces ->
aggregates -> comparison -> carry-over analyses -> figures -> manifest -> verdict (`verify.py`).

The pipeline is a table of steps (`STEPS`) over one run object (`PipelineRun`). Each step prints a banner and its wall
time, is recorded in `<results>/steps.json`, and is skipped on a rerun once done (the trace steps also resume fact by
fact inside, through the runner). Each arm is prepared once per process (prompts, noise, Known filter) and traced
later. Profiles fix the scale (`profiles.py`); `choice.py` picks the models and front end and says so in one line.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from artifact.analysis import corruption_document, transcription_document
from artifact.core.fileio import (
    TMP_PREFIX,
    DamagedFileError,
    DiskFullError,
    is_disk_full,
    read_json,
    sha256_file,
    write_json_atomic,
)
from artifact.core.layout import (
    COMPARISON_DIR,
    COMPARISON_FILE,
    CORRUPTION_DIR,
    FIGURES_DIR,
    PIPELINE_FILE,
    REPORT_HTML,
    REPORT_MD,
    RESULTS_LOCK_FILE,
    RUNS_DIR,
    SELECTION_FILE,
    STEPS_FILE,
    TRANSCRIPTION_DIR,
    VERIFY_DIR,
    ResultsFolderError,
)
from artifact.core.names import OPTIONAL_STEPS
from artifact.core.results import SUBSETS_KEY, ResultsFolder
from artifact.core.settings import load_settings
from artifact.core.speechtext import resolve, speech_text_model
from artifact.experiments.choice import ModelChoice, select_model
from artifact.experiments.corruption import corruption_settings, run_corruption
from artifact.experiments.cost import (
    PromptShape,
    amount,
    describe_estimate,
    disk_bytes,
    estimate,
    model_shape,
    total_seconds,
    weight_bytes,
)
from artifact.experiments.profiles import PROFILES, Profile
from artifact.experiments.selection import candidates, describe, select_facts
from artifact.experiments.transcription import run_transcription
from artifact.facts import (
    KNOWN_1000_FINGERPRINT,
    KNOWN_1000_RECORDS,
    OWN_FACTS_PATH,
    SOURCES,
    facts_fingerprint,
    load_facts,
)
from artifact.manifest import collect_manifest, model_fingerprints, unit_tokenizer_fingerprint, write_manifest
from artifact.report.html import write_report_html

REPO_ROOT = Path(__file__).resolve().parents[2]
# Profile fields added after results folders existed; each only configures a step that comes later (carryover), so
# an older folder takes the current value once and resumes.
LATER_PROFILE_FIELDS: tuple[str, ...] = ("carryover", "corruption")
# Profile fields that describe rather than define a run (rewording them must not orphan a results folder).
DESCRIPTIVE_PROFILE_FIELDS: tuple[str, ...] = ("purpose", "budget", "description")


# Files of a results folder that no step's digests cover: the step log itself, the folder's identity (checked on
# its own by `check_results_folder`), locks and temporary files (dot-files), and what is rewritten after the steps on
# every run (verify.py's report, report.html).
UNTRACKED: tuple[str, ...] = (STEPS_FILE, PIPELINE_FILE, VERIFY_DIR, REPORT_HTML)
CLOCK_SLACK_NS = 1_000_000_000  # file times come from a coarse kernel clock: a step owns files from 1 s before it began


class EmptySelectionError(ValueError):
    """The Known filter left no fact to trace; the run stops before the traces."""


@dataclass
class StepLog:
    """steps.json: per step, done or not, its wall time and the sha256 of every file it wrote; lets a rerun skip
    finished steps and find files that changed since."""

    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "StepLog":
        """The step log at `path`; a damaged one (truncated, not JSON) is set aside with a note and every step runs
        again (finished traces and carry-over facts are still reused, after their own checks)."""
        if not path.is_file():
            return cls(path, {})
        try:
            steps = read_json(path)
            if not isinstance(steps, dict) or not all(isinstance(v, dict) for v in steps.values()):
                raise DamagedFileError(path, "not a step log")
        except DamagedFileError as error:
            print(f"note: {error.path} is damaged; every step runs again (finished facts are kept)", flush=True)
            return cls(path, {})
        return cls(path, steps)

    def done(self, name: str) -> bool:
        return bool(self.steps.get(name, {}).get("done"))

    def start(self, name: str) -> None:
        """Mark `name` started (kept across a kill, so its files from the killed attempt are its own too) and count
        the attempt: an attempt that was killed never recorded its time, and `record` says how many were."""
        entry = self.steps.setdefault(name, {})
        if entry.get("done") or "started_ns" not in entry:
            entry["started_ns"] = time.time_ns()
            entry["attempts"] = 0
        elif "attempts" not in entry:  # started by a version that did not count attempts: one attempt at least
            entry["attempts"] = 1
        entry["attempts"] += 1
        entry["done"] = False
        write_json_atomic(self.path, self.steps)

    def untimed(self, name: str) -> int:
        """How many attempts at `name` were stopped before they finished, so that their time is not in its seconds."""
        return int(self.steps.get(name, {}).get("untimed_attempts", 0))

    def reopen(self, name: str) -> None:
        """Mark a finished step not done (its files were removed and this run does not make them again)."""
        self.steps.setdefault(name, {})["done"] = False
        write_json_atomic(self.path, self.steps)

    def record(self, name: str, seconds: float, files: dict[str, str] | None = None, **extra: Any) -> None:
        entry = self.steps.get(name, {})
        previous = entry.get("seconds", 0.0)
        untimed = int(entry.get("untimed_attempts", 0)) + max(int(entry.get("attempts", 1)) - 1, 0)
        self.steps[name] = {"done": True, "seconds": round(previous + seconds, 1), **extra}
        if untimed:
            self.steps[name]["untimed_attempts"] = untimed
        if "started_ns" in entry:
            self.steps[name]["started_ns"] = entry["started_ns"]
        if files is not None:
            self.steps[name]["files"] = files
        write_json_atomic(self.path, self.steps)

    def damaged(self, root: Path, order: list[str]) -> tuple[int | None, list[str]]:
        """Files that differ from the sha256 their last writer recorded (or are gone), and the index in `order` of
        the first finished step that wrote any of them (None: nothing damaged)."""
        expected: dict[str, str] = {}
        first: dict[str, int] = {}
        for index, name in enumerate(order):
            if self.done(name):
                for rel, digest in (self.steps[name].get("files") or {}).items():
                    expected[rel] = digest
                    first.setdefault(rel, index)
        bad = []
        for rel, digest in expected.items():
            path = Path(root) / rel
            if not path.is_file():
                bad.append(f"{rel} (missing)")
            elif sha256_file(path) != digest:
                bad.append(f"{rel} (sha256 differs)")
        if not bad:
            return None, []
        return min(first[item.rsplit(" (", 1)[0]] for item in bad), bad


def tracked_files(root: Path) -> dict[str, Path]:
    """The files of a results folder that steps' digests cover (relative path -> path)."""
    root = Path(root)
    found = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if rel.parts[0] in UNTRACKED or any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        found[rel.as_posix()] = path
    return found


@contextlib.contextmanager
def results_lock(out: Path) -> Iterator[None]:
    """Hold `<out>/.run.lock` (flock, exclusive, not waiting) for one run: a second run on the same folder is refused
    with a message naming the holder. The OS releases the lock when its process dies, so a stale lock file from a
    killed run never blocks."""
    path = Path(out) / RESULTS_LOCK_FILE
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ResultsFolderError(
                f"{out} is in use by another run ({holder}); wait for it to finish, or pass another --out. Two runs "
                "in one folder would interleave their steps.") from None
        except OSError as exc:
            raise ResultsFolderError(f"cannot lock {path} ({exc.strerror}): this filesystem has no file locks; "
                                     "put the results on a local disk (--out)") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                         f"{' '.join(sys.argv)[:200]}\n")
            handle.flush()
        except OSError:
            pass  # the lock is held; the note only helps the message of a second run
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_results_folder(out: Path, identity: dict[str, Any]) -> None:
    """Record what a results folder holds (profile, model, front end) or check a rerun asks for the same: finished
    steps are skipped on a rerun, so results of other settings must never be taken for these."""
    path = out / PIPELINE_FILE
    if path.is_file():
        stored = read_json(path, "Delete it (or the whole folder to start over) and rerun the same command.")
        wanted = json.loads(json.dumps(identity))
        for key in LATER_PROFILE_FIELDS:  # a folder written before these fields existed has none of their steps
            if isinstance(stored.get("profile"), dict) and key not in stored["profile"] and key in wanted["profile"]:
                stored["profile"][key] = wanted["profile"][key]
                write_json_atomic(path, stored)
        if _defining(stored) != _defining(wanted):
            changed = sorted(k for k in identity if _defining(stored).get(k) != _defining(wanted).get(k))
            raise ValueError(f"{out} holds a pipeline run with other settings ({', '.join(changed)} differ); "
                             "pass another --out (or remove the folder to start over).")
    else:
        write_json_atomic(path, identity)


def _defining(identity: dict[str, Any]) -> dict[str, Any]:
    """A results folder's identity without the profile's descriptive fields."""
    profile = {k: v for k, v in (identity.get("profile") or {}).items() if k not in DESCRIPTIVE_PROFILE_FIELDS}
    return {**identity, "profile": profile} if "profile" in identity else identity


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(3, 100 - len(text)), flush=True)


@dataclass(frozen=True)
class Step:
    """One step of the pipeline: a name in steps.json, a title for the banner, and what it does to the run."""

    name: str
    title: str
    action: Callable[["PipelineRun"], None]
    always: bool = False  # run again on a rerun (the manifest records the latest state)


class PipelineRun:
    """One pipeline run: its profile, models and front end, results folder and step log; each arm prepared once."""

    def __init__(self, profile: Profile, choice: ModelChoice, out: Path, progress: bool = True,
                 facts_source: str | None = None, dtype: str | None = None,
                 known: dict[str, Sequence[str]] | None = None, left_out: Sequence[str] = ()) -> None:
        self.profile, self.choice, self.out, self.progress = profile, choice, Path(out), progress
        # steps this invocation does not run (OPTIONAL_STEPS, e.g. --no-corruption-choice); a finished one stays
        self.left_out = frozenset(left_out)
        # arm -> facts taken as known instead of running its Known filter (None: run it; bench/numerics_bound.py)
        self.known = known or {}
        self.facts_source = facts_source or profile.facts  # where the arms read the facts (a name or a path)
        self.dtype = dtype  # None: the model's default (fp32 embedded; bf16 SpiritLM on a GPU)
        self.steps = StepLog.load(self.out / STEPS_FILE)
        self.started = time.time()
        self._models: dict[str, Any] = {}
        self._prepared: dict[str, Any] = {}
        self.estimate: dict[str, Any] | None = None  # the cost model's latest estimate (recorded in the manifest)
        self.results = ResultsFolder(self.out)  # each arm's run folder found once, by the rule verify uses

    def model(self, spec: str) -> Any:
        """The loaded model of a spec, loaded once (both SpiritLM arms share one)."""
        from artifact.models import load_model  # lazy: torch

        if spec not in self._models:
            self._models[spec] = load_model(spec, dtype=torch_dtype(self.dtype))
        return self._models[spec]

    def request(self, arm: str) -> Any:
        """The arm's ArmRequest from the profile (and, for S->T, the chosen front end)."""
        from artifact.experiments.arms import ArmRequest  # lazy: torch
        from artifact.speech.front_end import FrontEndConfig  # lazy: numpy

        p = self.profile
        speech = arm == "s2t"
        return ArmRequest(facts=self.facts_source, out=self.out / RUNS_DIR, kinds=p.kinds, trace=p.trace,
                          positions=p.s2t_positions if speech else p.t2t_positions,
                          candidates=p.candidates if speech else None,
                          front_end=FrontEndConfig(**self.choice.front_end) if speech else None,
                          progress=self.progress)

    def prepared(self, arm: str) -> Any:
        """The arm prepared once per process: prompts, noise, run folder, Known filter (artifact.experiments.arms)."""
        from artifact.experiments.arms import prepare_arm  # lazy: torch

        if arm not in self._prepared:
            spec = self.choice.t2t_model if arm == "t2t" else self.choice.s2t_model
            self._prepared[arm] = prepare_arm(arm, self.model(spec), self.request(arm), self.known.get(arm))
        return self._prepared[arm]

    def selection(self) -> dict[str, Any]:
        return read_json(self.out / SELECTION_FILE)

    def run_dirs(self) -> tuple[Path, Path]:
        """(T->T, S->T) run folders, found by the results folder's one rule (`ResultsFolder.run_dir`)."""
        found = self.results.run_dirs()
        return found["t2t"], found["s2t"]

    def subsets(self) -> dict[str, list[str]]:
        """The S->T model's fact subsets as selection.json records them (added once to a folder from before they
        were recorded, so that it resumes)."""
        selection = self.selection()
        if SUBSETS_KEY not in selection:
            selection[SUBSETS_KEY] = speech_model_subsets(self)
            write_json_atomic(self.out / SELECTION_FILE, selection)
        return self.results.subsets()

    def check_finished(self, steps: tuple["Step", ...]) -> set[str]:
        """Names of finished steps to run again because a file they wrote is missing or changed; those files are
        removed first (a rerun writes them again), and the steps from the first one that wrote them on are redone."""
        order = [step.name for step in steps]
        first, bad = self.steps.damaged(self.out, order)
        if first is None:
            return set()
        for item in bad:
            (self.out / item.rsplit(" (", 1)[0]).unlink(missing_ok=True)
        shown = "; ".join(bad[:3]) + (f"; ... ({len(bad)} files)" if len(bad) > 3 else "")
        print(f"note: {len(bad)} file(s) changed or missing since their step finished ({shown}); removed, and the "
              f"steps from '{steps[first].title}' on run again (finished facts are kept)", flush=True)
        return set(order[first:])

    def perform(self, step: Step, number: int, total: int, redo: bool = False) -> None:
        """Run `step` unless it is done (then say so), timing it and recording it with the digests of its files."""
        title = f"{number}/{total} {step.title}"
        if self.steps.done(step.name) and not step.always and not redo:
            print(f"\n=== {title}: done in an earlier run, skipped ({self.steps.steps[step.name]['seconds']} s"
                  f"{_untimed_note(self.steps.untimed(step.name))})", flush=True)
            return
        if step.name in self.left_out:
            if self.steps.done(step.name):  # to redo (a file of it changed and was removed), but not made now
                self.steps.reopen(step.name)
            print(f"\n=== {title}: left out ({OPTIONAL_STEPS[step.name]}); verify.py says SKIP for its checks. To "
                  "add it later, rerun the same command with the same --out without that option: the finished "
                  "steps are kept", flush=True)
            return
        _banner(title)
        previous = set(self.steps.steps.get(step.name, {}).get("files") or {})
        self.steps.start(step.name)
        since = self.steps.steps[step.name]["started_ns"] - CLOCK_SLACK_NS
        t0 = time.time()
        step.action(self)
        seconds = time.time() - t0
        files = {rel: sha256_file(path) for rel, path in sorted(tracked_files(self.out).items())
                 if rel in previous or path.stat().st_mtime_ns >= since}
        self.steps.record(step.name, seconds, files)
        untimed = self.steps.untimed(step.name)
        attempt = f" in this attempt{_untimed_note(untimed)}" if untimed else ""
        print(f"--- {title}: {seconds:.0f} s{attempt} (elapsed {time.time() - self.started:.0f} s)", flush=True)


def _untimed_note(untimed: int) -> str:
    """', plus N attempt(s) stopped before finishing, not timed' (empty for none): a resumed step's seconds are
    only the attempts that finished, and a reader of the time must know it."""
    if not untimed:
        return ""
    return f", plus {untimed} earlier attempt{'s' if untimed > 1 else ''} stopped before finishing, not timed"


# -------------------------------------------------------------------------------------------------------- steps


def speech_model_subsets(run: PipelineRun) -> dict[str, list[str]]:
    """The S->T model's training and held-out facts of this run's fact file, from the training manifest its spec
    names (the embedded speech-text model's; {} for a model without, e.g. SpiritLM: one stratum). The known step
    records them in selection.json; the comparison, the carry-over statistics and verify read them from there
    (verify without torch, and unchanged if the shipped model is retrained later)."""
    manifest = speech_text_model(run.choice.name).training_manifest_path()
    if manifest is None:
        return {}
    from artifact.analysis.compare import split_from_manifest  # lazy: numpy

    return split_from_manifest(manifest, run.prepared("s2t").settings.facts_fingerprint)


def known_step(run: PipelineRun) -> None:
    """Both arms' Known filters; which facts are traced (selection.json: the rule of `selection.py` and its outcome)."""
    t2t, s2t = run.prepared("t2t"), run.prepared("s2t")
    t2t_ids, s2t_ids = [str(i) for i in t2t.known_ids], [str(i) for i in s2t.known_ids]
    both = [i for i in s2t_ids if i in set(t2t_ids)]
    p = run.profile
    subsets = speech_model_subsets(run)
    document = {"t2t_run": t2t.run_dir.name, "s2t_run": s2t.run_dir.name, "known_t2t": t2t_ids,
                "known_s2t": s2t_ids, "known_both": both, "paired_only": p.paired_only, "count": p.count,
                SUBSETS_KEY: subsets}
    if p.paired_only:
        held = subsets.get("held_out")
        prompts = {arm: {str(f.known_id): prompt for f, prompt in prepared.items}
                   for arm, prepared in (("t2t", t2t), ("s2t", s2t))}
        pool = candidates(t2t.records, prompts, both, held)
        share = p.held_out_share if held else 0.0
        chosen = select_facts(pool, p.count, share)
        document["traced"] = [c.known_id for c in chosen]
        document["selection"] = describe(chosen, pool, p.count, share)
        if len(chosen) < p.count:
            print(f"note: only {len(chosen)} facts are known in both arms; the profile asks for {p.count}")
        if held is not None:
            known_held = sum(c.stratum == "held_out" for c in pool)
            document["selection"]["held_out_listed"] = len(held)
            document["selection"]["held_out_known_both"] = known_held
            if known_held < round(p.count * p.held_out_share):
                print(f"note: {known_held} of the speech model's {len(held)} held-out facts of this file are known "
                      f"in both arms (the S->T Known filter keeps {sum(i in set(held) for i in s2t_ids)}); the "
                      f"held-out share ({p.held_out_share:.0%}) is filled with training facts")
    else:
        document["traced"] = "each arm's own known facts"
    counts = (f"Known-t2t {len(t2t_ids)} of {len(t2t.records)} facts, Known-s2t {len(s2t_ids)} of "
              f"{len(s2t.items)} spoken, known in both {len(both)}")
    if not t2t_ids or not s2t_ids or (p.paired_only and not document["traced"]):
        raise EmptySelectionError(
            f"the Known filter left no fact to trace ({counts}); stopping before the traces. The model does not "
            f"answer these facts: check the fact file ({p.facts}) and the model, or use a larger fact set.")
    write_json_atomic(run.out / SELECTION_FILE, document)
    print(f"Known-t2t {len(t2t_ids)}, Known-s2t {len(s2t_ids)} (of the facts spoken), known in both {len(both)}")
    if p.paired_only:
        selection = document["selection"]
        print(f"traced: {len(document['traced'])} facts over {len(selection['relations'])} relations "
              f"({', '.join(f'{k} {v}' for k, v in selection['strata'].items())}); all six token groups populated "
              f"for {selection['all_groups_populated']}")
        print(run_estimate(run, traced=document["traced"]))


def trace_step(arm: str) -> Callable[[PipelineRun], None]:
    """The trace step of `arm`: the selected facts (paired profiles) or each arm's own known facts up to the limit."""

    def action(run: PipelineRun) -> None:
        from artifact.experiments.arms import trace_arm  # lazy: torch

        ids = run.selection()["traced"] if run.profile.paired_only else None
        summary = trace_arm(run.prepared(arm), ids=ids)
        print(f"{len(summary.computed)} results computed, {len(summary.skipped)} already present -> "
              f"{summary.run_dir}")

    return action


def aggregate_step(run: PipelineRun) -> None:
    from artifact.analysis.aggregate import aggregate_run  # lazy: numpy

    for run_dir in run.run_dirs():
        document = aggregate_run(run_dir, kinds=run.profile.kinds)
        print(f"{run_dir.name}: facts per kind {document['n_facts']}")


def compare_step(run: PipelineRun) -> None:
    from artifact.analysis.compare import compare_runs  # lazy: numpy

    t2t_dir, s2t_dir = run.run_dirs()
    compare_runs(t2t_dir, s2t_dir, run.results.comparison_dir, kinds=run.profile.kinds, subsets=run.subsets())
    summary = run.results.summary_file
    if summary.is_file():
        print(summary.read_text())


def carryover_step(run: PipelineRun) -> None:
    """Cross-modal patching, attention knockout and logit lens on the facts known in both arms (the traced ones in
    paired profiles), each modality in its arm's model; statistics per fact set, the summary's carry-over section,
    figures."""
    from artifact.analysis.carryover_document import aggregate_carryover, write_summaries  # lazy: numpy
    from artifact.experiments.carryover import CarryOverSettings, run_carryover  # lazy: numpy
    from artifact.figures.carryover import plot_carryover  # lazy: matplotlib

    p = run.profile
    t2t, s2t = run.prepared("t2t"), run.prepared("s2t")
    selection = run.selection()
    wanted = selection["traced"] if p.paired_only else selection["known_both"]
    text = {str(f.known_id): (f, prompt) for f, prompt in t2t.items}
    speech = {str(f.known_id): prompt for f, prompt in s2t.items}
    pairs = [(text[i][0], {"text": text[i][1], "speech": speech[i]}) for i in map(str, wanted)
             if i in text and i in speech]
    if not pairs:
        print("no fact is known in both arms: nothing to measure")
        return
    settings = CarryOverSettings(models={"text": t2t.loaded.name, "speech": s2t.loaded.name},
                                 text_noise=t2t.settings.noise, speech_noise=s2t.settings.noise, trace=p.trace,
                                 plan=p.carryover)
    models = {"text": t2t.loaded, "speech": s2t.loaded}
    computed, reused = run_carryover(models, pairs, settings, run.out, run.progress)
    print(f"{len(computed)} facts computed, {len(reused)} already present ({', '.join(p.carryover.analyses)})")
    document = aggregate_carryover(run.results, [str(f.known_id) for f, _ in pairs], run.results.run_dirs(),
                                   run.subsets())
    write_summaries(run.results, document)
    figures = run.results.carryover_dir / FIGURES_DIR
    written = plot_carryover(document, figures)
    for name, entry in document["sets"].items():
        print(f"set {name} ({len(entry['known_ids'])} facts):")
        for sentence in entry["sentences"].values():
            print(f"  {sentence}")
    print(f"{len(written)} figures -> {figures}")


def measured_pairs(run: PipelineRun) -> list[tuple[Any, dict[str, Any]]]:
    """(fact, {modality: prompt}) of the facts the carry-over step measures (known in both arms; the traced ones in
    paired profiles), in its order: the facts of issue 30's steps."""
    t2t, s2t = run.prepared("t2t"), run.prepared("s2t")
    selection = run.selection()
    wanted = selection["traced"] if run.profile.paired_only else selection["known_both"]
    text = {str(f.known_id): (f, prompt) for f, prompt in t2t.items}
    speech = {str(f.known_id): prompt for f, prompt in s2t.items}
    return [(text[i][0], {"text": text[i][1], "speech": speech[i]}) for i in map(str, wanted)
            if i in text and i in speech]


def transcription_step(run: PipelineRun) -> None:
    """Implicit transcription (issue 30): the subject's text tokens read at its speech positions in the S->T model,
    every carry-over fact; the depth with its CI beside the recall effects, summary section, figure."""
    from artifact.figures.beyond import plot_transcription  # lazy: matplotlib

    pairs = measured_pairs(run)
    if not pairs:
        print("no fact is known in both arms: nothing to measure")
        return
    loaded = run.prepared("s2t").loaded
    computed, reused = run_transcription(loaded, pairs, {"model": loaded.name}, run.out, run.progress)
    print(f"{len(computed)} facts computed, {len(reused)} already present")
    document = transcription_document.aggregate_transcription(run.results, [str(f.known_id) for f, _ in pairs])
    transcription_document.write_summary(run.results, document)
    written = plot_transcription(document, run.out / TRANSCRIPTION_DIR / FIGURES_DIR)
    for k, sentence in document["sentences"].items():
        print(f"top {k}: {sentence}")
    print(f"{len(written)} figures -> {written[0].parent}")


def corruption_step(run: PipelineRun) -> None:
    """Corruption choice (issue 30): the first facts of the carry-over step (the profile's corruption plan) traced
    again with noise at other multiples of sigma and with token replacement; C1-C3 per corruption, the sentence on
    whether the conclusion depends on it, summary section, figure."""
    from artifact.figures.beyond import plot_corruption  # lazy: matplotlib

    plan = run.profile.corruption
    ids = plan.chosen_facts([str(f.known_id) for f, _ in measured_pairs(run)])
    if not ids:
        print("no fact to measure (none known in both arms, or the profile's corruption plan takes none)")
        return
    prepared = {arm: run.prepared(arm) for arm in ("t2t", "s2t")}
    kinds = plan.traced_kinds(run.profile.kinds)
    settings = corruption_settings(prepared, plan, kinds)
    computed, reused, pairing = run_corruption(prepared, ids, settings, run.out, run.progress)
    print(f"{len(computed)} (arm, fact) files computed, {len(reused)} already present; token replacement skipped "
          + ", ".join(f"{arm} {len(p['skipped'])} of {len(ids)}" for arm, p in pairing.items()))
    document = corruption_document.aggregate_corruption(run.results, ids, run.results.run_dirs())
    corruption_document.write_summary(run.results, document)
    written = plot_corruption(document, run.out / CORRUPTION_DIR / FIGURES_DIR)
    for sentence in document["sentences"].values():
        print(sentence)
    print(f"{len(written)} figures -> {written[0].parent}")


def figures_step(run: PipelineRun) -> None:
    from artifact.figures.comparison import plot_comparison  # lazy: matplotlib
    from artifact.figures.run import plot_run  # lazy: matplotlib

    for run_dir in run.run_dirs():
        written = plot_run(run_dir)
        print(f"{len(written)} figures -> {written[0].parent if written else run_dir}")
    document = json.loads((run.out / COMPARISON_DIR / COMPARISON_FILE).read_text())
    written = plot_comparison(document, run.out / COMPARISON_DIR)
    print(f"{len(written)} comparison figures -> {run.out / COMPARISON_DIR}")


def manifest_step(run: PipelineRun) -> None:
    t2t_settings, s2t_settings = (load_settings(d) for d in run.run_dirs())
    choice = run.choice
    models = {"t2t": model_fingerprints(choice.t2t_model), "s2t": model_fingerprints(choice.s2t_model)}
    data = collect_manifest(
        settings={"profile": run.profile.to_dict(), "model_choice": asdict(choice), "t2t": t2t_settings.to_dict(),
                  "s2t": s2t_settings.to_dict(), "selection": run.selection(), "facts_source": run.facts_source},
        model_fingerprints=models, facts_fingerprint=t2t_settings.facts_fingerprint,
        steps={name: entry.get("seconds", 0.0) for name, entry in run.steps.steps.items()},
        dtype=t2t_settings.dtype, batch_size=t2t_settings.trace.batch_size, device=t2t_settings.device,
        unit_tokenizer=unit_tokenizer_fingerprint(choice.front_end["unit_tokenizer"]),
    )
    data["profile"] = run.profile.name
    data["model_name"] = choice.name
    data["left_out"] = sorted(name for name in run.left_out if not run.steps.done(name))
    data["untimed_attempts"] = {name: run.steps.untimed(name) for name in run.steps.steps if run.steps.untimed(name)}
    data["cost_estimate"] = run.estimate
    write_manifest(run.out, data)


STEPS: tuple[Step, ...] = (
    Step("known", "known filters: T->T and S->T (speech front end)", known_step),
    Step("t2t", "T->T traces", trace_step("t2t")),
    Step("s2t", "S->T traces", trace_step("s2t")),
    Step("aggregate", "aggregates (bootstrap CIs over facts)", aggregate_step),
    Step("compare", "comparison T->T vs S->T", compare_step),
    Step("carryover", "carry-over: cross-modal patching, attention knockout, logit lens", carryover_step),
    Step("transcription", "implicit transcription: the subject's text at its speech positions", transcription_step),
    Step("corruption", "corruption choice: noise at 1, 3, 5 sigma and token replacement", corruption_step),
    Step("figures", "figures", figures_step),
    Step("manifest", "run manifest", manifest_step, always=True),
)


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False without torch)."""
    try:
        import torch  # lazy: torch

        return bool(torch.cuda.is_available())
    except ImportError:
        return False


def device_name() -> str:
    """The cost model's device for this machine: 'h100' when CUDA is available (an assumption), else 'cpu'."""
    return "h100" if cuda_available() else "cpu"


class CpuRefusedError(ValueError):
    """SpiritLM asked to run a large profile without a CUDA device; the message has the CPU estimate and the fixes."""


def check_device(choice: ModelChoice, profile: Profile, allow_cpu: bool = False,
                 has_cuda: Callable[[], bool] | None = None) -> str | None:
    """Refuse the profiles a model's spec does not list in `cpu_profiles` (SpiritLM's other than smoke: days in fp32
    on a CPU, ~27 GB of RAM) on a machine without CUDA, unless `allow_cpu`: CpuRefusedError with the cost model's
    CPU estimate. Returns a note to print when such a model runs on the CPU anyway (smoke, or --allow-cpu), else
    None. `has_cuda` (default `cuda_available`) is
    injectable for tests. The estimate is the cost model's for SpiritLM base 7B, whatever checkpoint is mounted."""
    spec = speech_text_model(choice.name)
    if spec.cpu_profiles is None or (has_cuda or cuda_available)():
        return None

    facts = None if profile.count is not None else {arm: KNOWN_1000_RECORDS for arm in ("t2t", "s2t")}
    est = estimate(profile, choice.name, "cpu", facts)
    ram = weight_bytes(model_shape(choice.name)) / 1e9
    hours = total_seconds(est) / 3600
    cost = (f"on the CPU {spec.description} runs in fp32 (about {ram:.0f} GB of RAM for its weights) and the "
            f"{profile.name} profile's traces take about {hours:.0f} h ({hours / 24:.1f} days)"
            + (f", all {KNOWN_1000_RECORDS} facts assumed known" if facts else "") + f": {describe_estimate(est)}")
    if profile.name in spec.cpu_profiles:
        return (f"note: no CUDA device; {spec.title} runs on the CPU because the {profile.name} profile only checks "
                f"the path ({cost}). Review and full refuse to start on a CPU without --allow-cpu.")
    if allow_cpu:
        return f"warning: no CUDA device, running {spec.title} on the CPU as asked (--allow-cpu): {cost}."
    raise CpuRefusedError(
        f"{spec.title}'s {profile.name} profile needs a CUDA GPU and torch sees none here: {cost}. Fix: give the "
        "container the GPU (docker run --gpus all ...), or run on a GPU node; or pass --allow-cpu to run on the CPU "
        f"anyway. The smoke profile (--profile smoke) checks the {spec.title} path on a CPU without it.")


def run_estimate(run: PipelineRun, traced: list[str] | None = None) -> str:
    """The cost model's estimate of the trace steps, from the real prompts of the traced facts when known."""
    prompts = None
    if traced is not None:  # in the traced order: the corruption choice takes the first facts of it
        prompts = {}
        for arm in ("t2t", "s2t"):
            shapes = {str(f.known_id): PromptShape(len(p.input_ids), p.subject_range[0],
                                                   p.subject_range[1] - p.subject_range[0])
                      for f, p in run.prepared(arm).items}
            prompts[arm] = [shapes[i] for i in map(str, traced) if i in shapes]
    profile = run.profile
    if "corruption" in run.left_out:  # the plan's "no fact": the estimate leaves the step out too
        profile = replace(profile, corruption=replace(profile.corruption, facts=0))
    est = estimate(profile, run.choice.name, device_name(), prompts=prompts)
    run.estimate = est
    return describe_estimate(est)


def resolve_facts(given: str | None, default: str) -> tuple[str, str]:
    """`--facts NAME_OR_PATH` against the profile's fact set: (where the arms read the facts, the name recorded as
    the profile's `facts`). The facts are loaded once here, so a missing file or a failed download stops the run
    before any model loads. A file whose content is ROME's known_1000.json (same fingerprint) or the project's own
    set is recorded under that name: the same experiment, wherever the file lies (an offline node's copy verifies
    against the recorded profile); any other file is recorded by its absolute path."""
    source = given or default
    facts = load_facts(source)
    if source in SOURCES:
        return source, source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"--facts {source}: no such file. Pass {' or '.join(SOURCES)} or the path of a JSON "
                                "file in ROME's known_1000 schema.")
    fingerprint = facts_fingerprint(facts)
    if fingerprint == KNOWN_1000_FINGERPRINT:
        return str(path.resolve()), "known_1000"
    if fingerprint == facts_fingerprint(load_facts(OWN_FACTS_PATH)):
        return str(path.resolve()), "own"
    return str(path.resolve()), str(path.resolve())


def run_label(model: str, profile: Profile, default_facts: str) -> str:
    """`<model>-<profile>`, the default results and expected folder's name; `-<facts>` is appended when `--facts`
    replaced the profile's fact set, so such a run neither resumes nor verifies against the profile's own."""
    label = f"{model}-{profile.name}"
    if profile.facts == default_facts:
        return label

    if profile.facts in SOURCES:
        return f"{label}-{profile.facts}"
    return f"{label}-facts-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(profile.facts).stem)


# --------------------------------------------------------------------------------------------------------- run


DTYPES: tuple[str, ...] = ("float32", "bfloat16", "float64")


def torch_dtype(name: str | None) -> Any:
    """The torch dtype of a name in DTYPES (None stays None: the model's default)."""
    if name is None:
        return None
    if name not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}; got {name!r}")
    import torch  # lazy: torch

    return getattr(torch, name)


def run_pipeline(
    profile: str | None = None,
    model: str | None = None,
    checkpoints: str | None = None,
    out: Path | None = None,
    expected: Path | None = None,
    progress: bool = True,
    verify: bool = True,
    seed: int | None = None,
    batch_size: int | None = None,
    front_end: str = "auto",
    facts: str | None = None,
    allow_cpu: bool = False,
    has_cuda: Callable[[], bool] | None = None,
    dtype: str | None = None,
    corruption: bool = True,
) -> int:
    """Run every step of `profile` (default: smoke for the embedded models, review for SpiritLM) into `<out>` (default
    results/<model>-<profile>); returns verify.py's exit code (0 PASS, 1 FAIL, 2 no verdict) or 0 when `verify` is
    off. `seed` and `batch_size` override the profile's (replicate runs for calibrating verify.py's tolerances);
    `front_end` chooses the speech front end ('auto': the paper's where it can run here, stage by stage). `facts`
    (a name or a path, `resolve_facts`) replaces the profile's fact set. SpiritLM's profiles other than smoke refuse
    to start without a CUDA device unless `allow_cpu` (`check_device`; `has_cuda` is injectable for tests). `dtype`
    (one of DTYPES; default: the model's own) is for the float64 numerics reference of the same-seed tier
    (bench/numerics_bound.py); a results folder keeps the dtype it was started with. `corruption=False` leaves the
    corruption-choice step out (--no-corruption-choice: most of a standard or review run's time; OPTIONAL_STEPS)."""
    choice = select_model(model, checkpoints, front_end)
    spec = speech_text_model(choice.name)
    name = profile or spec.default_profile
    if name not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}; got {name!r}")
    overrides = {k: v for k, v in {"seed": seed, "batch_size": batch_size}.items() if v is not None}
    trace = replace(PROFILES[name].trace, **overrides)
    device_note = check_device(choice, replace(PROFILES[name], trace=trace), allow_cpu, has_cuda)
    facts_source, facts_name = resolve_facts(facts, PROFILES[name].facts)
    prof = replace(PROFILES[name], facts=facts_name, trace=trace)
    label = run_label(choice.name, prof, PROFILES[name].facts)
    if spec.prepare is not None:  # e.g. SpiritLM: Meta's package at the pinned commit, installed here when missing
        resolve(spec.prepare)()
    out = Path(out) if out is not None else REPO_ROOT / "results" / label
    expected = Path(expected) if expected is not None else REPO_ROOT / "expected" / label
    notes = []
    if prof.facts != PROFILES[name].facts:
        notes.append(f"facts: {prof.facts} (--facts), instead of the profile's {PROFILES[name].facts}")
    elif facts_source != prof.facts:
        notes.append(f"facts: {prof.facts}, read from {facts_source} (--facts)")
    if device_note:
        notes.append(device_note)
    if verify and expected == REPO_ROOT / "expected" / label and label not in spec.expected_profiles:
        notes.append(f"note: no expected profile is recorded for {label} (recorded for {spec.name}: "
                     f"{', '.join(spec.expected_profiles) or 'none'}); verify.py will give no verdict")
    out.mkdir(parents=True, exist_ok=True)
    torch_dtype(dtype)  # a bad name fails before anything is written
    with results_lock(out):
        try:
            return _run_locked(prof, choice, out, expected, progress, verify, facts_source, notes, dtype,
                               left_out=() if corruption else ("corruption",))
        except DiskFullError as error:
            raise error.with_need(space_needed(prof, choice.name, out)) from None
        except OSError as error:
            if is_disk_full(error):
                raise DiskFullError(Path(error.filename or out), space_needed(prof, choice.name, out)) from None
            raise


def remove_stale_temporaries(out: Path) -> None:
    """Delete the temporary files a killed run left behind (`.tmp-*`: never trusted, only clutter), with the
    results folder locked; the trace folders are left to the runner, which cleans them under its own lock."""
    for stale in Path(out).rglob(TMP_PREFIX + "*"):
        rel = stale.relative_to(out).parts
        if stale.is_file() and not (rel[0] == RUNS_DIR and len(rel) > 2 and rel[2] == "traces"):
            stale.unlink(missing_ok=True)


def space_needed(profile: Profile, model: str, out: Path) -> str:
    """Roughly how much disk a run of `profile` needs in its results folder, in words, with a margin of two: trace
    files, carry-over, implicit-transcription and corruption-choice files, figures and report
    (`cost.disk_bytes`). An estimate: a 2-fact, one-kind run of the smoke pipeline wrote 4.5 MB here (1.8 MB of it
    report.html, figures most of the rest)."""
    facts = profile.count or (1209 if profile.facts == "known_1000" else 264)
    parts = disk_bytes(profile, model, facts)
    megabytes = max(10, round(2 * sum(parts.values()) / 1e6, -1))
    detail = ", ".join(f"{name} {amount(2 * size / 1e6)} MB" for name, size in parts.items() if size)
    return (f"a {profile.name} run of the {model} models needs about {megabytes:.0f} MB in {out} (with a margin of "
            f"two: {detail})")


def _run_locked(prof: Profile, choice: ModelChoice, out: Path, expected: Path, progress: bool, verify: bool,
                facts_source: str, notes: Sequence[str], dtype: str | None, left_out: Sequence[str] = ()) -> int:
    """The steps, verdict and summary of `run_pipeline`, with the results folder locked; `notes` are printed after
    the profile's banner; `left_out` names OPTIONAL_STEPS this invocation does not run."""
    identity = {"profile": prof.to_dict(), "model": choice.name, "front_end": choice.front_end}
    check_results_folder(out, identity if dtype is None else {**identity, "dtype": dtype})
    remove_stale_temporaries(out)
    print(choice.banner, flush=True)
    print(choice.front_end_banner, flush=True)
    if choice.name not in prof.models:
        print(f"note: profile {prof.name} is meant for {' and '.join(prof.models)}, not {choice.name}", flush=True)
    print(f"profile: {prof.name}: {prof.purpose}; {prof.description}", flush=True)
    print(f"budget: {prof.budget}; results: {out}", flush=True)
    for line in notes:  # --facts and the device, said once the banner names the profile
        print(line, flush=True)
    run = PipelineRun(prof, choice, out, progress, facts_source, dtype, left_out=left_out)
    print(run_estimate(run), flush=True)
    redo = run.check_finished(STEPS)
    for number, step in enumerate(STEPS, 1):
        run.perform(step, number, len(STEPS), redo=step.name in redo)
    code = 0
    if verify:
        _banner(f"verdict: verify.py --results {out} --expected {expected}")
        code = subprocess.call([sys.executable, str(REPO_ROOT / "verify.py"), "--results", str(out),
                                "--expected", str(expected)])
    verdict = {0: "PASS", 1: "FAIL", 2: "NO VERDICT (no expected profile applies; see above)"}.get(
        code, f"NO VERDICT (verify.py exit {code})") if verify else "not verified"

    try:  # the page to read the run; a problem here must not change the verdict
        html_line = str(write_report_html(out))
    except Exception as error:  # noqa: BLE001
        html_line = f"not written ({type(error).__name__}: {error}); retry: python -m artifact report --results {out}"
    _banner("summary")
    print(f"verdict: {verdict}\nresults: {out}\ncomparison: {out / COMPARISON_DIR} (summary.md, comparison.md, "
          f"figures)\nverify report: {out / VERIFY_DIR / REPORT_MD}\ntotal time: {time.time() - run.started:.0f} s\n"
          f"report.html: {html_line}", flush=True)
    return code
