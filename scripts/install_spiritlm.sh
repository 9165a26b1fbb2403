#!/usr/bin/env bash
# Install Meta's spiritlm package at the pinned commit (SPIRITLM_COMMIT) into a virtual environment, without its
# dependencies (they are hash-pinned in requirements.lock). Idempotent: does nothing when that commit is installed.
#
#   scripts/install_spiritlm.sh                      from GitHub at the pinned commit (needs network)
#   scripts/install_spiritlm.sh ARCHIVE.tar.gz       from a `git archive` of the pinned commit (offline); its commit
#                                                    id is read from the archive and must equal SPIRITLM_COMMIT, and
#                                                    a SHA256SUMS file beside it, when present, must list it
#   PYTHON=/path/to/venv/bin/python scripts/install_spiritlm.sh ...   another environment (default: .venv)
#
# spiritlm's setup.py uses find_packages(), so its wheel also installs a top-level `tests` package (its own tests)
# into site-packages, where it would shadow any project's `tests`; it is removed after the install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
commit="$(tr -d '[:space:]' < "$root/SPIRITLM_COMMIT")"
python="${PYTHON:-$root/.venv/bin/python}"
source_spec="${1:-git}"
log() { printf '[install-spiritlm] %s\n' "$*" >&2; }

[ -x "$python" ] || { log "error: $python is not a Python; run scripts/bootstrap.sh first or set PYTHON"; exit 1; }
site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
stamp="$site/spiritlm-artifact-commit.txt"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$commit" ] && "$python" -c 'import spiritlm.speech_tokenizer' 2>/dev/null; then
  log "spiritlm $commit is already installed in $site"
  exit 0
fi

if [ "$source_spec" = git ]; then
  target="spiritlm @ git+https://github.com/facebookresearch/spiritlm.git@$commit"
else
  archive="$(cd "$(dirname "$source_spec")" && pwd)/$(basename "$source_spec")"
  [ -f "$archive" ] || { log "error: $source_spec does not exist (pass a git archive of spiritlm at $commit)"; exit 1; }
  sums="$(dirname "$archive")/SHA256SUMS"
  if [ -f "$sums" ]; then
    want="$(awk -v f="$(basename "$archive")" '$2 == f || $2 == "*"f {print $1}' "$sums")"
    have="$(sha256sum "$archive" | cut -d' ' -f1)"
    [ -n "$want" ] || { log "error: $sums does not list $(basename "$archive")"; exit 1; }
    [ "$want" = "$have" ] || { log "error: $archive has sha256 $have, $sums says $want"; exit 1; }
  fi
  archived="$(gzip -dc "$archive" | git get-tar-commit-id 2>/dev/null || true)"
  [ "$archived" = "$commit" ] || {
    log "error: $archive is a git archive of commit '${archived:-unknown}', not SPIRITLM_COMMIT $commit"; exit 1; }
  target="$archive"
fi

uv="$(dirname "$python")/uv"
if [ -x "$uv" ]; then
  "$uv" pip install --quiet --python "$python" --no-deps --reinstall-package spiritlm "$target"
else
  PIP_CONFIG_FILE=/dev/null "$python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$target"
fi
# Remove the top-level `tests` package spiritlm's wheel brings along, if (and only if) it is spiritlm's.
"$python" - "$site" <<'EOF'
import shutil, sys
from importlib.metadata import distribution
from pathlib import Path

site = Path(sys.argv[1])
files = distribution("spiritlm").files or []
if any(str(f).startswith("tests/") for f in files) and (site / "tests").is_dir():
    shutil.rmtree(site / "tests")
    print("[install-spiritlm] removed the top-level 'tests' package installed by spiritlm's wheel", file=sys.stderr)
EOF
echo "$commit" > "$stamp"
log "installed spiritlm $commit ($("$python" -c 'import importlib.metadata as m; print(m.version("spiritlm"))')) into $site"
