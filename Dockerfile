# The worker image: `python -m worker`, configured entirely by environment.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY teams ./teams
COPY providers ./providers
COPY activities ./activities
COPY workflows ./workflows
COPY worker ./worker
COPY teamctl ./teamctl
RUN pip install . \
    && useradd --uid 10001 --no-create-home agent

USER agent
CMD ["python", "-m", "worker"]
