# newswire's one image: every service of `newswire run` is `newswire <verb>` in it
# (deploy/docker-compose.yml starts each from this image). Not built in this project's CI:
# its machines have no Docker engine (see the README's "Deploying with Docker").
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEWSWIRE_HOME=/var/lib/newswire \
    NEWSWIRE_LOG_LEVEL=INFO

RUN useradd --system --uid 10001 --home-dir /var/lib/newswire --create-home newswire \
    && install -d -o newswire -g newswire /srv/newswire/drop

WORKDIR /opt/newswire
COPY pyproject.toml setup.py README.md ./
COPY newswire ./newswire
COPY producers ./producers
COPY consumers ./consumers
COPY schemas ./schemas
RUN pip install . && newswire --help >/dev/null

USER newswire
VOLUME ["/var/lib/newswire"]
ENTRYPOINT ["newswire"]
CMD ["--help"]
