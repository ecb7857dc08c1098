# The image Kubeflow tasks compiled by 'amml compile kfp' run in: AMML with its command line.
#   docker build -t amml:latest .
#   amml compile kfp examples/sensors/workflow.yaml -o pipeline.yaml --image amml:latest
# Each task runs 'amml step WORKFLOW STEP' from /workspace, where examples/ is copied; build
# FROM this image and COPY your own workflows (and their imports) there. Every task must
# reach one store: mount a shared volume at /mnt/amml (the amml_home pipeline parameter), or
# set amml_store_url (PostgreSQL) and amml_artifacts_url (an fsspec URL, e.g. s3://...).
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /opt/amml
# PyTorch first and pinned, the CPU build (as the Makefile does)
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install .

WORKDIR /workspace
COPY examples ./examples
ENV AMML_HOME=/mnt/amml
CMD ["amml", "--help"]
