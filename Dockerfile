# One image for every Container Cloud service: the entry point's first argument picks it
# (`docker run ccloud api`, `... providers.baremetal`); see deploy/docker/entrypoint.sh.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/ccloud/bin:$PATH \
    CCLOUD_DATA_DIR=/var/lib/ccloud \
    CCLOUD_HEALTH_HOST=0.0.0.0 \
    CCLOUD_HEALTH_PORT=9090

RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/ccloud ccloud \
    && mkdir -p /var/lib/ccloud \
    && chown 10001:10001 /var/lib/ccloud \
    && python -m venv /opt/ccloud

WORKDIR /opt/ccloud/src
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
RUN pip install --editable . \
    && python -c "import services, shared"

COPY --chmod=0755 deploy/docker/entrypoint.sh /usr/local/bin/ccloud-entrypoint

USER 10001:10001
WORKDIR /var/lib/ccloud
VOLUME ["/var/lib/ccloud"]
EXPOSE 9090
ENTRYPOINT ["/usr/local/bin/ccloud-entrypoint"]
CMD ["--help"]
