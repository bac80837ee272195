# One image for every ordersync role (worker, beat, flower, exporter, HTTP API, migrations,
# paper exchange). No ENTRYPOINT or CMD: each service names its command, `ordersync ...` or
# `celery -A worker ...`, both installed on the PATH by pip.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY ordersync ordersync
COPY core core
COPY worker worker
COPY models models
COPY brokers brokers
COPY api api
COPY alembic alembic
COPY alembic.ini beat_schedule.py ./
# Local state (beat's schedule, a worker's metrics files) lives in a directory the
# unprivileged user owns; the code in /app stays read-only to it.
ENV ORDERSYNC_VAR_DIR=/var/lib/ordersync
RUN pip install --no-cache-dir -c constraints.txt -e . \
    && useradd --create-home ordersync \
    && install -d -o ordersync -g ordersync /var/lib/ordersync
USER ordersync
