# One image for every Junction process: the broker, the agency connectors, and the
# one-shot jobs (keys, synthetic town, registry seed). No key or secret is baked in:
# docker-compose.yml mounts them from deploy/keys/ at run time.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 junction \
    && useradd --system --uid 10001 --gid junction --home-dir /var/lib/junction \
        --shell /usr/sbin/nologin junction

WORKDIR /app
COPY pyproject.toml README.md ./
COPY audit ./audit
COPY broker ./broker
COPY connectors ./connectors
COPY policies ./policies
RUN pip install '.[postgres,mysql]'
# The agency mappings and local policies are read from /app/connectors/agencies; the
# keys script is run by the compose file's one-shot keys service.
COPY deploy/init_keys.py ./deploy/init_keys.py

# Named volumes copy this ownership on first use, so the services can write their state.
RUN mkdir -p /var/lib/junction/state /var/lib/junction/town \
    && chown -R junction:junction /var/lib/junction

USER junction
EXPOSE 8000 8100
CMD ["junction", "broker", "serve"]
