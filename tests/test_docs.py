"""The docs keep working: command samples, runnable blocks, links, the README's size.

Reads ``README.md`` and ``docs/*.md``. In every fenced shell block (``sh``,
``bash``, ``shell``, ``console``; in ``console`` only the ``$ `` lines) each
``teamctl`` command must name a real subcommand and use only flags its
``--help`` lists (help texts come from the installed ``.venv/bin/teamctl``, all
asked for in one process and cached), and each ``make`` target must exist in the
``Makefile``. Blocks preceded by ``<!-- runnable -->`` are
run with bash in a fresh temporary folder and must exit 0. Every relative link
must resolve to a file, and an ``#anchor`` to a heading of it. The convention is
documented at the top of ``docs/development.md``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
_VENV_TEAMCTL = ROOT / ".venv" / "bin" / "teamctl"
TEAMCTL = _VENV_TEAMCTL if _VENV_TEAMCTL.exists() else Path(sys.executable).parent / "teamctl"
README_MAX_BYTES = 15 * 1024
RUNNABLE_MARK = "<!-- runnable -->"
RUNNABLE_TIMEOUT_S = 60
SHELL_LANGUAGES = frozenset({"sh", "bash", "shell", "console"})
GLOBAL_OPTIONS_WITH_VALUE = frozenset({"--address", "--namespace", "--task-queue"})
SCRUBBED_PREFIXES = ("AGENT_TEAMS_", "TEMPORAL_", "OTEL_", "ANTHROPIC_", "SIM_")


_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_LINK = re.compile(r"!?\[(?P<text>[^\]]*)\]\((?P<target>[^)\s]+)(?:\s+\"[^\"]*\")?\)")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
_HEADING = re.compile(r"^(#{1,6})\s+(?P<title>.+?)\s*#*\s*$")
_OPTIONAL = re.compile(r"\[(?P<inner>-[^\[\]]*)\]")
_FLAG = re.compile(r"^--[a-z][a-z0-9-]*")
_HELP_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
_CHOICES = re.compile(r"^\s+\{(?P<choices>[a-z0-9,-]+)\}\s*$", re.MULTILINE)
_MAKE_TARGET = re.compile(r"^(?P<targets>[A-Za-z0-9_.-][A-Za-z0-9_. -]*):(?!=)", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A fenced code block of a markdown file."""

    path: Path
    line: int
    language: str
    text: str
    runnable: bool

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))]


def blocks_of(path: Path) -> list[Block]:
    """Every fenced block of ``path``, with its language and runnable mark."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j])
            j += 1
        language = opening["info"].strip().split(" ")[0].lower()
        runnable = i > 0 and lines[i - 1].strip() == RUNNABLE_MARK
        found.append(Block(path, i + 1, language, "\n".join(body), runnable))
        i = j + 1
    return found


def prose_lines(path: Path) -> Iterator[tuple[int, str]]:
    """The lines of ``path`` outside fenced blocks, with inline code removed."""
    for number, line in _lines_outside_fences(path):
        yield number, _INLINE_CODE.sub("", line)


def shell_blocks() -> list[Block]:
    return [
        b for path in markdown_files() for b in blocks_of(path) if b.language in SHELL_LANGUAGES
    ]


def command_lines(block: Block) -> Iterator[str]:
    """The commands of a shell block: continuations joined, console output skipped."""
    pending = ""
    for raw in block.text.splitlines():
        line = raw.strip()
        if block.language == "console" and not pending:
            if not line.startswith("$ "):
                continue
            line = line[2:]
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        yield pending + line
        pending = ""
    if pending:
        yield pending


def simple_commands(line: str) -> Iterator[list[str]]:
    """The simple commands of a shell line (split at ``;``, ``&&``, ``|``, ``(``...).

    A synopsis (``teamctl report [--since 24h] [--format table|json]``) is read
    as the command with every optional part given.
    """
    line = _OPTIONAL.sub(lambda m: " " + m["inner"].replace("|", " ") + " ", line)
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    current: list[str] = []
    for token in lexer:
        if token and set(token) <= set("();<>|&"):
            if current:
                yield current
            current = []
        else:
            current.append(token)
    if current:
        yield current


def without_assignments(words: list[str]) -> list[str]:
    """``words`` without leading ``VAR=value`` words (and an ``env`` or ``export``)."""
    rest = list(words)
    while rest and (re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", rest[0]) or rest[0] in ("env",)):
        rest.pop(0)
    return rest


def invocations(program: str) -> list[tuple[str, list[str]]]:
    """Every call of ``program`` in the docs' shell blocks: (where, its arguments)."""
    found = []
    for block in shell_blocks():
        for line in command_lines(block):
            for words in simple_commands(line):
                rest = without_assignments(words)
                if rest and Path(rest[0]).name == program:
                    found.append((block.where, rest[1:]))
    return found


class UnknownCommand(Exception):
    """A ``teamctl`` sample names a subcommand that does not exist."""


_HELP_TEXTS: dict[tuple[str, ...], str] = {}

# Runs the installed ``teamctl`` script once per command path inside one Python
# process: each ``--help`` costs milliseconds instead of a process start and the
# CLI's imports (most of a second of CPU each, on shared cores).
_HELP_RUNNER = """
import contextlib, io, json, runpy, sys
script, paths = sys.argv[1], json.load(sys.stdin)
texts = {}
for path in paths:
    sys.argv = [script, *path, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exit:
            code = exit.code or 0
    if code == 0:
        texts[" ".join(path)] = out.getvalue()
json.dump(texts, sys.stdout)
"""


def _interpreter_of(script: Path) -> str:
    first = script.read_text(encoding="utf-8").splitlines()[0]
    return first[2:].strip() if first.startswith("#!") else sys.executable


def _run_help(paths: list[tuple[str, ...]]) -> None:
    """``teamctl <path> --help`` for each of ``paths``, into the cache."""
    done = subprocess.run(
        [_interpreter_of(TEAMCTL), "-c", _HELP_RUNNER, str(TEAMCTL)],
        input=json.dumps(paths),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=_scrubbed_environ() | {"COLUMNS": "100"},
    )
    for key, text in json.loads(done.stdout).items():
        _HELP_TEXTS[tuple(key.split(" ")) if key else ()] = text


def help_text(path: tuple[str, ...]) -> str:
    """``teamctl <path> --help``, from the installed script (cached)."""
    if path not in _HELP_TEXTS:
        _run_help([path])
    if path not in _HELP_TEXTS:
        raise UnknownCommand(f"teamctl {' '.join(path)} --help failed")
    return _HELP_TEXTS[path]


def subcommands(path: tuple[str, ...]) -> frozenset[str]:
    """The subcommands ``teamctl <path>`` accepts (none: it takes no subcommand)."""
    match = _CHOICES.search(help_text(path))
    return frozenset(match["choices"].split(",")) if match else frozenset()


def options(path: tuple[str, ...]) -> frozenset[str]:
    return frozenset(_HELP_FLAG.findall(help_text(path)))


def resolve(args: list[str]) -> tuple[tuple[str, ...], list[str], list[str]]:
    """Split ``teamctl`` arguments into (command path, global flags, its flags)."""
    path: tuple[str, ...] = ()
    global_flags: list[str] = []
    flags: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
            continue
        flag = _FLAG.match(arg)
        if flag is not None:
            if not path:
                global_flags.append(flag.group())
                skip = flag.group() in GLOBAL_OPTIONS_WITH_VALUE and "=" not in arg
            else:
                flags.append(flag.group())
            continue
        choices = subcommands(path)
        if choices:
            if arg not in choices:
                raise UnknownCommand(f"teamctl {' '.join((*path, arg))}: no such subcommand")
            path = (*path, arg)
    return path, global_flags, flags


def prefetch_help() -> None:
    """Fill the help cache for every command path the samples could name, at once."""
    paths: set[tuple[str, ...]] = {()}
    for _, args in invocations("teamctl"):
        words = [a for a in args if not a.startswith("-")]
        paths.update(tuple(words[:n]) for n in (1, 2))
    _run_help(sorted(paths))


def _scrubbed_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(SCRUBBED_PREFIXES)}


@cache
def make_targets() -> frozenset[str]:
    text = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets: set[str] = set()
    for match in _MAKE_TARGET.finditer(text):
        targets.update(t for t in match["targets"].split() if not t.startswith("."))
    return frozenset(targets)


def github_slug(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces → '-'."""
    text = _INLINE_CODE.sub(lambda m: m.group().strip("`"), title)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(path: Path) -> frozenset[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _lines_outside_fences(path):
        heading = _HEADING.match(line)
        if heading is None:
            continue
        slug = github_slug(heading["title"])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return frozenset(found)


def _lines_outside_fences(path: Path) -> Iterator[tuple[int, str]]:
    inside: str | None = None
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        opening = _FENCE.match(line)
        if inside is None and opening is not None:
            inside = opening["fence"]
        elif inside is not None:
            if line.strip().startswith(inside):
                inside = None
        else:
            yield number, line


def relative_links(path: Path) -> Iterator[tuple[int, str]]:
    for number, line in prose_lines(path):
        for match in _LINK.finditer(line):
            target = match["target"].strip("<>")
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):
                continue  # http:, https:, mailto:
            yield number, target


# --- the tests ---------------------------------------------------------------


def test_the_readme_is_short() -> None:
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move detail into docs/"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.split("#")[0]).resolve() for _, target in relative_links(README)
    }
    missing = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


def test_every_docs_page_says_what_it_is_for() -> None:
    # architecture.md predates the convention and is rewritten separately.
    pages = [p for p in sorted(DOCS.glob("*.md")) if p.name != "architecture.md"]
    lacking = [
        p.name for p in pages if "What you can do with this page:" not in p.read_text()[:1500]
    ]
    assert not lacking, f"pages without a 'What you can do with this page' paragraph: {lacking}"


def test_relative_links_resolve() -> None:
    broken = []
    for path in markdown_files():
        for number, target in relative_links(path):
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            shown = f"{path.relative_to(ROOT)}:{number}: {target}"
            if not linked.exists():
                broken.append(f"{shown} (no such file)")
                continue
            if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{shown} (no heading #{anchor})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_teamctl_samples_use_real_commands_and_flags() -> None:
    samples = invocations("teamctl")
    assert len(samples) > 10, "expected the docs to show teamctl commands"
    prefetch_help()
    wrong = []
    for where, args in samples:
        try:
            path, global_flags, flags = resolve(args)
        except UnknownCommand as err:
            wrong.append(f"{where}: {err}")
            continue
        asks_help = bool({"--help", "-h"} & {*global_flags, *flags})
        if subcommands(path) and not asks_help:
            wrong.append(f"{where}: teamctl {' '.join(path)}: a subcommand is missing")
            continue
        unknown = [f for f in global_flags if f not in options(())]
        unknown += [f for f in flags if f not in options(path)]
        if unknown:
            wrong.append(f"{where}: teamctl {' '.join(path)}: unknown flags {unknown}")
    assert not wrong, "\n".join(wrong)


def test_make_samples_name_real_targets() -> None:
    samples = invocations("make")
    assert samples, "expected the docs to show make commands"
    wrong = []
    for where, args in samples:
        targets = [a for a in args if "=" not in a and not a.startswith("-")]
        wrong += [f"{where}: make {t}" for t in targets if t not in make_targets()]
    assert not wrong, "no such make target:\n" + "\n".join(wrong)


def runnable_blocks() -> list[Block]:
    return [b for b in shell_blocks() if b.runnable]


@pytest.mark.parametrize("block", runnable_blocks(), ids=lambda b: b.where)
def test_runnable_samples_run(block: Block, tmp_path: Path) -> None:
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    environ = _scrubbed_environ() | {
        "HOME": str(tmp_path),
        "PATH": f"{tmp_path / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    script = "\n".join(command_lines(block))
    done = subprocess.run(
        ["bash", "-eu", "-c", script],
        cwd=tmp_path,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUNNABLE_TIMEOUT_S,
    )
    assert done.returncode == 0, f"{block.where} exited {done.returncode}:\n{done.stderr}"


def test_there_are_runnable_samples() -> None:
    assert len(runnable_blocks()) >= 3


def test_every_worker_variable_is_documented() -> None:
    packages = [
        d
        for d in ROOT.iterdir()
        if d.is_dir() and not d.name.startswith(".") and d.name not in ("tests", "docs", "build")
    ]
    sources = [p for package in packages for p in package.rglob("*.py")]
    sources += [ROOT / "docker-compose.yml", ROOT / "Makefile"]
    variables = {
        name
        for source in sources
        for name in re.findall(r"\bAGENT_TEAMS_[A-Z0-9_]*[A-Z0-9]\b", source.read_text())
    }
    manual = (DOCS / "operations.md").read_text(encoding="utf-8")
    missing = sorted(v for v in variables if f"`{v}`" not in manual)
    assert not missing, f"AGENT_TEAMS_* variables missing from docs/operations.md: {missing}"


def test_every_metric_the_project_names_is_documented() -> None:
    sources = [ROOT / "telemetry" / "names.py", *(ROOT / "workflows").glob("*.py")]
    names = {
        name
        for source in sources
        for name in re.findall(r'"(agent_teams_[a-z_]+)"', source.read_text(encoding="utf-8"))
    }
    manual = (DOCS / "observability.md").read_text(encoding="utf-8")
    assert len(names) >= 20
    assert sorted(n for n in names if f"`{n}`" not in manual) == []
