#!/usr/bin/env bash
# Main job. Today: bootstraps the pinned environment and traces the Eiffel Tower prompt on the embedded model for
# each kind (hidden, mlp, attn), writing npz + heatmaps to outputs/trace/.
# The paper's pipeline (facts -> speech -> known filters -> T->T and S->T traces -> aggregates -> figures -> verdict)
# is not implemented yet, so this script gives NO verdict.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
.venv/bin/python -m artifact trace --model embedded \
  --prompt "The Eiffel Tower is located in the city of" --subject "Eiffel Tower" \
  --kind hidden --kind mlp --kind attn --out outputs/trace "$@"
echo "run_all.sh: single-prompt demo done (outputs/trace/). The full paper pipeline and its verdict are not built yet."
