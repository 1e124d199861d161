# tfship images, one per install profile, each from its lock file in requirements/:
#   docker build -t tfship:serve .                       the ONNX server, no TensorFlow (default)
#   docker build -t tfship:serve-tf --target serve-tf .  the server with the SavedModel runtime
#   docker build -t tfship:serve-gpu --target serve-gpu . the ONNX server on CUDA
#   docker build -t tfship:train --target train .        the training job
# All run as an unprivileged user, with exec-form entrypoints so signals reach tfship
# directly (gunicorn's master handles SIGTERM: in-flight and queued requests are answered).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# --- tfship itself, as a wheel every image installs without its dependencies ---
FROM ${PYTHON_IMAGE} AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY tfship ./tfship
COPY training ./training
COPY service ./service
RUN pip wheel --no-deps --wheel-dir /wheels .

# --- one virtual environment per profile: the locked versions, hashes checked ---
# Each rebuilds only when its lock file changes (tfship's wheel goes in after); every
# package ships wheels, so no compiler is ever installed.
FROM ${PYTHON_IMAGE} AS venv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv

FROM venv AS venv-serve
COPY requirements/serve.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --requirement /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl

FROM venv AS venv-serve-tf
COPY requirements/serve-tf.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --requirement /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl

FROM venv AS venv-serve-gpu
COPY requirements/serve-gpu.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --requirement /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl

FROM venv AS venv-train
COPY requirements/train.txt /tmp/requirements.txt
RUN /opt/venv/bin/pip install --require-hashes --no-deps --requirement /tmp/requirements.txt
COPY --from=wheel /wheels /tmp/wheels
RUN /opt/venv/bin/pip install --no-deps /tmp/wheels/*.whl

# --- what every image shares: the user, the environment, the model and run folders ---
FROM ${PYTHON_IMAGE} AS runtime
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
COPY --from=venv-train /opt/venv /opt/venv
COPY training/configs /app/configs
# Logs, checkpoints, the backup a killed run resumes from, and the run report.
ENV TFSHIP_RUN_DIR=/runs
ENTRYPOINT ["tfship", "train"]
CMD ["/app/configs/digits.yaml", "--model-dir", "/models"]

# --- the server's settings, shared by the three server images ---
FROM runtime AS server
ENV TFSHIP_HOST=0.0.0.0 \
    TFSHIP_REST_PORT=8501 \
    TFSHIP_GRPC_PORT=8500 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/tfship-metrics
EXPOSE 8500 8501
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TFSHIP_REST_PORT', '8501') + '/healthz', timeout=4)"]
ENTRYPOINT ["tfship", "serve"]
CMD []

FROM server AS serve-tf
COPY --from=venv-serve-tf /opt/venv /opt/venv

# CUDA and cuDNN come as wheels in the venv; the node provides the driver (the NVIDIA
# container toolkit mounts it). `cuda` refuses to start without a GPU rather than fall back.
FROM server AS serve-gpu
COPY --from=venv-serve-gpu /opt/venv /opt/venv
ENV TFSHIP_DEVICE=cuda

# --- the ONNX server (default target: last) ---
FROM server AS serve
COPY --from=venv-serve /opt/venv /opt/venv
