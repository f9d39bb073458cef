# The worker image: `python -m worker`, configured entirely by environment.
FROM python:3.11.13-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY teams ./teams
COPY contracts ./contracts
COPY providers ./providers
COPY activities ./activities
COPY workflows ./workflows
COPY worker ./worker
COPY teamctl ./teamctl
COPY stores ./stores
COPY security ./security
COPY tools ./tools
COPY streams ./streams
COPY errors ./errors
COPY money ./money
COPY fleet ./fleet
COPY evaluation ./evaluation
COPY telemetry ./telemetry
COPY prompting ./prompting
COPY localdb ./localdb
# Both shared response-cache backends, so AGENT_TEAMS_CACHE_URL can name
# redis://... or postgresql://... without rebuilding the image.
# .temporal/ is the worker's state dir: the default cache URL
# (sqlite:///.temporal/response-cache.sqlite) must be writable by the worker user.
RUN pip install ".[redis,postgres]" \
    && useradd --uid 10001 --no-create-home agent \
    && install -d -o agent -g agent /app/.temporal

USER agent
CMD ["python", "-m", "worker"]
