# The one image of every Sluice function: Knative runs it once per function, with
# FUNCTION_TARGET naming the function (deploy, test, evaluate, sli, gatekeeper, eventlog, intake,
# bridge) and PORT set by Knative (8080). The test function's Jobs run this image too
# (`python -m sluice.functions.testworker`).
#
#   make image                      # docker build -t ghcr.io/sluice-dev/sluice:0.1.0 .
#   docker run -e FUNCTION_TARGET=eventlog -e PORT=8080 -p 8080:8080 ghcr.io/sluice-dev/sluice:0.1.0
#
# The base is pinned to a patch release (bump it on purpose). Build stage: install Sluice's
# dependencies (a layer of their own, cached while pyproject.toml is unchanged), then Sluice,
# into a virtualenv, and compile every module to bytecode. Runtime stage: that virtualenv and the function source, no
# compiler, no pip cache, no tests, run as an unprivileged user (uid 10001).

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, in their own layer: an edit of the code does not reinstall them. An empty
# package stands in for the code so pip resolves pyproject.toml's dependencies and extras.
COPY pyproject.toml README.md ./
RUN mkdir -p functions/sluice && touch functions/sluice/__init__.py \
 && pip install ".[kubernetes,prometheus,aws]" \
 && pip uninstall --yes sluice && rm -rf functions build
COPY functions ./functions
RUN pip install --no-deps . \
 && python -m compileall -q -j 0 /opt/venv/lib

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="sluice" \
      org.opencontainers.image.description="Quality-gated delivery functions for Knative" \
      org.opencontainers.image.source="https://github.com/sluice-dev/sluice" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --gid 10001 sluice \
 && useradd --uid 10001 --gid 10001 --create-home --home-dir /home/sluice --shell /usr/sbin/nologin sluice
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY --chown=root:root functions/main.py ./functions/main.py
COPY --chown=root:root functions/sluice ./functions/sluice
# Bytecode compiled at build time (the image is read-only for uid 10001, and
# PYTHONDONTWRITEBYTECODE keeps it so): a cold start loads .pyc instead of compiling every module,
# and the cached __init__ of every @frozen class (sluice.functions.warm) instead of compiling those.
RUN python -m compileall -q -j 0 /app/functions \
 && cd /app/functions && /opt/venv/bin/python -m sluice.functions.warm
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/home/sluice \
    PORT=8080
USER 10001:10001
EXPOSE 8080
# Shell form on purpose: FUNCTION_TARGET and PORT come from the environment Knative sets;
# exec hands the process the signals (SIGTERM on scale-down).
CMD exec functions-framework --source functions/main.py --target "${FUNCTION_TARGET:?set FUNCTION_TARGET to the function to run (deploy, test, evaluate, sli, gatekeeper, eventlog, intake, bridge)}" --port "$PORT"
