#!/usr/bin/env bash
# The reproduction, end to end: facts -> speech front end -> known filters -> T->T and S->T traces (hidden, mlp,
# attn) -> aggregates -> comparison -> carry-over (cross-modal patching, knockout, logit lens) -> figures -> run
# manifest -> verify.py (PASS/FAIL).
#
#   ./run_all.sh                          embedded models, smoke profile (offline, CPU, minutes), ends with PASS/FAIL
#   ./run_all.sh --profile full           the paper's scale on the embedded models (hours on a CPU)
#   ./run_all.sh --model spiritlm --checkpoints DIR --profile full     SpiritLM base 7B (GPU; see REPRODUCE.md)
#
# Without --model, SpiritLM is used when checkpoints are given ($SPIRITLM_CHECKPOINTS_DIR or --checkpoints); an
# incomplete layout is refused, never ignored. A SpiritLM run installs Meta's spiritlm package at SPIRITLM_COMMIT when
# missing (offline from $ARTIFACT_VENDOR_DIR or vendor/ when an archive is there) and, for review and full, needs a GPU
# (--allow-cpu otherwise). --facts NAME_OR_PATH replaces the profile's facts (a copy of known_1000.json: no network).
# A rerun skips finished steps and resumes traces fact by fact. Exit code: 0 PASS, 1 FAIL, 2 error. All options: --help.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ "${ARTIFACT_SKIP_BOOTSTRAP:-0}" != 1 ]]; then
  "$root/scripts/bootstrap.sh"
fi
cd "$root"
python="${ARTIFACT_PYTHON:-$root/.venv/bin/python}"
exec "$python" -m artifact pipeline "$@"
