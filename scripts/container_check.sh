#!/usr/bin/env bash
# Build the CPU container from a given base image and check what REPRODUCE.md promises of it, for real (long: a
# build, then three smoke runs of ~10 minutes each on 2 cores; not in CI). Needs a Docker engine with BuildKit.
#
#   scripts/container_check.sh [options]
#     --base IMAGE          base image (default: debian:bookworm; any Debian 12 or Ubuntu 22.04 image)
#     --tag TAG             image tag (default: spiritlm-recall:cpu-check)
#     --sources git|vendor  spiritlm and MeloTTS from GitHub, ROME's known_1000.json from its URL (default), or all
#                           from vendor/ in the repository (source archives at the pinned commits plus SHA256SUMS,
#                           and known_1000.json; git-ignored)
#     --known-1000 FILE     copy ROME's known_1000.json from FILE into vendor/ first (for --sources vendor)
#     --review-timeout S    how long the review-profile case may take to pass its Known step (default 2400 s)
#     --fetch-weights 1|0   bake the speech weights (default 1; 0 where Hugging Face and GitHub are unreachable)
#     --ca FILE             extra CA certificates (PEM) for the build's downloads (TLS-intercepting proxy)
#     --build-network MODE  docker build --network MODE (e.g. host, where dockerd runs without a bridge)
#     --work DIR            host folder for results and checkpoints (default: a new folder under /tmp)
#     --no-cache            build every layer anew (docker build --no-cache), for the full build time
#     --skip-build          check an image already built under --tag
#     --no-outside          skip the smoke run outside the container (the time comparison)
#     --no-smoke            skip the embedded smoke runs (in the container and outside): the other checks only
#   DOCKER=/usr/bin/docker  the client to use (its own, with BuildKit; default: /usr/bin/docker if present)
#
# Checks, each printed with PASS/FAIL and its wall time, then a summary (image size, build time, run times):
#   1. the image: non-root user, the spiritlm package importable and its stray top-level `tests` package absent, the
#      build commit recorded, no certificate of --ca left in any image file;
#   2. docker run --help, and results folders that are not writable (created as root; none mounted): clear errors;
#   3. the embedded smoke profile in the container, with no network, as the image user and as another uid
#      (--user 4321:4321, or the host user's own when not root): exit 0, verdict PASS, the report in the host folder,
#      the image's commit in the manifest; and outside the container (./run_all.sh), for the time comparison;
#   4. a SpiritLM-shaped checkpoint (tests/support/spiritlm_checkpoint.py) mounted read-only at /checkpoints: the
#      SpiritLM path through the installed spiritlm package to a verify report; a damaged copy: a clear error;
#      the same layout mounted one level too high (/checkpoints/checkpoints/...): exit 2 naming the nested folder;
#      SpiritLM's review profile without a GPU and without --allow-cpu: refused with the cost estimate; with
#      --allow-cpu and --network none: past its Known step (ROME's facts from the image, no download), then stopped.
# Exit code: 0 when every check passed, 1 otherwise.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root" || exit 2

base=debian:bookworm
tag=spiritlm-recall:cpu-check
sources=git
fetch_weights=1
ca=""
build_network=""
work=""
known_1000=""
review_timeout=2400
skip_build=0
no_cache=0
outside=1
smoke_runs=1
while [ $# -gt 0 ]; do
  case "$1" in
    --base) base="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    --sources) sources="$2"; shift 2 ;;
    --fetch-weights) fetch_weights="$2"; shift 2 ;;
    --ca) ca="$2"; shift 2 ;;
    --build-network) build_network="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --known-1000) known_1000="$2"; shift 2 ;;
    --review-timeout) review_timeout="$2"; shift 2 ;;
    --no-cache) no_cache=1; shift ;;
    --skip-build) skip_build=1; shift ;;
    --no-outside) outside=0; shift ;;
    --no-smoke) smoke_runs=0; outside=0; shift ;;
    -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "container_check: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
docker="${DOCKER:-}"
if [ -z "$docker" ]; then
  if [ -x /usr/bin/docker ]; then docker=/usr/bin/docker; else docker="$(command -v docker)"; fi
fi
[ -n "$docker" ] || { echo "container_check: no docker client found" >&2; exit 2; }
"$docker" info >/dev/null 2>&1 || { echo "container_check: the Docker engine is not reachable ($docker info)" >&2; exit 2; }
if [ "$sources" = vendor ] && ! ls vendor/*.tar.gz >/dev/null 2>&1; then
  echo "container_check: --sources vendor needs the source archives and SHA256SUMS in $root/vendor/" >&2; exit 2
fi
[ -z "$ca" ] || [ -s "$ca" ] || { echo "container_check: --ca $ca is not a readable file" >&2; exit 2; }
if [ -n "$known_1000" ]; then
  [ -s "$known_1000" ] || { echo "container_check: --known-1000 $known_1000 is not a readable file" >&2; exit 2; }
  mkdir -p vendor && cp "$known_1000" vendor/known_1000.json
fi
if [ "$sources" = vendor ] && [ "$skip_build" = 0 ] && [ ! -s vendor/known_1000.json ]; then
  echo "container_check: --sources vendor needs ROME's known_1000.json in $root/vendor/ (--known-1000 FILE)" >&2
  exit 2
fi
work="${work:-$(mktemp -d /tmp/container-check.XXXXXX)}"
mkdir -p "$work"
chmod 755 "$work"
commit="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
dirty="$(git diff --quiet HEAD 2>/dev/null && echo clean || echo dirty)"
if [ "$(id -u)" = 0 ]; then other_uid=4321 other_gid=4321; else other_uid="$(id -u)" other_gid="$(id -g)"; fi
volume="spiritlm-recall-check-$$"

failures=0
declare -a summary
declare -A times
log() { printf '[container-check] %s\n' "$*"; }
verdict() {  # NAME OK(0/1) DETAIL
  local word=PASS
  [ "$2" = 0 ] || { word=FAIL; failures=$((failures + 1)); }
  log "$word  $1${3:+ ($3)}"
  summary+=("$word  $1${3:+ ($3)}")
}
seconds_since() { echo $(( $(date +%s) - $1 )); }
run_logged() {  # LOGFILE COMMAND...: run, tee the output to LOGFILE, return the command's exit code
  local logfile="$1"; shift
  "$@" > >(tee "$logfile") 2>&1
  local code=$?
  wait
  return $code
}
no_traceback() { ! grep -q "Traceback (most recent call last)" "$1"; }
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() { "$docker" volume rm -f "$volume" >/dev/null 2>&1 || true; }
trap cleanup EXIT
log "work folder: $work; image $tag from $base; commit $commit ($dirty)"

# ------------------------------------------------------------------------------------------------------ 0. build
build_seconds="(not built)"
if [ "$skip_build" = 0 ]; then
  args=(build -t "$tag" --build-arg "BASE_IMAGE=$base" --build-arg "SOURCES=$sources"
        --build-arg "FETCH_WEIGHTS=$fetch_weights" --build-arg "GIT_COMMIT=$commit" --build-arg "GIT_DIRTY=$dirty")
  [ -z "$ca" ] || args+=(--secret "id=ca,src=$ca")
  [ -z "$build_network" ] || args+=(--network "$build_network")
  [ "$no_cache" = 0 ] || args+=(--no-cache)
  log "docker ${args[*]} ."
  start=$(date +%s)
  DOCKER_BUILDKIT=1 run_logged "$work/build.log" "$docker" "${args[@]}" .
  code=$?
  build_seconds="$(seconds_since "$start") s"
  verdict "build" "$code" "$build_seconds; log $work/build.log"
  [ "$code" = 0 ] || { log "the build failed: nothing else to check"; exit 1; }
fi
size_bytes="$("$docker" image inspect -f '{{.Size}}' "$tag")"
size="$(awk -v b="$size_bytes" 'BEGIN { printf "%.2f GB", b / 1e9 }')"
log "image $tag: $size"

# ------------------------------------------------------------------------------------------------------ 1. image
run_in() { "$docker" run --rm --network none "$@"; }
user="$("$docker" image inspect -f '{{.Config.User}}' "$tag")"
[ -n "$user" ] && [ "${user%%:*}" != 0 ] && [ "${user%%:*}" != root ]
verdict "non-root image user" $? "User=$user"

run_in --entrypoint /artifact/.venv/bin/python "$tag" -c "
import importlib.metadata as m, pathlib, sysconfig, sys
site = pathlib.Path(sysconfig.get_paths()['purelib'])
assert not (site / 'tests').exists(), f'{site}/tests exists'
import spiritlm.speech_tokenizer
stamp = (site / 'spiritlm-artifact-commit.txt').read_text().strip()
assert stamp == pathlib.Path('/artifact/SPIRITLM_COMMIT').read_text().strip(), stamp
print('spiritlm', m.version('spiritlm'), 'at', stamp)
" > "$work/image-packages.log" 2>&1
verdict "spiritlm installed at SPIRITLM_COMMIT, no stray site-packages/tests" $? "$(tail -1 "$work/image-packages.log")"

recorded="$(run_in --entrypoint cat "$tag" /artifact/GIT_COMMIT)"
[ "$skip_build" = 1 ] || [ "$recorded" = "$commit $dirty" ]
verdict "build commit recorded in /artifact/GIT_COMMIT" $? "$recorded"

if [ -n "$ca" ]; then
  # The certificates of --ca that the image's own bundle lacks (a proxy's CA) must not be in any file of the image.
  run_in --entrypoint cat "$tag" /etc/ssl/certs/ca-certificates.crt > "$work/image-bundle.pem"
  python3 - "$ca" "$work/image-bundle.pem" "$work/ca-patterns.txt" <<'EOF'
import re, sys
certs = lambda path: re.findall(r"-----BEGIN CERTIFICATE-----\n(.*?)-----END", open(path).read(), re.S)
known = set(certs(sys.argv[2]))
extra = [c for c in certs(sys.argv[1]) if c not in known]
# One distinctive line (the second: the first is often shared between certificates of one issuer) per certificate.
open(sys.argv[3], "w").write("".join(c.splitlines()[1] + "\n" for c in extra))
print(f"{len(extra)} certificate(s) of the CA file are not in the image's bundle")
EOF
  found="$(run_in -v "$work/ca-patterns.txt:/tmp/patterns:ro" --entrypoint bash "$tag" -c '
    [ -s /tmp/patterns ] || exit 0
    { grep -rlF -f /tmp/patterns /etc /tmp /home /artifact /usr/local /opt/weights --exclude-dir=.venv 2>/dev/null
      find / -xdev \( -name "*.pem" -o -name "*.crt" \) -type f -print0 2>/dev/null | xargs -0 grep -lF -f /tmp/patterns
    } | grep -v "^/tmp/patterns$" | sort -u' 2>/dev/null)"
  [ -z "$found" ]
  verdict "no certificate of --ca left in the image" $? "${found:-none found}"
fi

# ------------------------------------------------------------------------------------------ 2. help, bad folders
run_in "$tag" --help > "$work/help.log" 2>&1
code=$?
[ "$code" = 0 ] && grep -q "usage:" "$work/help.log" && no_traceback "$work/help.log"
verdict "docker run IMAGE --help" $? "exit $code"

mkdir -p "$work/root-owned"
[ "$(id -u)" != 0 ] || chown 0:0 "$work/root-owned"
chmod 755 "$work/root-owned"
run_in --user "$other_uid:$other_gid" -v "$work/root-owned:/artifact/results" "$tag" > "$work/unwritable.log" 2>&1
code=$?
[ "$code" = 2 ] && grep -q "mkdir -p results" "$work/unwritable.log" && grep -q -- '--user' "$work/unwritable.log" \
  && no_traceback "$work/unwritable.log"
verdict "results folder not writable by the user: a clear error" $? "exit $code: $(grep -m1 error "$work/unwritable.log")"

run_in --user "$other_uid:$other_gid" "$tag" > "$work/unmounted.log" 2>&1
code=$?
[ "$code" = 2 ] && grep -q "mkdir -p results" "$work/unmounted.log" && no_traceback "$work/unmounted.log"
verdict "no results folder mounted, another uid: a clear error" $? "exit $code"

# --------------------------------------------------------------------------------------------- 3. smoke profile
"$docker" volume create "$volume" >/dev/null
smoke() {  # NAME HOST_UID HOST_GID DOCKER_USER_ARGS...: the smoke profile in the container into $work/NAME
  local name="$1" huid="$2" hgid="$3"; shift 3
  mkdir -p "$work/$name"
  if [ "$(id -u)" = 0 ]; then chown "$huid:$hgid" "$work/$name"; elif [ "$huid" != "$(id -u)" ]; then
    chmod 777 "$work/$name"  # not root: cannot give the folder to the image user
  fi
  local start code report="$work/$name/embedded-smoke/verify/report.md" manifest="$work/$name/embedded-smoke/manifest.json"
  start=$(date +%s)
  run_logged "$work/$name.log" "$docker" run --rm --network none "$@" -v "$volume:/cache" \
    -v "$work/$name:/artifact/results" "$tag" --no-progress
  code=$?
  local took; took="$(seconds_since "$start")"
  times[$name]=$took
  [ "$code" = 0 ] && grep -q "^verdict: PASS" "$work/$name.log" && [ -f "$report" ] && head -5 "$report" | grep -q PASS
  verdict "smoke in the container, $name: PASS, report on the host" $? "exit $code, $took s, $report"
  python3 - "$manifest" "$commit" "$skip_build" <<'EOF'
import json, sys
code = json.load(open(sys.argv[1]))["code"]
assert sys.argv[3] == "1" or code["commit"] == sys.argv[2], code
print(code["commit"], code["source"])
EOF
  verdict "manifest records the image's commit ($name)" $? "$manifest"
  [ "$(stat -c %u "$report" 2>/dev/null)" = "$huid" ]
  verdict "report owned by the host uid $huid ($name)" $?
}
if [ "$smoke_runs" = 1 ]; then
  smoke image-user 1000 1000
  smoke "uid-$other_uid" "$other_uid" "$other_gid" --user "$other_uid:$other_gid"
else
  log "smoke runs skipped (--no-smoke)"
fi

time_outside="(skipped)"
if [ "$outside" = 1 ]; then
  start=$(date +%s)
  run_logged "$work/outside.log" ./run_all.sh --out "$work/outside/embedded-smoke" --no-progress
  code=$?
  time_outside="$(seconds_since "$start")"
  [ "$code" = 0 ] && grep -q "^verdict: PASS" "$work/outside.log"
  verdict "smoke outside the container (./run_all.sh)" $? "exit $code, $time_outside s"
fi

# ----------------------------------------------------------------------------------- 4. SpiritLM-shaped checkpoint
# Needs the generator tests/support/spiritlm_checkpoint.py and the pipeline option --front-end (issue 13); until
# both exist in this checkout these checks are reported as not run (and the check as a whole fails).
time_spiritlm="(not run)"
generator=tests/support/spiritlm_checkpoint.py
if [ -f "$generator" ] && ./run_all.sh --help 2>/dev/null | grep -q -- "--front-end"; then
  ckpt="$work/spiritlm-checkpoints"
  rm -rf "$ckpt"
  # The generator builds HuBERT through Meta's spiritlm code: install it into the host's venv first (idempotent),
  # from vendor/ when the sources are vendored (offline), else at the pinned commit from GitHub.
  spiritlm_archive="$(ls vendor/spiritlm-*.tar.gz 2>/dev/null | head -n 1 || true)"
  { [ -x .venv/bin/python ] || scripts/bootstrap.sh; } > "$work/spiritlm-generate.log" 2>&1
  if [ "$sources" = vendor ] && [ -n "$spiritlm_archive" ]; then
    scripts/install_spiritlm.sh "$spiritlm_archive" >> "$work/spiritlm-generate.log" 2>&1
  else
    scripts/install_spiritlm.sh >> "$work/spiritlm-generate.log" 2>&1
  fi
  .venv/bin/python "$generator" "$ckpt" >> "$work/spiritlm-generate.log" 2>&1
  verdict "SpiritLM-shaped checkpoint generated on the host" $? "$ckpt"
  chmod -R a+rX "$ckpt"
  mkdir -p "$work/spiritlm"
  [ "$(id -u)" != 0 ] || chown "$other_uid:$other_gid" "$work/spiritlm"
  start=$(date +%s)
  run_logged "$work/spiritlm.log" "$docker" run --rm --network none --user "$other_uid:$other_gid" \
    -v "$ckpt:/checkpoints:ro" -v "$volume:/cache" -v "$work/spiritlm:/artifact/results" "$tag" \
    --model spiritlm --profile smoke --front-end offline --no-progress
  code=$?
  time_spiritlm="$(seconds_since "$start")"
  report="$(find "$work/spiritlm" -path '*/verify/report.md' | head -1)"
  [ "$code" -le 1 ] && [ -n "$report" ] && no_traceback "$work/spiritlm.log" \
    && grep -q "SpiritLM" "$work/spiritlm.log"
  verdict "SpiritLM path in the container, checkpoint read-only: a verify report" $? \
    "exit $code, $time_spiritlm s, ${report:-no report}"
  python3 - "$(dirname "$(dirname "${report:-/x/y}")")/manifest.json" <<'EOF'
import json, sys
data = json.load(open(sys.argv[1]))
text = json.dumps(data)
assert "spiritlm" in data["packages"], sorted(data["packages"])[:50]
print("spiritlm", data["packages"]["spiritlm"])
EOF
  verdict "the SpiritLM run used the installed spiritlm package (manifest)" $?

  damaged="$work/spiritlm-damaged"
  rm -rf "$damaged" && cp -a "$ckpt" "$damaged"
  truncate -s 1000 "$damaged"/spiritlm_model/spirit-lm-base-7b/pytorch_model.bin
  rm -f "$damaged"/speech_tokenizer/hubert_25hz/L11_quantizer_500.pt
  mkdir -p "$work/damaged" && { [ "$(id -u)" != 0 ] || chown "$other_uid:$other_gid" "$work/damaged"; }
  run_in --user "$other_uid:$other_gid" -v "$damaged:/checkpoints:ro" -v "$work/damaged:/artifact/results" "$tag" \
    --model spiritlm --profile smoke --front-end offline --no-progress > "$work/damaged-missing.log" 2>&1
  code=$?
  [ "$code" = 2 ] && grep -q "L11_quantizer_500.pt" "$work/damaged-missing.log" && no_traceback "$work/damaged-missing.log"
  verdict "checkpoint missing a file: a clear error naming it" $? "exit $code: $(grep -m1 error "$work/damaged-missing.log")"
  cp -a "$ckpt"/speech_tokenizer/hubert_25hz/L11_quantizer_500.pt "$damaged"/speech_tokenizer/hubert_25hz/
  run_in --user "$other_uid:$other_gid" -v "$damaged:/checkpoints:ro" -v "$work/damaged:/artifact/results" "$tag" \
    --model spiritlm --profile smoke --front-end offline --no-progress > "$work/damaged-truncated.log" 2>&1
  code=$?
  [ "$code" = 2 ] && grep -q "pytorch_model.bin" "$work/damaged-truncated.log" && no_traceback "$work/damaged-truncated.log"
  verdict "checkpoint with a truncated weights file: a clear error naming it" $? \
    "exit $code: $(grep -m1 error "$work/damaged-truncated.log")"

  # A mount one level too high: the layout is in a subfolder of /checkpoints (as spiritlm's README lays it out).
  high="$work/spiritlm-too-high"
  rm -rf "$high" && mkdir -p "$high" && cp -al "$ckpt" "$high/checkpoints" && chmod a+rx "$high"
  run_in --user "$other_uid:$other_gid" -v "$high:/checkpoints:ro" -v "$work/damaged:/artifact/results" "$tag" \
    --model spiritlm --profile smoke --front-end offline --no-progress > "$work/too-high.log" 2>&1
  code=$?
  [ "$code" = 2 ] && grep -q "/checkpoints/checkpoints" "$work/too-high.log" && no_traceback "$work/too-high.log"
  verdict "checkpoints mounted one level too high: exit 2 naming the nested folder" $? \
    "exit $code: $(grep -m1 -i "did you mean\|error" "$work/too-high.log")"

  # SpiritLM's review profile in a container without a GPU, not asked to run on the CPU: refused with the estimate.
  run_in --user "$other_uid:$other_gid" -v "$ckpt:/checkpoints:ro" -v "$work/damaged:/artifact/results" "$tag" \
    --model spiritlm --profile review --front-end offline --no-progress > "$work/no-gpu.log" 2>&1
  code=$?
  [ "$code" = 2 ] && grep -q -- "--allow-cpu" "$work/no-gpu.log" && grep -qE "traces take about [0-9]+ h" "$work/no-gpu.log" \
    && no_traceback "$work/no-gpu.log"
  verdict "SpiritLM review profile without a GPU: refused with the cost estimate" $? \
    "exit $code: $(grep -m1 -- "--allow-cpu" "$work/no-gpu.log")"

  # The review profile with --allow-cpu and no network at all: ROME's facts come from the image; it must get past
  # the Known step (then it is stopped: the whole profile takes hours on a CPU).
  mkdir -p "$work/review" && { [ "$(id -u)" != 0 ] || chown "$other_uid:$other_gid" "$work/review"; }
  name="spiritlm-recall-check-review-$$"
  start=$(date +%s)
  "$docker" run --rm --name "$name" --network none --user "$other_uid:$other_gid" -v "$ckpt:/checkpoints:ro" \
    -v "$volume:/cache" -v "$work/review:/artifact/results" "$tag" \
    --model spiritlm --profile review --front-end offline --allow-cpu --no-progress > "$work/review.log" 2>&1 &
  review_pid=$!
  passed_known=1
  while kill -0 "$review_pid" 2>/dev/null && [ "$(seconds_since "$start")" -lt "$review_timeout" ]; do
    if grep -qE "^--- [0-9]+/[0-9]+ known filters" "$work/review.log"; then passed_known=0; break; fi
    sleep 5
  done
  grep -qE "^--- [0-9]+/[0-9]+ known filters" "$work/review.log" && passed_known=0
  "$docker" rm -f "$name" >/dev/null 2>&1
  wait "$review_pid" 2>/dev/null
  times[review]="$(seconds_since "$start")"
  [ "$passed_known" = 0 ] && no_traceback "$work/review.log"
  verdict "SpiritLM review profile, --network none: past the Known step with the image's known_1000.json" $? \
    "${times[review]} s: $(grep -m1 -E "^--- [0-9]+/[0-9]+ known filters|^Known-t2t" "$work/review.log")"
else
  damaged="$work/spiritlm-damaged"
  mkdir -p "$damaged/spiritlm_model/spirit-lm-base-7b" "$work/damaged"
  echo '{}' > "$damaged/spiritlm_model/spirit-lm-base-7b/config.json"
  chmod -R a+rX "$damaged"
  [ "$(id -u)" != 0 ] || chown "$other_uid:$other_gid" "$work/damaged"
  run_in --user "$other_uid:$other_gid" -v "$damaged:/checkpoints:ro" -v "$work/damaged:/artifact/results" "$tag" \
    --model spiritlm --no-progress > "$work/damaged-missing.log" 2>&1
  code=$?
  [ "$code" = 2 ] && grep -q "tokenizer.model" "$work/damaged-missing.log" && no_traceback "$work/damaged-missing.log"
  verdict "checkpoint folder missing files: a clear error naming them" $? "exit $code: $(grep -m1 error "$work/damaged-missing.log")"
  log "NOT RUN: the SpiritLM path (needs $generator and the pipeline option --front-end, issue 13)"
  summary+=("NOT RUN  SpiritLM path in the container (needs $generator and --front-end)")
  failures=$((failures + 1))
fi

# ------------------------------------------------------------------------------------------------------ summary
echo
log "summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, image $tag from $base, commit $commit $dirty)"
log "  image size: $size"
log "  build time: $build_seconds (sources=$sources, fetch_weights=$fetch_weights, no_cache=$no_cache; without" \
    "--no-cache, cached layers count as 0)"
log "  smoke in the container, image user: ${times[image-user]:-?} s"
log "  smoke in the container, uid $other_uid: ${times[uid-$other_uid]:-?} s"
log "  smoke outside the container: $time_outside s"
log "  SpiritLM path in the container: $time_spiritlm s"
log "  SpiritLM review profile up to its Known step (--network none): ${times[review]:-?} s"
for line in "${summary[@]}"; do log "  $line"; done
if [ "$failures" = 0 ]; then log "verdict: PASS"; exit 0; fi
log "verdict: FAIL ($failures check(s) failed or not run); logs in $work"
exit 1
