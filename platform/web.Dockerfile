# The web image: gunicorn serving the API, the browser app and the admin; also runs the CPU worker,
# the beat and the migrate job (same code, CPU-only torch). Build from the repository root:
#   docker build -f platform/web.Dockerfile -t clear-web .
# Slim on purpose: torch comes from PyTorch's CPU index (about 200 MB instead of the CUDA build's
# several GB that PyPI's Linux wheel pulls in); GPU work runs in platform/worker-gpu.Dockerfile.

# The browser app is built in its own stage; only its static build reaches the image.
FROM node:22-bookworm-slim AS frontend
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/index.html frontend/vite.config.ts frontend/tsconfig.json ./
COPY frontend/src ./src
RUN npm run build

FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CONSTRAINT=/app/constraints.txt
WORKDIR /app
# libpq5 for psycopg; curl for the HEALTHCHECK below.
RUN apt-get update && apt-get install -y --no-install-recommends libpq5 curl \
    && rm -rf /var/lib/apt/lists/*
COPY constraints.txt pyproject.toml ./
# torch first, exactly pinned as in ./dev and constraints.txt, from the CPU index: the project's
# `torch==2.13.0` is then satisfied by 2.13.0+cpu and the constraint keeps every later install
# from replacing it.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 torchvision==0.28.0
COPY . .
COPY --from=frontend /frontend/static/frontend ./frontend/static/frontend
# A fixed uid/gid (10001), so that Kubernetes' runAsUser and volume ownership (fsGroup) match it.
RUN pip install . \
    && groupadd --system --gid 10001 clear \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home clear \
    && mkdir -p /data/media /data/uploads /data/pretrained /data/media-cache \
    && chown -R clear:clear /data
ENV CLEAR_MODE=production CLEAR_MEDIA_ROOT=/data/media CLEAR_UPLOAD_ROOT=/data/uploads \
    CLEAR_PRETRAINED_DIR=/data/pretrained CLEAR_MEDIA_CACHE_DIR=/data/media-cache \
    DJANGO_STATIC_ROOT=/app/static XDG_CACHE_HOME=/tmp/.cache
# Static files are collected at build time (whitenoise serves them); the secrets here only let the
# settings load in production mode and never reach a running container.
RUN DJANGO_SECRET_KEY=collectstatic-at-build-time CLEAR_PSEUDONYM_SECRET=collectstatic-at-build-time \
    python manage.py collectstatic --no-input
USER 10001:10001
EXPOSE 8000
# Liveness only (/healthz touches neither database nor broker). Django answers 400 to a Host header
# that DJANGO_ALLOWED_HOSTS does not list, so the probe sends the first host listed there.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD host="${DJANGO_ALLOWED_HOSTS:-localhost}"; \
        curl -fsS -o /dev/null -H "Host: ${host%%,*}" http://127.0.0.1:8000/healthz || exit 1
# gthread workers: a long upload (up to CLEAR_MAX_UPLOAD_BYTES) occupies a thread, not the worker's
# heartbeat to the gunicorn arbiter, so it is not killed by --timeout half-way.
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--worker-class", "gthread", "--threads", "4", "--timeout", "120", \
     "--worker-tmp-dir", "/tmp", "--access-logfile", "-"]
