# syntax=docker/dockerfile:1
# maskserve, CPU image. Build from the repository root:
#   docker build -t REGISTRY/maskserve:0.1.0 .
# Run it as KServe does (read-only root, writable /tmp, model mounted read-only at /mnt/models):
#   docker run --read-only --tmpfs /tmp -v "$PWD/model:/mnt/models:ro" -p 8080:8080 -p 8081:8081 \
#     REGISTRY/maskserve:0.1.0 --model_name=bert
# The CUDA variant is Dockerfile.cuda; docs/deploy-kserve.md covers KServe.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/maskserve
ENV PATH="/opt/maskserve/bin:${PATH}"
# torch goes first, pinned and from the CPU index: left to the package's version range, pip would fetch
# the newest build from PyPI, which on Linux is the CUDA one with several GB of CUDA libraries.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"
# Only what the wheel build reads (.dockerignore keeps the rest of the tree out of the context).
COPY pyproject.toml README.md /src/
COPY src/ /src/src/
# onnx for --backend onnx; s3 and gcs so this image can also run `maskserve download` as an init container.
ARG EXTRAS=onnx,s3,gcs
RUN pip install --no-cache-dir "/src[${EXTRAS}]" \
    && python -c "import torch; assert torch.version.cuda is None, torch.__version__"

FROM ${PYTHON_IMAGE}
# Re-declared: an ARG from before the first FROM is not visible inside a stage.
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="maskserve" \
      org.opencontainers.image.description="Inference server for Hugging Face fill-mask models (KServe V1/V2, Open Inference Protocol, Hugging Face Inference API), CPU build" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
# UID/GID 1000, numeric in USER below so that Kubernetes can verify runAsNonRoot. /mnt/models stays
# root-owned: the server only reads its model. HOME and every cache point at /tmp, the one writable path
# under readOnlyRootFilesystem (an emptyDir in the manifests, --tmpfs with docker run).
RUN groupadd --gid 1000 maskserve \
    && useradd --uid 1000 --gid 1000 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin maskserve \
    && mkdir -p /mnt/models
COPY --from=build /opt/maskserve /opt/maskserve
ENV PATH="/opt/maskserve/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp \
    HF_HOME=/tmp/huggingface
WORKDIR /tmp
USER 1000:1000
EXPOSE 8080 8081
# No HEALTHCHECK: Kubernetes and KServe probe /v2/health/* themselves, and a baked-in probe would be wrong
# as soon as --http_port is overridden. maskserve is PID 1 and handles SIGTERM itself (drains, exits 0).
# KServe passes flags only (they replace CMD); the CLI treats a flags-only argv as `serve`.
ENTRYPOINT ["maskserve"]
CMD ["serve", "--model_dir=/mnt/models", "--http_port=8080", "--grpc_port=8081"]
