# The baseline of `nox -s bench`: an image built the way AC built them in 2022 (astronomer/ap-airflow), with the
# same base, system packages, wheels, extras and lock as ours. One flavour at a time, multi-stage, a plain
# `pip install` of the meta wheel with constraints, no cache mounts, nothing shared between flavours.
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS runtime
ARG RUNTIME_PACKAGES
ENV AIRFLOW_HOME=/usr/local/airflow PIP_NO_CACHE_DIR=True PATH=/opt/airflow/bin:${PATH}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${RUNTIME_PACKAGES} \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 50000 --create-home astro && groupadd --gid 101 astrogroup && usermod -aG astrogroup astro

FROM runtime AS build
ARG BUILD_PACKAGES
ARG PYTHON
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_PACKAGES} \
    && if [ ! -e "/usr/local/include/python${PYTHON}/Python.h" ]; then \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "python${PYTHON}-dev"; fi \
    && rm -rf /var/lib/apt/lists/*
COPY constraints.txt /build/constraints.txt
COPY wheels/ /build/wheels/
ARG META_WHEEL
ARG EXTRAS
ARG PIP_VERSION
# The CA bundle is copied in (and so stays in this stage's layers), as a 2022 build behind a proxy would do.
COPY build-ca.crt /build/build-ca.crt
RUN "python${PYTHON}" -m venv /opt/airflow \
    && PIP_CERT=/build/build-ca.crt /opt/airflow/bin/pip install "pip==${PIP_VERSION}" \
    && PIP_CERT=/build/build-ca.crt /opt/airflow/bin/pip install --find-links /build/wheels \
        --constraint /build/constraints.txt "astronomer-certified[${EXTRAS}] @ file:///build/wheels/${META_WHEEL}"

FROM runtime
COPY --from=build /opt/airflow /opt/airflow
USER astro
WORKDIR /usr/local/airflow
