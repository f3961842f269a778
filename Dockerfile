# imap-bouncer as a container: `docker build -t imap-bouncer .`, then
#   docker run -d --name imap-bouncer -v imap-bouncer-data:/data \
#     -v ./settings.toml:/etc/imap-bouncer/settings.toml:ro \
#     -e IMAP_BOUNCER_IMAP__PASSWORD_FILE=/run/secrets/imap_password imap-bouncer
# The release is pinned in the tag: python:3.11-slim moves to newer Debian releases.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
COPY pyproject.toml README.md ./
COPY imap_bouncer ./imap_bouncer
# `prepare` stores the analyzers' compiled patterns beside the package: faster start-up.
RUN pip install . && imap-bouncer prepare && rm -rf /src

# An unprivileged user; the SQLite database (the default) lives in the /data volume.
RUN useradd --system --home-dir /data --create-home --uid 10001 bouncer
USER bouncer
WORKDIR /data
VOLUME ["/data"]
ENV IMAP_BOUNCER_DATABASE__URL=sqlite:////data/imap-bouncer.db

# SIGTERM (docker stop) finishes the batch in hand, logs out and exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["imap-bouncer"]
CMD ["run"]
