"""The unit tier's guard (tests/unit_tier.py), run on small test files in a pytest of their own.

Each case runs an in-process pytest (``pytester``: no subprocess) in a temporary
folder, with the tier's plugin and the ``unit`` marker registered.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.unit_tier import SERVER_FIXTURES

pytestmark = pytest.mark.unit

pytest_plugins = ("pytester",)

FAKE_SERVERS = """
import pytest

@pytest.fixture
def env():
    # Stands in for the real server fixture: the guard must stop before it runs.
    raise RuntimeError("the env fixture was set up")

@pytest.fixture
def client(env):
    return env

@pytest.fixture
def built_on_a_server(client):
    return client
"""


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makeini("[pytest]\nmarkers =\n    unit: the unit tier\n")
    plugins = ["-p", "tests.unit_tier"]
    for unneeded in ("cacheprovider", "asyncio", "anyio", "hypothesispytest", "timeout"):
        plugins += ["-p", f"no:{unneeded}"]
    return pytester.runpytest_inprocess(*plugins, "--continue-on-collection-errors", *args)


def fixtures_defined_in(path: Path) -> set[str]:
    """Names of the ``@pytest.fixture`` functions of ``path`` (``name=`` when given)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for decorator in node.decorator_list:
            call = decorator if isinstance(decorator, ast.Call) else None
            target = call.func if call else decorator
            if ast.unparse(target) != "pytest.fixture":
                continue
            given = [
                k.value.value
                for k in (call.keywords if call else [])
                if k.arg == "name" and isinstance(k.value, ast.Constant)
            ]
            names.add(given[0] if given else node.name)
    return names


def test_the_guard_names_server_fixtures_that_exist() -> None:
    # A fixture renamed in conftest must not leave the guard watching an old name.
    assert SERVER_FIXTURES == {
        "env",
        "ts_env",
        "client",
        "standin",
        "claude",
        "redis_url",
        "postgres_url",
        "postgres_database_url",
    }
    tests = Path(__file__).parents[1]
    defined = fixtures_defined_in(tests / "conftest.py") | fixtures_defined_in(
        tests / "stores_support.py"
    )
    assert SERVER_FIXTURES <= defined


def test_a_unit_test_requesting_a_server_fixture_fails_before_it_starts(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(FAKE_SERVERS)
    pytester.makepyfile(
        test_mixed="""
        import pytest

        pytestmark = pytest.mark.unit

        def test_pure(tmp_path):
            assert tmp_path.exists()

        def test_direct(env):
            pass

        def test_indirect(built_on_a_server):
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(passed=1, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*test_direct is marked unit but requests env: the unit tier starts no server*",
            "*test_indirect is marked unit but requests client, env: the unit tier starts*",
        ]
    )
    result.stdout.no_fnmatch_line("*the env fixture was set up*")


def test_server_fixtures_stay_allowed_outside_the_unit_tier(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(FAKE_SERVERS)
    pytester.makepyfile(test_servers="def test_server(env):\n    pass\n")
    result = run(pytester)
    # The fake fixture ran (and failed as written): the guard left the test alone.
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*RuntimeError: the env fixture was set up*"])


def test_unit_marks_a_module_not_a_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_one_marked="""
        import pytest

        @pytest.mark.unit
        def test_marked_alone():
            pass
        """
    )
    result = run(pytester)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*test_marked_alone is marked unit, but its module lacks the line*"]
    )


def test_minus_m_unit_imports_only_unit_modules(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_unit_module="""
        import pytest

        pytestmark = pytest.mark.unit

        def test_pure():
            pass
        """,
        test_server_module="""
        raise RuntimeError("a server-test module was imported")
        """,
    )
    result = run(pytester, "-m", "unit")
    result.assert_outcomes(passed=1)
    # Any other selection collects (imports) every module, as pytest always does.
    everything = run(pytester, "-m", "unit or not unit")
    everything.assert_outcomes(passed=1, errors=1)
    everything.stdout.fnmatch_lines(["*RuntimeError: a server-test module was imported*"])
