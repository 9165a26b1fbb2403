#!/usr/bin/env bash
# The container's entry point: make the run independent of the user id it runs as (docker run --user UID:GID), say
# which of the paper's speech backends have their weights in the image, then run ./run_all.sh with the arguments.
#
#   - HOME: the image user's home when writable, else a fresh folder under /tmp (a --user without a passwd entry
#     gets HOME=/, which it cannot write).
#   - caches (the artifact's, matplotlib's, numba's, run-time downloads): on the /cache volume, which any user may
#     write (mode 1777); per-uid subfolders when another uid's caches are there; /tmp (with a warning) when /cache
#     is not writable at all (a host folder of another user).
#   - the results folder (--out, default /artifact/results): must be writable, else a clear error with the fix
#     (Docker creates a missing host folder as root).
#   - baked weights (/opt/weights, see scripts/fetch_weights.py): where a backend's weights are absent (an image built
#     with FETCH_WEIGHTS=0), its variable points at the /cache volume instead, where a run with network access would
#     download them; the banner names them. With MeloTTS's weights baked the Hugging Face hub is used offline.
set -euo pipefail
root=/artifact
uid="$(id -u)"
gid="$(id -g)"
say() { printf '[container] %s\n' "$*" >&2; }

for arg in "$@"; do
  case "$arg" in -h|--help) exec "$root/run_all.sh" "$@" ;; esac
done

writable_dir() {  # the folder exists and this user can create files in it
  [ -d "$1" ] && [ -w "$1" ] && [ -x "$1" ]
}

if ! writable_dir "${HOME:-/}" || [ "${HOME:-/}" = / ]; then
  export HOME="/tmp/home-$uid"
  mkdir -p "$HOME"
fi

# Caches: /cache (a volume, mode 1777). A user who cannot write the folders an earlier run of another uid left
# there gets its own subfolder; a /cache it cannot write at all (a host folder of another user) falls back to /tmp.
cache=/cache
if ! writable_dir "$cache"; then
  say "warning: $cache is not writable by uid $uid; caches go to /tmp/cache (lost when the container ends). Mount" \
      "a volume (-v spiritlm-cache:/cache) or a host folder this user owns."
  cache=/tmp/cache
else
  for sub in artifact huggingface xdg numba matplotlib; do
    if [ -e "$cache/$sub" ] && ! writable_dir "$cache/$sub"; then
      say "note: $cache/$sub belongs to another user (uid $(stat -c %u "$cache/$sub")); caches of uid $uid go to" \
          "$cache/uid-$uid"
      cache="$cache/uid-$uid"
      break
    fi
  done
fi
mkdir -p "$cache"
# Only the image's defaults move; a variable set with docker run -e stays as given.
[ "${ARTIFACT_CACHE_DIR:-}" != /cache/artifact ] || export ARTIFACT_CACHE_DIR="$cache/artifact"
[ "${HF_HOME:-}" != /cache/huggingface ] || export HF_HOME="$cache/huggingface"
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$cache/xdg}" NUMBA_CACHE_DIR="${NUMBA_CACHE_DIR:-$cache/numba}"
export MPLCONFIGDIR="${MPLCONFIGDIR:-$cache/matplotlib}"

# Checkpoints are used or refused, never ignored (artifact/experiments/choice.py): a non-empty /checkpoints counts as
# given, and an incomplete one stops the run naming the missing files (and a nested folder holding the layout). An
# empty /checkpoints (the image's own folder, or an empty mount) counts as not given: the embedded models run, unless
# --model spiritlm asks otherwise. Docker creates a mounted host folder that does not exist as an empty one, so an
# empty folder that is a mount point gets a line saying so.
if [ "${SPIRITLM_CHECKPOINTS_DIR:-}" = /checkpoints ] && [ -z "$(ls -A /checkpoints 2>/dev/null)" ]; then
  unset SPIRITLM_CHECKPOINTS_DIR
  if awk '$5 == "/checkpoints" {found = 1} END {exit !found}' /proc/self/mountinfo 2>/dev/null; then
    say "note: /checkpoints is mounted but empty (a host folder that did not exist?); no SpiritLM checkpoints" \
        "given. Mount the folder holding spiritlm_model/ and speech_tokenizer/ (-v DIR:/checkpoints:ro)."
  fi
fi

# The results folder: --out DIR (or --out=DIR), else results/ under the code folder.
out="$root/results"
previous=""
for arg in "$@"; do
  case "$previous" in --out) out="$arg" ;; esac
  case "$arg" in --out=*) out="${arg#--out=}" ;; esac
  previous="$arg"
done
case "$out" in /*) ;; *) out="$root/$out" ;; esac
probe="$out"
while [ ! -e "$probe" ]; do probe="$(dirname "$probe")"; done
if ! writable_dir "$probe"; then
  owner="$(stat -c '%u:%g' "$probe" 2>/dev/null || echo unknown)"
  if [ "$probe" = "$out" ]; then
    say "error: the results folder $out is not writable by this container's user (uid $uid, gid $gid); it belongs" \
        "to uid:gid $owner. Docker creates a missing host folder as root."
  else
    say "error: no results folder is mounted at $out, and uid $uid (gid $gid) cannot create one in $probe (it" \
        "belongs to uid:gid $owner). Mount a host folder there."
  fi
  say "  Fix: create the folder on the host first and run the container as yourself:"
  say "    mkdir -p results && docker run --user \"\$(id -u):\$(id -g)\" -v \"\$PWD/results:/artifact/results\" ..."
  say "  (or give uid $uid write access to the folder you mount at $out)."
  exit 2
fi

# The paper's speech backends whose weights are not in the image.
missing=()
[ -f "${ARTIFACT_WHISPER_DIR:-/opt/weights/whisper}/small.pt" ] || {
  missing+=("Whisper-small"); export ARTIFACT_WHISPER_DIR="$cache/whisper"; }
[ -n "$(ls "${TORCH_HOME:-/opt/weights/torch}"/hub/checkpoints/*.pt 2>/dev/null)" ] || {
  missing+=("MMS_FA"); export TORCH_HOME="$cache/torch"; }
melotts_ok=1
[ -n "$(ls -d "${HF_HUB_CACHE:-/opt/weights/huggingface/hub}"/models--myshell-ai--MeloTTS-English/snapshots/*/ \
        2>/dev/null)" ] || melotts_ok=0
for file in taggers/averaged_perceptron_tagger.zip corpora/cmudict.zip; do  # g2p_en's nltk data
  [ -f "${NLTK_DATA:-/opt/weights/nltk_data}/$file" ] || melotts_ok=0
done
if [ -x "${MELOTTS_PYTHON:-/opt/melotts/bin/python}" ]; then  # UniDic, downloaded into MeloTTS's venv
  [ -n "$(ls /opt/melotts/lib/python3*/site-packages/unidic/dicdir/version 2>/dev/null)" ] || melotts_ok=0
else
  melotts_ok=0
fi
if [ "$melotts_ok" = 1 ]; then
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1  # the baked revisions, never an update check
else
  missing+=("MeloTTS (voice, BERT, nltk data, unidic)")
  export HF_HUB_CACHE="$HF_HOME/hub" HUGGINGFACE_HUB_CACHE="$HF_HOME/hub" NLTK_DATA="$cache/nltk_data"
fi
if [ "${#missing[@]}" = 0 ]; then
  say "speech weights: in the image (/opt/weights): Whisper-small, MMS_FA, MeloTTS"
else
  list="$(printf '%s, ' "${missing[@]}")"
  say "speech weights not in this image (built with FETCH_WEIGHTS=0): ${list%, }; without network the paper's" \
      "backends cannot run, and --front-end auto (the default) uses the offline ones for them"
fi

exec "$root/run_all.sh" "$@"
