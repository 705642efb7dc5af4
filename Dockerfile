# syntax=docker/dockerfile:1
# LightTune xApp image for the O-RAN SC near-RT RIC.
#   docker build -t 127.0.0.1:5000/lighttune-xapp:0.1.0 .
# Stage 1 builds the RMR library from the upstream o-ran-sc source release and installs the
# xApp with its `ric` extra (ricxappframe, ricsdl) into a virtualenv; stage 2 copies the
# library and the virtualenv into a clean slim Python image that runs as a non-root user.

# Docker Hub python 3.11.9 slim (Debian bookworm), pinned by tag and multi-arch digest.
ARG PYTHON_IMAGE=python:3.11.9-slim-bookworm@sha256:8fb099199b9f2d70342674bd9dbccd3ed03a258f26bbd1d556822c6dfc60c317
ARG RMR_VERSION=4.9.4

FROM ${PYTHON_IMAGE} AS builder
ARG RMR_VERSION
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake curl ca-certificates \
 && rm -rf /var/lib/apt/lists/*

# RMR (librmr_si.so): ricxappframe loads it with ctypes at import time.
WORKDIR /build/rmr
RUN curl -fsSL -o rmr.tar.gz \
      "https://github.com/o-ran-sc/ric-plt-lib-rmr/archive/refs/tags/${RMR_VERSION}.tar.gz" \
 && tar -xzf rmr.tar.gz --strip-components=1 \
 && mkdir .build && cd .build \
 && cmake .. -DCMAKE_INSTALL_PREFIX=/usr/local -DDEV_PKG=0 \
 && make -j"$(nproc)" \
 && make install \
 && test -f "/usr/local/lib/librmr_si.so.${RMR_VERSION}"

# The xApp and its RIC dependencies, in a virtualenv that moves to the final stage as is.
WORKDIR /build/app
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY pyproject.toml README.md ./
COPY lighttune_models ./lighttune_models
COPY lighttune_core ./lighttune_core
COPY lighttune_e2 ./lighttune_e2
COPY lighttune_xapp ./lighttune_xapp
COPY e2sim ./e2sim
COPY lighttune_demo ./lighttune_demo
RUN pip install --no-cache-dir --upgrade pip \
 && pip install --no-cache-dir ".[ric]"

FROM ${PYTHON_IMAGE}
ARG RMR_VERSION
LABEL org.opencontainers.image.title="lighttune-xapp" \
      org.opencontainers.image.description="LightTune link-adaptation xApp for the O-RAN SC near-RT RIC" \
      org.opencontainers.image.licenses="Apache-2.0"

COPY --from=builder /usr/local/lib/librmr_si.so.${RMR_VERSION} /usr/local/lib/
RUN ln -s "librmr_si.so.${RMR_VERSION}" /usr/local/lib/librmr_si.so.4 \
 && ln -s "librmr_si.so.${RMR_VERSION}" /usr/local/lib/librmr_si.so \
 && ldconfig
COPY --from=builder /opt/venv /opt/venv

# Default descriptor; in the RIC the chart's ConfigMap is mounted over /opt/ric/config.
COPY xapp-descriptor/ /opt/ric/config/

RUN groupadd --system --gid 10001 lighttune \
 && useradd --system --uid 10001 --gid 10001 --create-home --home-dir /home/lighttune \
      --shell /usr/sbin/nologin lighttune \
 && mkdir -p /opt/lighttune/models \
 && chown -R 10001:10001 /opt/lighttune

ENV PATH=/opt/venv/bin:$PATH \
    LD_LIBRARY_PATH=/usr/local/lib \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    CONFIG_FILE=/opt/ric/config/config-file.json \
    XAPP_DESCRIPTOR_PATH=/opt/ric/config \
    RMR_RTG_SVC=4561

USER 10001:10001
WORKDIR /home/lighttune
# http (health, metrics, subscription notifications), rmrdata, rmrroute: as in the descriptor.
EXPOSE 8080 4560 4561
ENTRYPOINT ["lighttune-xapp", "--mode", "ric"]
