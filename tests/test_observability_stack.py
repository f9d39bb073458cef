"""The compose observability stack: the collector, Jaeger, Prometheus and Grafana
services as ``docker compose config`` resolves them, the deploy/ files they mount,
how those files point at each other, and the Grafana dashboard's queries against
the project's metric names (telemetry/names.py).

Without a Docker engine nothing here starts a container: the checks are the ones
a typo would fail (a port, a service name, a metric name, a datasource uid).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import telemetry.names
from tests.compose_config import compose_config

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "agent-teams.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards" / "dashboards.yaml"
PINNED_TAG = re.compile(r"^v?\d+\.\d+\.\d+$")

# service -> (image repository, container ports published on the same host port)
STACK = {
    "otel-collector": ("otel/opentelemetry-collector-contrib", {4317, 4318}),
    "jaeger": ("jaegertracing/all-in-one", {16686}),
    "prometheus": ("prom/prometheus", {9090}),
    "alertmanager": ("prom/alertmanager", {9093}),
    "grafana": ("grafana/grafana", {3000}),
    "temporal-ui": ("temporalio/ui", {8080}),
}
WORKER_TELEMETRY_ENV = {
    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel-collector:4318",
    "OTEL_SERVICE_NAME": "agent-teams-worker",
    "AGENT_TEAMS_METRICS_ADDRESS": "0.0.0.0:9464",
    "AGENT_TEAMS_LOG_FORMAT": "json",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """``docker compose config`` as JSON, with no project variables from the shell."""
    return compose_config()


def _load_yaml(path: Path) -> Any:
    yaml = pytest.importorskip("yaml", reason="PyYAML is needed to parse the deploy/ YAML files")
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _bind_mount(service: dict[str, Any], source: Path) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = service.get("volumes", [])
    (mount,) = [v for v in volumes if v["type"] == "bind" and Path(v["source"]) == source]
    return mount


def _port(address: str) -> int:
    """The port of ``host:port`` or of a URL."""
    if "://" in address:
        port = urlsplit(address).port
        assert port is not None, address
        return port
    return int(address.rpartition(":")[2])


# --- compose ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(STACK))
def test_ui_and_collector_services_are_pinned_and_published(
    compose: dict[str, Any], name: str
) -> None:
    service = compose["services"][name]
    repository, ports = STACK[name]

    image, _, tag = service["image"].rpartition(":")
    assert image == repository
    assert PINNED_TAG.match(tag), f"{name}: {service['image']} is not pinned to a version"
    published = {p["target"]: int(p["published"]) for p in service.get("ports", [])}
    assert {port: port for port in ports}.items() <= published.items()


def test_worker_sends_telemetry_to_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]

    assert WORKER_TELEMETRY_ENV.items() <= worker["environment"].items()
    collector = urlsplit(worker["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]).hostname
    assert collector in services and collector in worker["depends_on"]
    # Replicas would fight over a published metrics port: Prometheus reaches
    # each one on the compose network instead.
    assert "ports" not in worker


def test_every_bind_mounted_file_exists(compose: dict[str, Any]) -> None:
    mounts = [
        (name, volume)
        for name, service in compose["services"].items()
        for volume in service.get("volumes", [])
        if volume["type"] == "bind"
    ]
    deploy_mounts = [(n, v) for n, v in mounts if Path(v["source"]).is_relative_to(DEPLOY)]

    assert {n for n, _ in deploy_mounts} >= {"otel-collector", "prometheus", "grafana", "worker"}
    for name, volume in deploy_mounts:
        assert volume.get("read_only") is True, f"{name}: {volume['source']} is writable"
        if Path(volume["source"]).is_relative_to(DEPLOY / "secrets"):
            continue  # made by `teamctl compose-env`, never committed
        assert Path(volume["source"]).exists(), f"{name}: {volume['source']} does not exist"


# --- the collector -----------------------------------------------------------------


def test_collector_receives_otlp_and_routes_traces_to_jaeger(compose: dict[str, Any]) -> None:
    services = compose["services"]
    collector = services["otel-collector"]
    path = DEPLOY / "otel-collector.yaml"
    config = _load_yaml(path)

    mount = _bind_mount(collector, path)
    assert f"--config={mount['target']}" in collector["command"]
    protocols = config["receivers"]["otlp"]["protocols"]
    assert _port(protocols["grpc"]["endpoint"]) == 4317
    assert _port(protocols["http"]["endpoint"]) == 4318
    worker_endpoint = services["worker"]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"]
    assert _port(worker_endpoint) == _port(protocols["http"]["endpoint"])

    (traces_exporter,) = config["service"]["pipelines"]["traces"]["exporters"]
    assert traces_exporter.split("/")[0] == "otlp"
    host, _, port = config["exporters"][traces_exporter]["endpoint"].partition(":")
    assert (host, port) == ("jaeger", "4317")  # Jaeger's OTLP/gRPC receiver
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    assert config["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]


def test_collector_pipelines_use_only_defined_components() -> None:
    config = _load_yaml(DEPLOY / "otel-collector.yaml")
    service = config["service"]

    for name, pipeline in service["pipelines"].items():
        for section in ("receivers", "processors", "exporters"):
            undefined = set(pipeline.get(section, [])) - set(config.get(section) or {})
            assert not undefined, f"pipeline {name}: undefined {section} {sorted(undefined)}"
    assert set(service.get("extensions", [])) <= set(config.get("extensions") or {})


# --- Prometheus ---------------------------------------------------------------------


def _scrape_jobs() -> dict[str, dict[str, Any]]:
    config = _load_yaml(DEPLOY / "prometheus.yml")
    return {job["job_name"]: job for job in config["scrape_configs"]}


def _targets(job: dict[str, Any]) -> set[str]:
    static = {t for c in job.get("static_configs", []) for t in c["targets"]}
    dns = {f"{n}:{c['port']}" for c in job.get("dns_sd_configs", []) for n in c["names"]}
    return static | dns


def test_prometheus_scrapes_every_worker_and_the_collector(compose: dict[str, Any]) -> None:
    services = compose["services"]
    prometheus = services["prometheus"]
    jobs = _scrape_jobs()

    mount = _bind_mount(prometheus, DEPLOY / "prometheus.yml")
    assert f"--config.file={mount['target']}" in prometheus["command"]
    metrics_port = _port(services["worker"]["environment"]["AGENT_TEAMS_METRICS_ADDRESS"])
    # DNS discovery finds each replica of `docker compose up --scale worker=N`.
    (worker_sd,) = jobs["agent-teams-worker"]["dns_sd_configs"]
    assert (worker_sd["names"], worker_sd["type"]) == (["worker"], "A")
    assert _targets(jobs["agent-teams-worker"]) == {f"worker:{metrics_port}"}

    collector = _load_yaml(DEPLOY / "otel-collector.yaml")
    exporter_port = _port(collector["exporters"]["prometheus"]["endpoint"])
    assert _targets(jobs["otel-collector"]) == {f"otel-collector:{exporter_port}"}
    for job in jobs.values():
        for target in _targets(job):
            assert target.partition(":")[0] in {*services, "localhost"}, target


def test_prometheus_alerts_through_alertmanager(compose: dict[str, Any]) -> None:
    services = compose["services"]
    alertmanager = services["alertmanager"]
    config = _load_yaml(DEPLOY / "prometheus.yml")

    (target,) = [
        t
        for a in config["alerting"]["alertmanagers"]
        for c in a["static_configs"]
        for t in c["targets"]
    ]
    assert target == "alertmanager:9093"
    assert {p["target"] for p in alertmanager["ports"]} == {_port(target)}
    assert f"--web.listen-address=:{_port(target)}" in alertmanager["entrypoint"][-1]
    # Alertmanager runs the config the entrypoint renders from the mounted one.
    mount = _bind_mount(alertmanager, DEPLOY / "alertmanager.yml")
    render = _bind_mount(alertmanager, DEPLOY / "alertmanager-render.sh")
    script = alertmanager["entrypoint"][-1]
    assert script.startswith(f"sh {render['target']} {mount['target']} /tmp/alertmanager.yml &&")
    assert "--config.file=/tmp/alertmanager.yml" in script
    assert alertmanager["tmpfs"] == ["/tmp"]  # the rendered URL stays in memory
    assert alertmanager["environment"] == {"AGENT_TEAMS_ALERT_WEBHOOK_URL": ""}
    # Every rule file Prometheus loads is mounted read-only from deploy/.
    mounted = {
        v["target"]: Path(v["source"])
        for v in services["prometheus"]["volumes"]
        if v["type"] == "bind"
    }
    assert {mounted[f] for f in config["rule_files"]} == {
        DEPLOY / "prometheus-rules.yml",
        DEPLOY / "prometheus-alerts.yml",
        DEPLOY / "prometheus-slas.yml",
    }


def test_the_webhook_url_comes_from_the_environment() -> None:
    url = "https://hooks.example.com/services/T0/B0/x"
    alertmanager = compose_config(AGENT_TEAMS_ALERT_WEBHOOK_URL=url)["services"]["alertmanager"]

    assert alertmanager["environment"] == {"AGENT_TEAMS_ALERT_WEBHOOK_URL": url}


# --- Grafana ------------------------------------------------------------------------


def _datasources() -> dict[str, dict[str, Any]]:
    return {d["uid"]: d for d in _load_yaml(DATASOURCES)["datasources"]}


def test_grafana_provisions_datasources_and_the_dashboard(compose: dict[str, Any]) -> None:
    services = compose["services"]
    grafana = services["grafana"]
    datasources = _datasources()

    assert {d["type"] for d in datasources.values()} == {"prometheus", "jaeger"}
    for datasource in datasources.values():
        url = urlsplit(datasource["url"])
        published = {p["target"] for p in services[str(url.hostname)].get("ports", [])}
        assert url.port in published, datasource["url"]

    provisioning = _bind_mount(grafana, DEPLOY / "grafana" / "provisioning")
    assert provisioning["target"] == "/etc/grafana/provisioning"
    dashboards = _bind_mount(grafana, DASHBOARD.parent)
    (provider,) = _load_yaml(DASHBOARD_PROVIDERS)["providers"]
    assert provider["options"]["path"] == dashboards["target"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards['target']}/{DASHBOARD.name}"
    # Nobody gets in without the admin password (tests/test_compose_security.py).
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


# --- the dashboard ------------------------------------------------------------------


_KINDS = {"Counter", "Gauge", "Histogram"}


def _project_metrics() -> dict[str, str]:
    """Emitted metric name -> kind, from the kind that starts each constant's docstring.

    A name documented as "not emitted" (derived from others, e.g. by a recording
    rule) is left out: a panel querying it would stay empty.
    """
    tree = ast.parse(Path(telemetry.names.__file__).read_text(encoding="utf-8"))
    kinds: dict[str, str] = {}
    for statement, following in zip(tree.body, tree.body[1:], strict=False):
        if (
            isinstance(statement, ast.Assign)
            and isinstance(statement.value, ast.Constant)
            and re.fullmatch(r"agent_teams_\w+", str(statement.value.value))
        ):
            name = str(statement.value.value)
            assert isinstance(following, ast.Expr), f"{name} has no docstring"
            doc = following.value
            assert isinstance(doc, ast.Constant) and isinstance(doc.value, str)
            kind = doc.value.split(":")[0]
            if kind in _KINDS:
                kinds[name] = kind
            else:
                assert "not emitted" in doc.value, f"{name}: docstring names no kind of {_KINDS}"
    assert kinds, "no metric names found in telemetry/names.py"
    return kinds


def _allowed_series() -> set[str]:
    allowed: set[str] = set()
    for name, kind in _project_metrics().items():
        if kind == "Histogram":
            allowed |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
        else:
            allowed.add(name)
    return allowed


_NOT_METRICS = {"and", "or", "unless", "bool", "offset", "group_left", "group_right", "inf", "nan"}


def _metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects (functions, labels, strings stripped)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\$\w+", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w:.])[A-Za-z_:][\w:]*", expr):
        is_function = expr[match.end() :].lstrip().startswith("(")
        if not is_function and match.group().lower() not in _NOT_METRICS:
            names.add(match.group())
    return names


def test_metric_names_are_found_in_promql() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (agent, le) (rate(a_bucket{job="$job", x=~"a|b"}'
        "[$__rate_interval]))) / on (agent) group_left sum(b_total) * 1e6 > bool 0"
    )

    assert _metric_names(expr) == {"a_bucket", "b_total"}


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))


def _prometheus_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and templating query on Prometheus."""
    for panel in _panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            source = target.get("datasource") or panel["datasource"]
            if source["type"] == "prometheus":
                yield f"{panel['title']}/{target['refId']}", target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            # label_values(<series selector>, <label>): only the selector is PromQL.
            selector = re.fullmatch(r"label_values\((.*),\s*\w+\)", query)
            yield f"${variable['name']}", selector.group(1) if selector else query


def test_dashboard_panels_have_titles_and_unique_ids() -> None:
    dashboard = _dashboard()
    panels = list(_panels(dashboard["panels"]))

    assert dashboard["uid"] == "agent-teams"
    assert len(panels) > 10
    for panel in panels:
        assert panel.get("title", "").strip(), f"panel {panel.get('id')} has no title"
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))


def test_dashboard_queries_only_known_metrics() -> None:
    allowed = _allowed_series()
    queries = list(_prometheus_queries(_dashboard()))

    assert queries
    for where, expr in queries:
        names = _metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        unknown = {n for n in names if n not in allowed and not n.startswith("temporal_")}
        assert not unknown, f"{where}: unknown metric(s) {sorted(unknown)} in {expr!r}"


def test_dashboard_shows_every_project_metric() -> None:
    shown = {n for _, expr in _prometheus_queries(_dashboard()) for n in _metric_names(expr)}
    series = {n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count") for n in shown}

    missing = set(_project_metrics()) - series
    assert not missing, f"no panel shows {sorted(missing)} (add one to {DASHBOARD.name})"
    sdk = {n for n in shown if n.startswith("temporal_")}
    assert {
        "temporal_activity_execution_failed",
        "temporal_workflow_completed",
        "temporal_activity_schedule_to_start_latency_bucket",
        "temporal_workflow_task_schedule_to_start_latency_bucket",
    } <= sdk


def test_dashboard_latency_panel_has_p50_p95_p99_per_agent() -> None:
    (panel,) = [
        p
        for p in _panels(_dashboard()["panels"])
        if p["type"] == "timeseries"
        and any(
            "agent_teams_agent_latency_seconds_bucket" in t.get("expr", "")
            for t in p.get("targets", [])
        )
    ]
    quantiles = set()
    for target in panel["targets"]:
        match = re.match(r"histogram_quantile\((0\.\d+), sum by \(agent, le\)", target["expr"])
        assert match, target["expr"]
        quantiles.add(match.group(1))

    assert quantiles == {"0.5", "0.95", "0.99"}


def test_dashboard_has_a_latency_heatmap_and_errors_over_time_per_agent() -> None:
    dashboard = _dashboard()
    panels = dashboard["panels"]
    (agent,) = [v for v in dashboard["templating"]["list"] if v["name"] == "agent"]
    (row,) = [p for p in panels if p["type"] == "row" and p.get("repeat") == "agent"]
    # A repeated row holds the panels after it, up to the next row.
    after = panels[panels.index(row) + 1 :]
    held = list(itertools.takewhile(lambda p: p["type"] != "row", after))
    (heatmap,) = [p for p in held if p["type"] == "heatmap"]
    (errors,) = [p for p in held if p["type"] == "timeseries"]

    assert (agent["multi"], agent["includeAll"]) == (True, True)
    assert agent["query"]["query"] == (
        'label_values(agent_teams_agent_calls_total{job="$job", team=~"$team"}, agent)'
    )
    assert len(held) == 2 and "$agent" in row["title"]
    one_agent = 'job="$job", team=~"$team", agent="$agent"'
    (target,) = heatmap["targets"]
    assert target["expr"] == (
        f"sum by (le) (increase(agent_teams_agent_latency_seconds_bucket{{{one_agent}}}"
        "[$__rate_interval]))"
    )
    # Grafana reads the buckets as they are (no re-bucketing), one row per `le`.
    assert (target["format"], heatmap["options"]["calculate"]) == ("heatmap", False)
    assert heatmap["options"]["yAxis"]["unit"] == "s"
    (target,) = errors["targets"]
    assert target["expr"] == (
        f"sum by (error_type) (increase(agent_teams_agent_errors_total{{{one_agent}}}"
        "[$__rate_interval]))"
    )
    assert heatmap["gridPos"]["y"] == errors["gridPos"]["y"] == row["gridPos"]["y"] + 1


def test_dashboard_datasources_are_provisioned() -> None:
    datasources = _datasources()
    dashboard = _dashboard()
    references = [
        (panel["title"], source)
        for panel in _panels(dashboard["panels"])
        for source in [
            panel.get("datasource"),
            *(t.get("datasource") for t in panel.get("targets", [])),
        ]
        if source
    ] + [
        (f"${v['name']}", v["datasource"])
        for v in dashboard["templating"]["list"]
        if "datasource" in v
    ]

    assert {s["uid"] for _, s in references} == set(datasources)
    for where, source in references:
        assert source["uid"] in datasources, (
            f"{where}: datasource {source['uid']} is not provisioned"
        )
        assert source["type"] == datasources[source["uid"]]["type"], where


def test_dashboard_sources_are_prometheus_jobs() -> None:
    (job,) = [v for v in _dashboard()["templating"]["list"] if v["name"] == "job"]
    options = {o["value"] for o in job["options"]}

    assert job["current"]["value"] == "agent-teams-worker"
    assert options == set(job["query"].split(","))
    assert options <= set(_scrape_jobs())
