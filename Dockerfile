# tfship images. Two targets from one build:
#   docker build -t tfship:serve .                 (default target: the server)
#   docker build -t tfship:train --target train .  (the training job)
# Both run as an unprivileged user, with exec-form entrypoints so signals reach tfship
# directly (gunicorn's master handles SIGTERM: in-flight and queued requests are answered).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- dependencies: their own layer, rebuilt only when pyproject.toml changes ---
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY pyproject.toml ./
# The runtime dependencies only (not the dev extra), read from pyproject.toml; every one
# ships wheels, so no compiler is ever installed.
RUN python -m venv /opt/venv \
    && python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > requirements.txt \
    && /opt/venv/bin/pip install --requirement requirements.txt

# --- the application on top ---
FROM deps AS app
COPY README.md ./
COPY tfship ./tfship
COPY training ./training
COPY service ./service
RUN /opt/venv/bin/pip install --no-deps . \
    && mkdir -p /app/configs \
    && cp training/configs/*.yaml /app/configs/ \
    && rm -rf /build

FROM ${PYTHON_IMAGE} AS runtime
COPY --from=app /opt/venv /opt/venv
COPY --from=app /app /app
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin tfship \
    && mkdir -p /models /runs \
    && chown 10001 /models /runs
# HOME on /tmp: libraries that cache under ~ write there (a read-only root filesystem in
# Kubernetes mounts an emptyDir on /tmp).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TF_CPP_MIN_LOG_LEVEL=2 \
    TFSHIP_MODEL_DIR=/models
WORKDIR /app
USER 10001

# --- the training job ---
FROM runtime AS train
# Logs, checkpoints, the backup a killed run resumes from, and the run report.
ENV TFSHIP_RUN_DIR=/runs
ENTRYPOINT ["tfship", "train"]
CMD ["/app/configs/digits.yaml", "--model-dir", "/models"]

# --- the server (default target: last) ---
FROM runtime AS serve
ENV TFSHIP_HOST=0.0.0.0 \
    TFSHIP_REST_PORT=8501 \
    TFSHIP_GRPC_PORT=8500 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/tfship-metrics
EXPOSE 8500 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TFSHIP_REST_PORT', '8501') + '/healthz', timeout=4)"]
ENTRYPOINT ["tfship", "serve"]
CMD []
