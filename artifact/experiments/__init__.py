"""Experiments: the runner (files, resume, progress), token groups, statistics, figures and the severed path.

- `settings.py`  RunSettings: what a run computed with; hashed into its results folder's name
- `runner.py`    one result file per (fact, job), atomic writes, resume, progress; generic over prompts and arms
- `t2t.py`       the T->T arm: facts -> noise -> known filter -> text prompts -> runner
- `groups.py`    ROME's six token groups (and representative positions for speech)
- `aggregate.py` AIE per kind, group and layer with bootstrap CIs over facts; tidy CSV + JSON
- `figures.py`   heatmaps, layer curves, severed-path figure
- `severed.py`   the severed-path computation (ROME Fig. 3)
"""

from artifact.experiments.groups import GROUPS, positions_for, representative_positions, token_groups
from artifact.experiments.runner import JOBS, ResultsFolderError, RunSummary, load_settings, open_run_dir, run_items
from artifact.experiments.settings import RunSettings

__all__ = [
    "GROUPS",
    "JOBS",
    "ResultsFolderError",
    "RunSettings",
    "RunSummary",
    "load_settings",
    "open_run_dir",
    "positions_for",
    "representative_positions",
    "run_items",
    "token_groups",
]
