#!/usr/bin/env bash
# Install MeloTTS at the pinned commit (MELOTTS_COMMIT) into its own virtual environment VENV: its dependencies from
# the hash-pinned requirements-melotts.lock (`uv pip sync --require-hashes`), then MeloTTS itself with --no-deps.
# MeloTTS pins old transformers/librosa that clash with the artifact's environment, so it never shares .venv.
#
#   scripts/install_melotts.sh VENV                  MeloTTS from GitHub at the pinned commit (needs network)
#   scripts/install_melotts.sh VENV ARCHIVE.tar.gz   from a `git archive` of the pinned commit (offline); its commit
#                                                    id is read from the archive and must equal MELOTTS_COMMIT, and a
#                                                    SHA256SUMS file beside it, when present, must list it
#   PYTHON=/path/to/python3.11 scripts/install_melotts.sh ...   the interpreter for a new VENV (default: python3.11)
#   scripts/install_melotts.sh --torch-from ARTIFACT_VENV VENV [ARCHIVE.tar.gz]
#       one torch for both venvs (the container): VENV gets the artifact's torch, torchaudio, triton and nvidia-*
#       packages through links (scripts/share_torch.py: same versions, checked) instead of its own copies.
#
# Idempotent: does nothing when VENV already holds this lock and this commit. Then point the artifact at it with
# `export MELOTTS_PYTHON=VENV/bin/python`. This script installs code only: MeloTTS's voice, its BERT models, nltk's
# data and the unidic dictionary download on first use (or ahead of time: `python -m unidic download` and
# `$MELOTTS_PYTHON artifact/speech/melotts_worker.py --fetch`); `--probe` of the same worker lists what is missing.
# uv is the project's (.venv/bin/uv, pinned in requirements.lock; scripts/bootstrap.sh installs it), else uv on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { printf '[install-melotts] %s\n' "$*" >&2; }
torch_from=""
if [ "${1:-}" = --torch-from ]; then
  [ $# -ge 2 ] && [ -x "$2/bin/python" ] || { log "error: --torch-from needs a virtual environment (ARTIFACT_VENV/bin/python)"; exit 2; }
  torch_from="$(cd "$2" && pwd)"
  shift 2
fi
[ $# -ge 1 ] && [ $# -le 2 ] || { log "usage: scripts/install_melotts.sh [--torch-from ARTIFACT_VENV] VENV [ARCHIVE.tar.gz]"; exit 2; }
venv="$1"
source_spec="${2:-git}"
commit="$(tr -d '[:space:]' < "$root/MELOTTS_COMMIT")"
lock="$root/requirements-melotts.lock"
python_bin="${PYTHON:-python3.11}"
python="$venv/bin/python"
want="$commit $(sha256sum "$lock" | cut -d' ' -f1)${torch_from:+ torch from $torch_from}"
stamp="$venv/.melotts-artifact-install"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$python" ] &&
   "$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("melo.api") is None)' 2>/dev/null; then
  log "MeloTTS $commit and requirements-melotts.lock are already installed in $venv"
  exit 0
fi

uv="$root/.venv/bin/uv"
[ -x "$uv" ] || uv="$(command -v uv || true)"
[ -n "$uv" ] || { log "error: uv not found; run scripts/bootstrap.sh (it installs the pinned uv into .venv)"; exit 1; }

if [ "$source_spec" = git ]; then
  target="melotts @ git+https://github.com/myshell-ai/MeloTTS.git@$commit"
else
  [ -f "$source_spec" ] || { log "error: $source_spec does not exist (pass a git archive of MeloTTS at $commit)"; exit 1; }
  archive="$(cd "$(dirname "$source_spec")" && pwd)/$(basename "$source_spec")"
  sums="$(dirname "$archive")/SHA256SUMS"
  if [ -f "$sums" ]; then
    expected="$(awk -v f="$(basename "$archive")" '$2 == f || $2 == "*"f {print $1}' "$sums")"
    actual="$(sha256sum "$archive" | cut -d' ' -f1)"
    [ -n "$expected" ] || { log "error: $sums does not list $(basename "$archive")"; exit 1; }
    [ "$expected" = "$actual" ] || { log "error: $archive has sha256 $actual, $sums says $expected"; exit 1; }
  fi
  archived="$(gzip -dc "$archive" | git get-tar-commit-id 2>/dev/null || true)"
  [ "$archived" = "$commit" ] || {
    log "error: $archive is a git archive of commit '${archived:-unknown}', not MELOTTS_COMMIT $commit"; exit 1; }
  target="melotts @ file://$archive"
fi

if [ ! -x "$python" ]; then
  command -v "$python_bin" >/dev/null 2>&1 || {
    log "error: $python_bin not found; install Python 3.11 or set PYTHON=/path/to/python3.11"; exit 1; }
  log "creating $venv with $python_bin"
  "$python_bin" -m venv "$venv"
fi
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  log "error: $python is not Python 3.11 (requirements-melotts.lock is compiled for 3.11); remove $venv"; exit 1; }
site="$("$python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
shared="$venv/shared-torch"
# Links of an earlier --torch-from install go first, so that uv never sees the artifact's torch through them.
rm -rf "$shared" "$site/shared-torch.pth"
if [ -n "$torch_from" ]; then
  rest_lock="$(mktemp)"
  "$torch_from/bin/python" "$root/scripts/share_torch.py" --lock "$lock" --out "$rest_lock" --shared "$shared"
  log "installing requirements-melotts.lock without the torch set into $venv"
  "$uv" pip sync --quiet --python "$python" --require-hashes "$rest_lock"
  rm -f "$rest_lock"
  echo "$shared" > "$site/shared-torch.pth"
else
  log "installing requirements-melotts.lock into $venv (first run downloads torch; later runs reuse uv's cache)"
  "$uv" pip sync --quiet --python "$python" --require-hashes "$lock"
fi
log "installing MeloTTS $commit (--no-deps) from ${source_spec}"
"$uv" pip install --quiet --python "$python" --no-deps --reinstall-package melotts "$target"
"$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("melo.api") is None)' || {
  log "error: melo.api is not importable from $python after the install"; exit 1; }
if [ "$source_spec" != git ]; then
  # MeloTTS's wheel carries its CMU dictionary only as melo/text/cmudict_cache.pickle (package_data 'cmudict_*'; the
  # source cmudict.rep is not packaged), and the archive lacks that pickle. Build it now with MeloTTS's own
  # read_dict/cache_dict (run from its english.py, which cannot be imported offline: it loads BERT and nltk data),
  # so no process has to write into site-packages later.
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  tar -xzf "$archive" -C "$work" --wildcards '*/melo/text/cmudict.rep'
  "$python" - "$site/melo/text/english.py" "$work"/*/melo/text/cmudict.rep "$site/melo/text/cmudict_cache.pickle" <<'EOF'
import ast, pickle, sys

source, rep, cache = sys.argv[1:]
tree = ast.parse(open(source, encoding="utf-8").read())
wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in ("read_dict", "cache_dict")]
namespace = {"CMU_DICT_PATH": rep, "pickle": pickle}
exec(compile(ast.Module(body=wanted, type_ignores=[]), source, "exec"), namespace)
namespace["cache_dict"](namespace["read_dict"](), cache + ".tmp")
import os; os.replace(cache + ".tmp", cache)
EOF
  log "built melo/text/cmudict_cache.pickle from the archive's cmudict.rep with MeloTTS's own read_dict"
fi
echo "$want" > "$stamp"
log "installed MeloTTS $commit ($("$python" -c 'import importlib.metadata as m; print(m.version("melotts"))')) into $venv"
