# The collector's one image: every collector service of docker-compose.yml (workers, beat,
# streamers, Flower, the metrics exporter) runs it with its own command.
FROM python:3.11-slim

# COLLECTOR_DATA_DIR: the embedded defaults' files (beat's schedule, Flower's db) go under
# /data, where the services that keep them mount a volume, not beside the code.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    COLLECTOR_DATA_DIR=/data

WORKDIR /app

# Dependencies first: this layer is rebuilt only when requirements.txt changes
# (on x86_64 every pin installs from a manylinux wheel, psycopg2-binary included: no compiler).
COPY requirements.txt .
RUN pip install -r requirements.txt

# A user of its own. /data and /metrics are where named volumes are mounted (a new named
# volume takes the owner of the directory it is mounted over); logs/ for LOG_MAX_FILES.
RUN useradd --system --create-home --uid 10001 --user-group collector \
    && mkdir -p /data /metrics /app/logs \
    && chown collector:collector /data /metrics /app/logs

# Only the code and its configuration: never .venv, var/, .git or a local .env with secrets.
# flowerconfig.py: Flower reads ./flowerconfig.py (loopback unless told, refuses no-auth public)
COPY celeryconfig.py flowerconfig.py collectors.toml ./
COPY proj/ proj/
COPY streamers/ streamers/
COPY tasks/ tasks/

USER collector

# A sensible default; docker-compose.yml gives each service its own command.
CMD ["celery", "-A", "proj", "worker", "--loglevel=INFO"]
