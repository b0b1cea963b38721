# tsunagu service image: the same code runs the web app, the workers and (for a demo) the stand-ins.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /srv/tsunagu
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md alembic.ini ./
COPY app ./app
COPY consent ./consent
COPY connectors ./connectors
COPY rules ./rules
COPY notify ./notify
COPY mocks ./mocks
COPY migrations ./migrations
RUN pip install -e . && useradd --system --uid 10001 tsunagu && mkdir -p var && chown tsunagu var
USER tsunagu
EXPOSE 8000
CMD ["tsunagu", "serve", "--host", "0.0.0.0", "--port", "8000"]
