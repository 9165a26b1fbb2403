#!/usr/bin/env bash
# The test command: bootstrap the pinned environment (idempotent), then run pytest with any extra arguments.
#   scripts/test.sh               fast suite (what CI runs)
#   scripts/test.sh -m slow       the slow tests only (minutes; not in CI)
# When the source archive of Meta's spiritlm package at the pinned commit lies in ../shared/vendor/ (GitHub is not
# reachable from every machine), it is installed into .venv (--no-deps), so the tests that run SpiritLM's own code
# run; without it they are skipped with the reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ARTIFACT_TEST_PACKAGES=1 "$root/scripts/bootstrap.sh"   # also the test-only system packages (headless chromium)
cd "$root"
vendored="$(ls "$root"/../shared/vendor/spiritlm-*.tar.gz 2>/dev/null | head -n 1 || true)"
if [ -n "$vendored" ]; then
  "$root/scripts/install_spiritlm.sh" "$vendored"
fi
# Passive OpenMP waiting: spinning threads slow torch down many times on a machine whose cores are shared (no number
# changes); see artifact/__main__.py.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec .venv/bin/python -m pytest "$@"
