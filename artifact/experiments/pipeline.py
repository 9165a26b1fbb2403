"""The whole pipeline behind `run_all.sh`: facts -> known filters (text and speech) -> T->T and S->T traces ->
aggregates -> comparison -> figures -> manifest -> verdict (`verify.py`).

Each step prints a banner and its wall time, is recorded in `<results>/steps.json`, and is skipped on a rerun once
done (the trace steps also resume fact by fact inside, through the runner). Profiles fix the scale (PROFILES);
`select_model` decides between the embedded models and SpiritLM and says so in one line.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

from artifact.experiments.runner import load_known_ids, write_json_atomic
from artifact.models.adapters import KINDS

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
STEPS_FILE = "steps.json"
SELECTION_FILE = "selection.json"


@dataclass(frozen=True)
class Profile:
    """The scale of a pipeline run; recorded in the manifest."""

    name: str
    facts: str  # fact source: 'own', 'known_1000' or a JSON path
    samples: int  # corrupted runs per cell
    t2t_positions: str  # 'all' or 'representatives:K'
    s2t_positions: str
    limit: int | None  # facts traced per arm (None: all)
    candidates: int | None  # S->T: only the first N facts of the file are spoken (None: all)
    paired_only: bool  # trace only facts known in both arms (the comparison set) rather than each arm's own set
    kinds: tuple[str, ...] = KINDS
    window: int = 10
    seed: int = 1
    batch_size: int = 128
    description: str = ""


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", facts="own", samples=10, t2t_positions="all", s2t_positions="representatives:1", limit=12,
        candidates=120, paired_only=True,
        description="our own fact set: the first 120 facts spoken, the first 12 known in both arms traced, all "
                    "kinds, 10 noise samples, speech traced at one representative per middle/further group",
    ),
    "full": Profile(
        name="full", facts="known_1000", samples=10, t2t_positions="all", s2t_positions="all", limit=None,
        candidates=None, paired_only=False,
        description="the paper's scale: ROME's known_1000, every Known-t2t fact in T->T and every Known-s2t fact "
                    "in S->T, all kinds, 10 noise samples, all positions",
    ),
}


@dataclass(frozen=True)
class ModelChoice:
    """Which models and speech front end a pipeline run uses, and the one-line banner saying why."""

    name: str  # 'embedded' or 'spiritlm'
    t2t_model: str  # load_model spec of the T->T arm
    s2t_model: str  # load_model spec of the S->T arm
    front_end: dict[str, Any]  # FrontEndConfig fields
    banner: str
    front_end_banner: str = ""  # which speech front end, and which paper backends fell back and why


class ModelSelectionError(ValueError):
    """--model spiritlm without a usable checkpoints folder; the message lists each missing file."""


def select_model(requested: str | None, checkpoints: str | os.PathLike[str] | None,
                 front_end: str = "auto") -> ModelChoice:
    """`--model embedded|spiritlm`, or by default SpiritLM when the checkpoints folder (argument, else
    $SPIRITLM_CHECKPOINTS_DIR) holds BRIEF section 2's layout, else the embedded models; and the speech front end
    (`--front-end auto|paper|offline`, see artifact.speech.presets)."""
    from artifact.commands.checkpoints import missing_checkpoint_files
    from artifact.speech.presets import choose_front_end

    root = checkpoints or os.environ.get("SPIRITLM_CHECKPOINTS_DIR")
    if requested not in (None, "embedded", "spiritlm"):
        raise ModelSelectionError(f"--model must be 'embedded' or 'spiritlm'; got {requested!r}")
    missing = missing_checkpoint_files(Path(root)) if root and Path(root).is_dir() else None
    if requested == "spiritlm" or (requested is None and root and missing == []):
        if not root:
            raise ModelSelectionError("--model spiritlm needs the checkpoints: pass --checkpoints DIR or set "
                                      "SPIRITLM_CHECKPOINTS_DIR (REPRODUCE.md says how to request the weights).")
        if missing is None:
            raise ModelSelectionError(f"--model spiritlm: {root} is not a folder (SpiritLM checkpoints root).")
        if missing:
            raise ModelSelectionError(f"--model spiritlm: {root} lacks {len(missing)} file(s) of SpiritLM's layout: "
                                      + "; ".join(missing))
        os.environ["SPIRITLM_CHECKPOINTS_DIR"] = str(root)
        speech = choose_front_end("spiritlm", front_end)
        return ModelChoice("spiritlm", "spiritlm", "spiritlm", speech.config,
                           f"model: SpiritLM base 7B from {root} (T->T and S->T)", speech.banner)
    why = ("as asked (--model embedded)" if requested == "embedded" else
           f"{root} lacks {len(missing or [])} SpiritLM file(s) (`python -m artifact checkpoints check {root}`)"
           if root else "no SpiritLM checkpoints mounted")
    speech = choose_front_end("embedded", front_end)
    return ModelChoice(
        "embedded", "embedded", "embedded-speech", speech.config,
        f"model: embedded SmolLM2-135M (T->T) and its speech-text extension (S->T), {why}. For SpiritLM mount its "
        "checkpoints and pass --checkpoints DIR (or set SPIRITLM_CHECKPOINTS_DIR); see REPRODUCE.md.",
        speech.banner,
    )


@dataclass
class StepLog:
    """steps.json: per step, done or not and its wall time; lets a rerun skip finished steps."""

    path: Path
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "StepLog":
        return cls(path, json.loads(path.read_text()) if path.is_file() else {})

    def done(self, name: str) -> bool:
        return bool(self.steps.get(name, {}).get("done"))

    def record(self, name: str, seconds: float, **extra: Any) -> None:
        previous = self.steps.get(name, {}).get("seconds", 0.0)
        self.steps[name] = {"done": True, "seconds": round(previous + seconds, 1), **extra}
        write_json_atomic(self.path, self.steps)


PIPELINE_FILE = "pipeline.json"


def check_results_folder(out: Path, identity: dict[str, Any]) -> None:
    """Record what a results folder holds (profile, model, front end) or check a rerun asks for the same: finished
    steps are skipped on a rerun, so results of other settings must never be taken for these."""
    path = out / PIPELINE_FILE
    if path.is_file():
        stored = json.loads(path.read_text())
        if stored != json.loads(json.dumps(identity)):
            changed = sorted(k for k in identity if stored.get(k) != json.loads(json.dumps(identity[k])))
            raise ValueError(f"{out} holds a pipeline run with other settings ({', '.join(changed)} differ); "
                             "pass another --out (or remove the folder to start over).")
    else:
        write_json_atomic(path, identity)


def _banner(text: str) -> None:
    print(f"\n=== {text} " + "=" * max(3, 100 - len(text)), flush=True)


DEFAULT_PROFILE = {"embedded": "smoke", "spiritlm": "full"}  # SpiritLM: the claims are only checkable at full scale


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
) -> int:
    """Run every step of `profile` (default: smoke for the embedded models, full for SpiritLM) into `<out>` (default
    results/<model>-<profile>); returns verify.py's exit code (0 PASS, 1 FAIL) or 0 when `verify` is off. `seed` and
    `batch_size` override the profile's (replicate runs for calibrating verify.py's tolerances); `front_end` chooses
the speech front end ('auto': the paper's where its backends can run here, else the offline one, stage by stage)."""
    choice = select_model(model, checkpoints, front_end)
    profile = profile or DEFAULT_PROFILE[choice.name]
    if profile not in PROFILES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILES)}; got {profile!r}")
    prof = PROFILES[profile]
    overrides = {k: v for k, v in {"seed": seed, "batch_size": batch_size}.items() if v is not None}
    if overrides:
        prof = replace(prof, **overrides)
    label = f"{choice.name}-{prof.name}"
    out = Path(out) if out is not None else REPO_ROOT / "results" / label
    expected = Path(expected) if expected is not None else REPO_ROOT / "expected" / label
    out.mkdir(parents=True, exist_ok=True)
    check_results_folder(out, {"profile": asdict(prof), "model": choice.name, "front_end": choice.front_end})
    started = time.time()
    print(choice.banner, flush=True)
    print(choice.front_end_banner, flush=True)
    print(f"profile: {prof.name} ({prof.description}); results: {out}", flush=True)
    steps = StepLog.load(out / STEPS_FILE)
    selection_path = out / SELECTION_FILE

    def step(name: str, title: str, action: Callable[[], Any], always: bool = False) -> Any:
        if steps.done(name) and not always:
            print(f"\n=== {title}: done in an earlier run, skipped ({steps.steps[name]['seconds']} s)", flush=True)
            return None
        _banner(title)
        t0 = time.time()
        result = action()
        seconds = time.time() - t0
        steps.record(name, seconds)
        print(f"--- {title}: {seconds:.0f} s (elapsed {time.time() - started:.0f} s)", flush=True)
        return result

    runs = out / "runs"
    common = dict(facts=prof.facts, out=runs, kinds=prof.kinds, samples=prof.samples, window=prof.window,
                  seed=prof.seed, batch_size=prof.batch_size, progress=progress)
    loaded: dict[str, Any] = {}

    def model_for(spec: str) -> Any:
        from artifact.models import load_model

        if spec not in loaded:
            loaded[spec] = load_model(spec)
        return loaded[spec]

    def front_end() -> Any:
        from artifact.speech.pipeline import FrontEndConfig

        return FrontEndConfig(**choice.front_end)

    def arm_t2t(**extra: Any) -> Any:
        from artifact.experiments.t2t import run_t2t

        return run_t2t(model=model_for(choice.t2t_model), positions=prof.t2t_positions, **common, **extra)

    def arm_s2t(**extra: Any) -> Any:
        from artifact.experiments.s2t import run_s2t

        return run_s2t(model=model_for(choice.s2t_model), positions=prof.s2t_positions, front_end=front_end(),
                       candidates=prof.candidates, **common, **extra)

    def known() -> None:
        t2t_dir = arm_t2t(known_only=True).run_dir
        s2t_dir = arm_s2t(known_only=True).run_dir
        t2t_ids = [str(i) for i in load_known_ids(t2t_dir) or []]
        s2t_ids = [str(i) for i in load_known_ids(s2t_dir) or []]
        both = [i for i in s2t_ids if i in set(t2t_ids)]
        write_json_atomic(selection_path, {
            "t2t_run": t2t_dir.name, "s2t_run": s2t_dir.name, "known_t2t": t2t_ids, "known_s2t": s2t_ids,
            "known_both": both, "paired_only": prof.paired_only, "limit": prof.limit,
            "traced": both[: prof.limit] if prof.paired_only else "each arm's own known facts",
        })
        print(f"Known-t2t {len(t2t_ids)}, Known-s2t {len(s2t_ids)} (of the facts spoken), known in both {len(both)}")

    def traced_ids() -> list[str] | None:
        sel = json.loads(selection_path.read_text())
        return sel["traced"] if prof.paired_only else None

    def run_arm(arm: str) -> None:
        runner = arm_t2t if arm == "t2t" else arm_s2t
        limit = None if prof.paired_only else prof.limit
        summary = runner(ids=traced_ids(), limit=limit)
        print(f"{len(summary.computed)} results computed, {len(summary.skipped)} already present -> "
              f"{summary.run_dir}")

    def run_dirs() -> tuple[Path, Path]:
        sel = json.loads(selection_path.read_text())
        return runs / sel["t2t_run"], runs / sel["s2t_run"]

    def aggregate() -> None:
        from artifact.experiments.aggregate import aggregate_run

        for run_dir in run_dirs():
            doc = aggregate_run(run_dir, kinds=prof.kinds)
            print(f"{run_dir.name}: facts per kind {doc['n_facts']}")

    def compare() -> None:
        from artifact.experiments.compare import compare_runs, split_from_manifest

        t2t_dir, s2t_dir = run_dirs()
        subsets = None
        if choice.name == "embedded":
            from artifact.experiments.runner import load_settings
            from artifact.models.speech_lm import MANIFEST_FILE, SHIPPED_DIR

            subsets = split_from_manifest(SHIPPED_DIR / MANIFEST_FILE, load_settings(s2t_dir).facts_fingerprint)
        compare_runs(t2t_dir, s2t_dir, out / "comparison", kinds=prof.kinds, subsets=subsets or None)
        summary = out / "comparison" / "summary.md"
        if summary.is_file():
            print(summary.read_text())

    def figures() -> None:
        from artifact.experiments.figures import plot_run

        for run_dir in run_dirs():
            written = plot_run(run_dir)
            print(f"{len(written)} figures -> {written[0].parent if written else run_dir}")

    def manifest() -> None:
        from artifact.experiments.runner import load_settings
        from artifact.manifest import collect_manifest, model_fingerprints, unit_tokenizer_fingerprint, write_manifest

        t2t_dir, s2t_dir = run_dirs()
        t2t_settings, s2t_settings = load_settings(t2t_dir), load_settings(s2t_dir)
        models = {"t2t": model_fingerprints(choice.t2t_model), "s2t": model_fingerprints(choice.s2t_model)}
        data = collect_manifest(
            settings={"profile": asdict(prof), "model_choice": asdict(choice),
                      "t2t": t2t_settings.to_dict(), "s2t": s2t_settings.to_dict(),
                      "selection": json.loads(selection_path.read_text())},
            model_fingerprints=models, facts_fingerprint=t2t_settings.facts_fingerprint,
            steps={name: entry["seconds"] for name, entry in steps.steps.items()},
            dtype=t2t_settings.dtype, batch_size=t2t_settings.batch_size, device=t2t_settings.device,
            unit_tokenizer=unit_tokenizer_fingerprint(choice.front_end["unit_tokenizer"]),
        )
        data["profile"] = prof.name
        data["model_name"] = choice.name
        write_manifest(out, data)

    step("known", "1/7 known filters: T->T and S->T (speech front end)", known)
    step("t2t", "2/7 T->T traces", lambda: run_arm("t2t"))
    step("s2t", "3/7 S->T traces", lambda: run_arm("s2t"))
    step("aggregate", "4/7 aggregates (bootstrap CIs over facts)", aggregate)
    step("compare", "5/7 comparison T->T vs S->T", compare)
    step("figures", "6/7 figures", figures)
    step("manifest", "7/7 run manifest", manifest, always=True)
    code = 0
    if verify:
        _banner(f"verdict: verify.py --results {out} --expected {expected}")
        code = subprocess.call([sys.executable, str(REPO_ROOT / "verify.py"), "--results", str(out),
                                "--expected", str(expected)])
    total = time.time() - started
    verdict = {0: "PASS", 1: "FAIL", 2: "NO VERDICT (no expected profile applies; see above)"}.get(
        code, f"NO VERDICT (verify.py exit {code})") if verify else "not verified"
    _banner("summary")
    print(f"verdict: {verdict}\nresults: {out}\ncomparison: {out / 'comparison'} (summary.md, comparison.md, "
          f"figures)\nreport: {out / 'verify' / 'report.md'}\ntotal time: {total:.0f} s", flush=True)
    return code
