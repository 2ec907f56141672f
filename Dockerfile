# syntax=docker/dockerfile:1
# The project's one image: the KFP pipeline steps, the PyTorchJob trainer (torchrun) and the base of the serving
# runtime. Build one variant per accelerator (docs/deploy.md):
#
#   docker build --build-arg TORCH_VARIANT=cu128 -t REGISTRY/lgmsnet:0.1.0-cu128 .   # GPU nodes
#   docker build --build-arg TORCH_VARIANT=cpu   -t REGISTRY/lgmsnet:0.1.0-cpu .     # CPU-only steps, CI
#
# TORCH_VARIANT picks the PyTorch wheel index https://download.pytorch.org/whl/<variant>: choose one that publishes
# torch 2.13.0 and that the GPU nodes' NVIDIA driver supports. Everything else is pinned by requirements/lock.txt,
# a pip constraints file holding the development venv's versions. No credentials are baked in: S3 and MLflow
# credentials reach the pods from Kubernetes Secrets at run time.
FROM python:3.11-slim

ARG TORCH_VARIANT=cu128
ARG TORCH_VERSION=2.13.0

LABEL org.opencontainers.image.title="lgmsnet" \
      org.opencontainers.image.description="LGMSNet segmentation: training, evaluation, MLOps pipeline steps" \
      org.opencontainers.image.licenses="Apache-2.0"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NO_ALBUMENTATIONS_UPDATE=1 \
    DVC_NO_ANALYTICS=1

# git: the data-versioning step clones dataset repositories; ca-certificates: TLS to S3, MLflow and git hosts.
# Debian package versions are not pinned (DL3008): the base image tag fixes the Debian release, and pinned
# versions disappear from the archive at each point release, which would break rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends git ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# torch first, in its own layer, from the variant's index (the PyPI default would be a CUDA build for every variant).
RUN pip install --no-cache-dir "torch==${TORCH_VERSION}" --index-url "https://download.pytorch.org/whl/${TORCH_VARIANT}"

WORKDIR /app
COPY requirements/lock.txt requirements/lock.txt
COPY pyproject.toml README.md ./
# The dependencies only, in a layer that a source change does not invalidate: install the project's extras
# against empty package stubs, then remove the stub.
RUN mkdir -p lgmsnet components pipelines \
 && touch lgmsnet/__init__.py components/__init__.py pipelines/__init__.py \
 && pip install --no-cache-dir -c requirements/lock.txt ".[mlops,export]" \
 && pip uninstall -y lgmsnet \
 && rm -rf lgmsnet components pipelines build ./*.egg-info

COPY lgmsnet/ lgmsnet/
COPY components/ components/
COPY pipelines/ pipelines/
COPY policies/ policies/
# Editable on purpose: the pipeline steps resolve the gate policies (policies/gate.yaml) next to the source tree
# (components.pipeline_steps.resolve_policy), which a wheel install would leave behind.
RUN pip install --no-cache-dir --no-deps -c requirements/lock.txt -e . \
 && groupadd --gid 10001 lgmsnet \
 && useradd --uid 10001 --gid 10001 --create-home --shell /usr/sbin/nologin lgmsnet \
 && mkdir -p /workspace \
 && chown 10001:10001 /workspace

USER 10001:10001
WORKDIR /workspace

# `lgmsnet COMMAND ...`; pipeline steps and the PyTorchJob override it (python -m ..., torchrun ...).
ENTRYPOINT ["lgmsnet"]
CMD ["--help"]
