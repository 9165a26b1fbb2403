"""Experiment orchestration: files, resume, progress; the two arms; the pipeline behind run_all.sh.

- `arms.py`      the T->T and S->T arms as data: prompts, noise, Known filter; prepare once, trace a selection
- `runner.py`    one result file per (fact, job), atomic writes, locks, resume, progress; generic over arms
- `sharding.py`  disjoint, balanced shards of the facts for torchrun / SLURM arrays
- `merge.py`     join run folders traced in separate places (shards without a shared filesystem)
- `profiles.py`  the scales a pipeline run can take (smoke, full), torch-free
- `choice.py`    which models and speech front end a pipeline run uses, and why (one banner line), torch-free
- `pipeline.py`  the whole reproduction: a table of steps over one run object, resumable

Nothing is imported here, so `artifact.experiments.profiles` and `.choice` load without torch.
"""
