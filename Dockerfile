# One image for every process of a deployment (web, worker, scheduler, migrate, simulator).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

# procps: the health checks of worker and scheduler look for their processes with pgrep.
RUN apt-get update && apt-get install -y --no-install-recommends procps && rm -rf /var/lib/apt/lists/*

COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN pip install --no-deps . && useradd --create-home --uid 10001 trackcache
USER trackcache

EXPOSE 8000
CMD ["trackcache", "serve", "--host", "0.0.0.0", "--port", "8000"]
