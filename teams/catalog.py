"""The team catalog: team files, prompt files and the price table on disk.

A :class:`Catalog` is built once (by the worker, the CLI or a test) and passed
to whoever needs it; nothing here runs at import time. Resolution turns a team
name or inline spec into a :class:`contracts.resolved.ResolvedTeam`, refusing, with
an error naming the file and field, anything that could fail later: unknown
agents, missing prompt files, models without a price.
"""

from __future__ import annotations

import hashlib
import json
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import ValidationError

from contracts.gold_sets import GoldSet
from contracts.resolved import PromptRef, ResolvedPrompt, ResolvedTeam
from errors import (
    GoldSetError,
    OutputSchemaError,
    PromptError,
    TeamSpecError,
    UnknownModelError,
    UnknownTeamError,
)
from errors.toml_files import TomlProblem, parse_toml, problem_text, read_file_bytes
from evaluation.gold_sets import SHIPPED_GOLD_DIR, check_route, load_gold_file
from money.pricing import SHIPPED_PRICES, ModelPrice, PriceTable, load_price_table
from teams.experiments import VariantAssignment
from teams.releases import (
    RELEASES_DIR,
    Pin,
    read_pins,
    release_file,
    released_versions,
    version_key,
)
from teams.spec.field_paths import describe_errors
from teams.spec.team import AgentSpec, McpServerSpec, RouterStage, TeamSpec

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_TEAMS_DIR = PACKAGE_DIR / "shipped"
SHIPPED_PROMPTS_DIR = PACKAGE_DIR / "prompts"
INLINE_SOURCE = "inline spec"
SCHEMAS_FOLDER = "schemas"
"""Where an agent's ``output_schema = "file.json"`` is looked for, in each teams folder."""


@dataclass(frozen=True, kw_only=True)
class Catalog:
    """Where team files, prompt files and prices come from.

    Directories are searched in order, so a deployment can put its own
    ``teams_dirs``/``prompts_dirs`` ahead of the shipped ones.
    """

    teams_dirs: tuple[Path, ...] = (SHIPPED_TEAMS_DIR,)
    prompts_dirs: tuple[Path, ...] = (SHIPPED_PROMPTS_DIR,)
    prices: PriceTable
    pins_file: Path | None = None
    """Teams held at an earlier release (:mod:`teams.releases`); read at every resolution."""
    gold_dirs: tuple[Path, ...] = (SHIPPED_GOLD_DIR,)
    """Where gold sets (``<team>.toml``, :mod:`evaluation.gold_sets`) are found, in order."""

    @classmethod
    def shipped(cls, *, prices_path: Path = SHIPPED_PRICES) -> Catalog:
        """The catalog of shipped teams and prompts, with the given price table."""
        return cls(prices=load_price_table(prices_path))

    def pin_of(self, name: str) -> Pin | None:
        """The pin holding team ``name`` at an earlier release, if any."""
        return read_pins(self.pins_file).teams.get(name)

    def mcp_servers(self) -> list[McpServerSpec]:
        """Every MCP server the catalog's teams declare (their current versions)."""
        servers: list[McpServerSpec] = []
        for name in self.team_names():
            try:
                servers += self.load_team(name).mcp_servers
            except TeamSpecError:
                continue  # a broken team file is refused when it is run, not here
        return servers

    def versions_of(self, name: str) -> list[str]:
        """Every version of team ``name`` the catalog can run, oldest first."""
        current = load_team_file(self.team_file(name)).version
        return sorted({current, *released_versions(self.teams_dirs, name)}, key=version_key)

    def team_names(self) -> list[str]:
        """Every team name the catalog can resolve, sorted."""
        names = {p.stem for d in self.teams_dirs if d.is_dir() for p in d.glob("*.toml")}
        return sorted(names)

    def team_file(self, name: str) -> Path:
        """The file defining team ``name``; :class:`UnknownTeamError` if none does."""
        for directory in self.teams_dirs:
            candidate = directory / f"{name}.toml"
            if candidate.is_file():
                return candidate
        raise UnknownTeamError(name, self.team_names())

    def load_team(self, name: str) -> TeamSpec:
        """Load and validate the team file for ``name`` (its pinned release, if pinned)."""
        return self._load(name)[1]

    def _load(self, name: str) -> tuple[Path, TeamSpec]:
        path = self.team_file(name)
        pin = self.pin_of(name)
        if pin is not None:
            path = release_file(self.teams_dirs, name, pin.version) or path
        spec = load_team_file(path)
        if spec.name != name:
            raise TeamSpecError(
                str(path), [f"name: is {spec.name!r} but the file is {path.name}; they must match"]
            )
        if pin is not None and spec.version != pin.version:
            raise TeamSpecError(
                str(path),
                [
                    f"version: is {spec.version!r} but {self.pins_file} pins {name!r} to "
                    f"{pin.version!r}, and there is no {RELEASES_DIR}/{name}/{pin.version}.toml"
                ],
            )
        return path, spec

    def resolve(self, team: str | TeamSpec, *, run_id: str | None = None) -> ResolvedTeam:
        """Resolve a team name or inline spec into everything a run needs.

        With ``run_id`` (the workflow id), each experiment's variant for that run
        is applied and recorded (:meth:`TeamSpec.with_variants`); every variant
        is checked first, so a bad one is refused for all runs, not its share.
        """
        if isinstance(team, str):
            path, spec = self._load(team)
            source = display_path(path)
        else:
            source, spec = INLINE_SOURCE, team
        self._check_variants(spec, source)
        variants: list[VariantAssignment] | None = None
        if run_id is not None:
            spec, variants = spec.with_variants(run_id)
        prompts = {a.name: self._resolve_prompt(a, source) for a in spec.agents}
        fallback_prompts = {
            a.name: self._resolve_prompt(a, source, version=a.fallback_prompt_version)
            for a in spec.agents
            if a.fallback_prompt_version is not None
        }
        schemas = {a.name: self._output_schema(a, source) for a in spec.agents if a.output_schema}
        resolved = ResolvedTeam(
            spec=spec,
            source=source,
            prompts=prompts,
            fallback_prompts=fallback_prompts,
            prices=self._prices_for(spec, source),
            variants=variants,
        )
        return resolved.model_copy(update={"output_schemas": schemas}) if schemas else resolved

    def _output_schema(self, agent: AgentSpec, source: str) -> dict[str, Any]:
        """``agent``'s output schema: inline, or from ``schemas/<file>`` of a teams folder."""
        where = f"agents ({agent.name}).output_schema"
        schema: Any = agent.output_schema
        if isinstance(schema, str):
            schema = self._schema_file(where, schema, source)
        problem = output_schema_problem(schema)
        if problem is not None:
            raise OutputSchemaError(source, [f"{where}: {problem}"])
        return dict(schema)

    def _schema_file(self, where: str, name: str, source: str) -> Any:
        searched = [d / SCHEMAS_FOLDER / name for d in self.teams_dirs]
        for path in searched:
            if path.is_file():
                try:
                    return json.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, ValueError) as err:
                    raise OutputSchemaError(source, [f"{where}: {path}: {err}"]) from None
        looked = ", ".join(str(p) for p in searched)
        raise OutputSchemaError(source, [f"{where}: no schema file {name!r} (looked for {looked})"])

    def _check_variants(self, spec: TeamSpec, source: str) -> None:
        """Every variant's model has a price and its prompt version a file."""
        for experiment in spec.experiments:
            agent = spec.agent(experiment.agent)
            for arm in experiment.arms():
                if arm.model is not None and self.prices.price_of(arm.model) is None:
                    raise UnknownModelError(
                        source,
                        [
                            f"experiments ({experiment.name}).{arm.name}.model: model "
                            f"{arm.model!r} is not in the price table {self.prices.source}"
                        ],
                    )
                if arm.prompt_version is not None:
                    self._resolve_prompt(agent, source, version=arm.prompt_version)

    def gold_file(self, team: str) -> Path:
        """The gold set file of ``team``; :class:`GoldSetError` if there is none."""
        for directory in self.gold_dirs:
            candidate = directory / f"{team}.toml"
            if candidate.is_file():
                return candidate
        searched = ", ".join(str(d / f"{team}.toml") for d in self.gold_dirs)
        raise GoldSetError(f"of team {team!r}", [f"no gold set file (looked for {searched})"])

    def load_gold_set(self, team: str) -> GoldSet:
        """The gold set of catalog team ``team``, checked against the team's spec."""
        spec = self.load_team(team)  # an unknown team is named as such, with the known ones
        path = self.gold_file(team)
        gold = load_gold_file(path)
        source = display_path(path)
        if gold.team != team:
            raise GoldSetError(
                source, [f"team: is {gold.team!r} but the file is {path.name}; they must match"]
            )
        routers = [s for s in spec.stages if isinstance(s, RouterStage)]
        check_route(gold, sorted(routers[0].routes) if routers else None, source=source)
        return gold

    def agent_prompt(self, agent: AgentSpec, *, source: str) -> ResolvedPrompt:
        """The prompt ``agent`` uses (e.g. a gold set's judge); PromptError names ``source``."""
        return self._resolve_prompt(agent, source)

    def _resolve_prompt(
        self, agent: AgentSpec, source: str, *, version: str | None = None
    ) -> ResolvedPrompt:
        if agent.prompt is None:
            # AgentSpec validation guarantees exactly one of prompt/instructions.
            return _prompt(f"{agent.name}-inline", "inline", agent.instructions or "")
        version = version or agent.prompt_version
        relative = Path(agent.prompt) / f"{version}.md"
        for directory in self.prompts_dirs:
            path = directory / relative
            if path.is_file():
                text = path.read_text(encoding="utf-8").strip()
                if not text:
                    raise PromptError(source, [f"agents ({agent.name}).prompt: {path} is empty"])
                return _prompt(agent.prompt, version, text)
        searched = ", ".join(str(d / relative) for d in self.prompts_dirs)
        raise PromptError(
            source,
            [
                f"agents ({agent.name}).prompt: no prompt file {agent.prompt!r} version "
                f"{version!r} (looked for {searched}); put your prompts in a prompts/ "
                "folder beside your team files (AGENT_TEAMS_TEAMS_DIR), or point "
                "AGENT_TEAMS_PROMPTS_DIR at them, for teamctl and the workers alike"
            ],
        )

    def _prices_for(self, spec: TeamSpec, source: str) -> dict[str, ModelPrice]:
        problems = []
        for agent in spec.agents:
            cheap = agent.routing.cheap_model if agent.routing else None
            for field, model in (
                ("model", agent.model),
                ("fallback_model", agent.fallback_model),
                ("routing.cheap_model", cheap),
            ):
                if model is not None and self.prices.price_of(model) is None:
                    known = ", ".join(sorted(self.prices.models))
                    problems.append(
                        f"agents ({agent.name}).{field}: model {model!r} is not in the price "
                        f"table {self.prices.source} (known: {known})"
                    )
        if problems:
            raise UnknownModelError(source, problems)
        return {m: self.prices.models[m] for m in spec.models()}


def output_schema_problem(schema: Any) -> str | None:
    """Why ``schema`` cannot be an agent's output schema (a JSON Schema of an object), or None.

    An object, because the answer is the input of the tool the model is forced
    to call, and tool inputs are objects.
    """
    if not isinstance(schema, dict):
        return "must be a JSON Schema (an object)"
    if schema.get("type") != "object":
        return 'must describe an object ("type": "object")'
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as err:
        return f"is not a valid JSON Schema: {err.message}"
    return None


def display_path(path: Path) -> str:
    """Shipped files as ``teams/shipped/x.toml`` or ``evaluation/gold/x.toml``; others as given.

    No host paths go into history.
    """
    for package_dir in (PACKAGE_DIR, SHIPPED_PRICES.parent, SHIPPED_GOLD_DIR.parent):
        if path.is_relative_to(package_dir):
            return str(Path(package_dir.name) / path.relative_to(package_dir))
    return str(path)


def _prompt(name: str, version: str, text: str) -> ResolvedPrompt:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    return ResolvedPrompt(ref=PromptRef(name=name, version=version, sha256=digest), text=text)


PARSED_TEAMS = 128
"""Team files kept parsed, by content (:func:`load_team_file`)."""
_parsed: OrderedDict[bytes, TeamSpec] = OrderedDict()


def load_team_file(path: Path) -> TeamSpec:
    """Read a team file (TOML) and validate it; errors name the file and field.

    Every run resolves its team, and parsing and validating the file was most of
    it (0.8 ms a research run: issue 26): a file whose bytes were parsed before
    gives the same spec (immutable) without a second parse. Keyed by the bytes'
    digest, so an edited file is parsed again.
    """

    def fail(problem: TomlProblem, err: Exception) -> Exception:
        return TeamSpecError(str(path), [problem_text(problem, err)])

    raw = read_file_bytes(path, fail)
    key = hashlib.sha256(raw).digest()
    spec = _parsed.get(key)
    if spec is None:
        spec = parse_team_spec(parse_toml(raw, fail), source=str(path))
        _parsed[key] = spec
        while len(_parsed) > PARSED_TEAMS:
            _parsed.popitem(last=False)
    return spec


def parse_team_spec(data: object, *, source: str = INLINE_SOURCE) -> TeamSpec:
    """Validate a parsed spec, turning pydantic errors into one line per field."""
    try:
        return TeamSpec.model_validate(data)
    except ValidationError as err:
        raw = data if isinstance(data, dict) else {}
        raise TeamSpecError(source, describe_spec_errors(err, raw)) from err


def describe_spec_errors(err: ValidationError, data: dict[str, Any]) -> list[str]:
    """``agents[1] (writer).max_tokens: Input should be ...`` for each error."""
    return describe_errors(err, data)
