"""Experiments: the runner (files, resume, progress), token groups, statistics, figures and the severed path.

- `settings.py`  RunSettings: what a run computed with; hashed into its results folder's name
- `runner.py`    one result file per (fact, job), atomic writes, resume, progress; generic over prompts and arms
- `t2t.py`       the T->T arm: facts -> noise -> known filter -> text prompts -> runner
- `s2t.py`       the S->T arm: facts -> speech front end -> speech noise -> Known-s2t filter -> runner
- `sharding.py`  disjoint, balanced shards of the facts for torchrun / SLURM arrays
- `groups.py`    ROME's six token groups (and representative positions for speech)
- `aggregate.py` AIE per kind, group and layer with bootstrap CIs over facts; tidy CSV + JSON
- `figures.py`   heatmaps, layer curves, severed-path figure
- `severed.py`   the severed-path computation (ROME Fig. 3)
- `compare.py`   T->T vs S->T: paired differences, peaks, ratios, diffuseness, with bootstrap CIs; table, JSON
- `compare_figures.py`, `normalised.py`  comparison figures; the length-normalised view
- `claims.py`    the paper's claims as explicit decision rules on the comparison, and the generated summary
- `pipeline.py`  the whole reproduction behind run_all.sh: profiles, model selection, resumable steps
"""

from artifact.core.names import GROUPS
from artifact.core.groups import positions_for, representative_positions, token_groups
from artifact.core.names import JOBS
from artifact.core.layout import ResultsFolderError
from artifact.experiments.runner import RunSummary, open_run_dir, run_items
from artifact.core.settings import load_settings
from artifact.core.settings import RunSettings
from artifact.experiments.sharding import Shard

__all__ = [
    "GROUPS",
    "JOBS",
    "ResultsFolderError",
    "RunSettings",
    "RunSummary",
    "Shard",
    "load_settings",
    "open_run_dir",
    "positions_for",
    "representative_positions",
    "run_items",
    "token_groups",
]
