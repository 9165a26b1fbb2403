#!/usr/bin/env bash
# The test command: bootstrap the pinned environment (idempotent), then run pytest with any extra arguments.
#   scripts/test.sh               fast suite (what CI runs)
#   scripts/test.sh -m slow       the slow tests only (minutes; not in CI)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec .venv/bin/python -m pytest "$@"
