# Hermetic build environment of an AC release line: the line's Debian and Python, the toolchain pinned by hash.
# Built by ac_release/building/buildenv.py; a build stage only, never shipped.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ARG PYTHON
# The compilers and -dev headers of the line's distro (images/matrix.toml): the wheel check installs a meta wheel that
# pins providers, and some of their dependencies are sdists only (mysqlclient). The Airflow wheel is pure Python.
ARG BUILD_PACKAGES=""
# Extra CA certificates (TLS-intercepting proxies) for reaching package indexes from this build stage.
COPY build-ca.crt /etc/ac-release/build-ca.crt
COPY build-requirements.txt /tmp/build-requirements.txt
RUN set -eu; \
    if [ -n "${BUILD_PACKAGES}" ]; then \
        apt-get update; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${BUILD_PACKAGES}; \
        if [ ! -e "/usr/local/include/python${PYTHON}/Python.h" ]; then \
            DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "python${PYTHON}-dev"; \
        fi; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    if [ -s /etc/ac-release/build-ca.crt ]; then export PIP_CERT=/etc/ac-release/build-ca.crt; fi; \
    "python${PYTHON}" -m venv /opt/build; \
    /opt/build/bin/pip install --quiet --no-cache-dir --disable-pip-version-check --no-deps --require-hashes \
        -r /tmp/build-requirements.txt; \
    rm /tmp/build-requirements.txt
ENV PATH=/opt/build/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1
