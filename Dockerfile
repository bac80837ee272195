# One image for every ordersync role (worker, beat, flower, migrations, paper exchange).
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml constraints.txt README.md ./
COPY ordersync ordersync
COPY worker worker
COPY models models
COPY brokers brokers
COPY api api
COPY alembic alembic
COPY alembic.ini beat_schedule.py ./
RUN pip install --no-cache-dir -c constraints.txt -e . && useradd --create-home ordersync
USER ordersync
