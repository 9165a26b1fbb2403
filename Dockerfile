# Container for the GPU run with SpiritLM. Minimal for now: the pinned environment and the code.
# Still to come (issue 8): the spiritlm package at its pinned commit, MeloTTS in its own venv, Whisper and MMS_FA
# weights fetched at build time, a CUDA base pinned by digest. No Docker engine runs where this is developed, so it
# has not been built yet.
FROM nvidia/cuda:12.4.1-cudnn-runtime-ubuntu22.04
ENV DEBIAN_FRONTEND=noninteractive PYTHONUNBUFFERED=1
RUN apt-get update && apt-get install -y --no-install-recommends software-properties-common \
    && add-apt-repository -y ppa:deadsnakes/ppa && apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv espeak-ng git \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /artifact
COPY requirements.lock requirements-weights.lock ./
COPY scripts/bootstrap.sh scripts/bootstrap.sh
COPY . .
RUN PYTHON=python3.11 scripts/bootstrap.sh
ENV SPIRITLM_CHECKPOINTS_DIR=/checkpoints
ENTRYPOINT ["./run_all.sh"]
