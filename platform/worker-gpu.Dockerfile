# The GPU worker image: `celery -A config worker -Q gpu --concurrency 1 --pool solo` (re-scoring
# with CAMs, training runs), one container per GPU. Build from the repository root:
#   docker build -f platform/worker-gpu.Dockerfile -t clear-worker-gpu .
# torch 2.13.0 is the CUDA 12.8 build from PyTorch's cu128 index (https://download.pytorch.org/whl/cu128),
# the same version as the CPU pin of ./dev, constraints.txt and platform/web.Dockerfile. Those CPU
# constraints do not apply here: this image never reads constraints.txt. Its wheels bring their own
# CUDA libraries; the host needs an NVIDIA driver for CUDA 12.8 (570 or later) and the NVIDIA
# Container Toolkit (Docker) or device plugin (Kubernetes).

FROM nvidia/cuda:12.8.1-runtime-ubuntu22.04

ENV DEBIAN_FRONTEND=noninteractive PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
# Python 3.11 (the project's version) from the deadsnakes PPA; Ubuntu 22.04's own is 3.10.
RUN apt-get update \
    && apt-get install -y --no-install-recommends software-properties-common gpg-agent \
    && add-apt-repository -y ppa:deadsnakes/ppa \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv libpq5 \
    && apt-get purge -y --auto-remove software-properties-common gpg-agent \
    && rm -rf /var/lib/apt/lists/* \
    && python3.11 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /app
RUN pip install --index-url https://download.pytorch.org/whl/cu128 torch==2.13.0 torchvision==0.28.0 \
    && pip freeze | grep -E '^(torch|torchvision)==' > /opt/torch-cuda.txt \
    && grep -q '^torch==2.13.0+cu128$' /opt/torch-cuda.txt
COPY . .
# The CUDA build just installed is the constraint now: the project's `torch==2.13.0` is satisfied by
# 2.13.0+cu128, and nothing the project needs may swap it for another build.
RUN PIP_CONSTRAINT=/opt/torch-cuda.txt pip install . \
    && groupadd --system --gid 10001 clear \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home clear \
    && mkdir -p /data/media /data/uploads /data/pretrained /data/media-cache \
    && chown -R clear:clear /data
ENV CLEAR_MODE=production CLEAR_MEDIA_ROOT=/data/media CLEAR_UPLOAD_ROOT=/data/uploads \
    CLEAR_PRETRAINED_DIR=/data/pretrained CLEAR_MEDIA_CACHE_DIR=/data/media-cache \
    XDG_CACHE_HOME=/tmp/.cache
USER 10001:10001
# This worker's own heartbeat (config/probe.py): a worker busy with a training epoch still beats.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD python -m config.probe worker || exit 1
# One process per GPU: a training run or a re-score batch owns the whole device.
CMD ["celery", "-A", "config", "worker", "-Q", "gpu", "--concurrency", "1", "--pool", "solo", \
     "--loglevel", "INFO"]
