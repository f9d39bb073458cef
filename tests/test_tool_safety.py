"""Built-ins refuse path traversal and shell metacharacters; the ``files`` toolset uses them.

No server and no process: the checks are pure, the files live in ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tools.context import ToolContext
from tools.registry import ToolError, ToolRegistry
from tools.safety import files_toolset, safe_argument, safe_path

pytestmark = pytest.mark.unit

CONTEXT = ToolContext(workflow_id="wf", run_id="run", call_id="call", agent="reader")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A files root holding ``notes/todo.md`` and two links: one inside, one out."""
    folder = tmp_path / "root"
    (folder / "notes").mkdir(parents=True)
    (folder / "notes" / "todo.md").write_text("- feed the otters\n")
    (tmp_path / "secret.txt").write_text("outside")
    (folder / "inside-link").symlink_to(folder / "notes" / "todo.md")
    (folder / "escape").symlink_to(tmp_path / "secret.txt")
    (folder / "escape-dir").symlink_to(tmp_path)
    return folder


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (
            "../etc/passwd",
            "path '../etc/passwd' contains '..': a path may not climb out of the root folder",
        ),
        (
            "a/../../b",
            "path 'a/../../b' contains '..': a path may not climb out of the root folder",
        ),
        (
            "notes/../todo",
            "path 'notes/../todo' contains '..': a path may not climb out of the root folder",
        ),
        (
            "..\\secret",
            "path '..\\\\secret' contains '..': a path may not climb out of the root folder",
        ),
        ("/etc/passwd", "path '/etc/passwd' is absolute: give a path relative to the root folder"),
        ("escape", "path 'escape' leads outside the root folder through a symbolic link"),
        (
            "escape-dir/secret.txt",
            "path 'escape-dir/secret.txt' leads outside the root folder through a symbolic link",
        ),
        ("notes/todo.md\x00.png", "path 'notes/todo.md\\x00.png' contains a NUL byte"),
        ("", "path is empty: give a path relative to the root folder ('.' is the root)"),
    ],
)
def test_safe_path_refuses_each_way_out(root: Path, requested: str, message: str) -> None:
    with pytest.raises(ToolError) as raised:
        safe_path(root, requested)
    assert raised.value.message == message
    assert str(root) not in raised.value.message  # the worker's layout is not the model's business


def test_safe_path_keeps_paths_inside_the_root(root: Path) -> None:
    assert safe_path(root, "notes/todo.md") == (root / "notes" / "todo.md").resolve()
    assert safe_path(root, ".") == root.resolve()
    assert safe_path(root, "inside-link") == (root / "notes" / "todo.md").resolve()
    assert safe_path(root, "notes/missing.md") == (root / "notes" / "missing.md").resolve()


def test_a_long_refused_path_is_quoted_cut() -> None:
    with pytest.raises(ToolError) as raised:
        safe_path(Path("/nonexistent"), "/" + "a" * 200)
    assert raised.value.message == (
        "path '/" + "a" * 76 + "...' is absolute: give a path relative to the root folder"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("a; rm -rf /", "argument 'a; rm -rf /' contains ';', a shell metacharacter"),
        ("a | nc host 1", "argument 'a | nc host 1' contains '|', a shell metacharacter"),
        ("a && b", "argument 'a && b' contains '&', a shell metacharacter"),
        ("$HOME", "argument '$HOME' contains '$', a shell metacharacter"),
        ("`id`", "argument '`id`' contains '`', a shell metacharacter"),
        ("a > /tmp/x", "argument 'a > /tmp/x' contains '>', a shell metacharacter"),
        ("a < /etc/passwd", "argument 'a < /etc/passwd' contains '<', a shell metacharacter"),
        ("$(id)", "argument '$(id)' contains '$', a shell metacharacter"),
        ("(id)", "argument '(id)' contains '(', a shell metacharacter"),
        ("id)", "argument 'id)' contains ')', a shell metacharacter"),
        ("a\nb", "argument 'a\\nb' contains '\\n', a shell metacharacter"),
        ("a\rb", "argument 'a\\rb' contains '\\r', a shell metacharacter"),
        (
            "--output=/etc/passwd",
            "argument '--output=/etc/passwd' starts with '-': it would be read as an option",
        ),
        ("-rf", "argument '-rf' starts with '-': it would be read as an option"),
        ("a\x00b", "argument 'a\\x00b' contains a NUL byte"),
    ],
)
def test_safe_argument_refuses_metacharacters_and_options(value: str, message: str) -> None:
    with pytest.raises(ToolError) as raised:
        safe_argument(value)
    assert raised.value.message == message


@pytest.mark.parametrize("value", ["otters", "notes/todo.md", "a-b_c.d", "x=1", "hello world", ""])
def test_safe_argument_passes_plain_values_unchanged(value: str) -> None:
    assert safe_argument(value) == value


async def test_files_read_and_list_stay_inside_the_root(root: Path) -> None:
    registry = ToolRegistry([files_toolset(root)])
    assert await registry.run("files.read", {"path": "notes/todo.md"}, CONTEXT) == (
        "- feed the otters\n",
        "- feed the otters\n",
    )
    listed, _ = await registry.run("files.list", {}, CONTEXT)
    assert listed == "escape\nescape-dir/\ninside-link\nnotes/"
    assert (await registry.run("files.list", {"path": "notes"}, CONTEXT))[0] == "todo.md"
    refusals = {
        "../secret.txt": "path '../secret.txt' contains '..': a path may not climb out of the "
        "root folder",
        "escape": "path 'escape' leads outside the root folder through a symbolic link",
        "notes": "'notes' is a folder: list it with files.list",
        "notes/none.md": "no file 'notes/none.md' under the files root",
    }
    for path, message in refusals.items():
        with pytest.raises(ToolError) as raised:
            await registry.run("files.read", {"path": path}, CONTEXT)
        assert raised.value.message == message
    with pytest.raises(ToolError) as raised:
        await registry.run("files.list", {"path": "escape-dir"}, CONTEXT)
    assert raised.value.message == (
        "path 'escape-dir' leads outside the root folder through a symbolic link"
    )


async def test_files_read_refuses_binary_and_huge_files(root: Path) -> None:
    (root / "image.png").write_bytes(b"\x89PNG\xff\xfe")
    (root / "huge.txt").write_bytes(b"a" * (1024 * 1024 + 1))
    registry = ToolRegistry([files_toolset(root)])
    with pytest.raises(ToolError) as raised:
        await registry.run("files.read", {"path": "image.png"}, CONTEXT)
    assert raised.value.message == "'image.png' is not UTF-8 text"
    with pytest.raises(ToolError) as raised:
        await registry.run("files.read", {"path": "huge.txt"}, CONTEXT)
    assert raised.value.message == "'huge.txt' is larger than 1048576 bytes; files.read stops there"


def test_the_files_toolset_needs_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as raised:
        files_toolset(tmp_path / "missing")
    assert str(raised.value) == f"AGENT_TEAMS_FILES_ROOT: {tmp_path / 'missing'} is not a folder"
    toolset = files_toolset(tmp_path)
    assert sorted(toolset.tools) == ["list", "read"]
    assert toolset.tools["list"].input_schema == {
        "type": "object",
        "properties": {
            "path": {
                "type": "string",
                "minLength": 1,
                "maxLength": 1000,
                "description": "A path relative to the root folder, such as notes/todo.md ('.' is "
                "the root).",
                "default": ".",
            }
        },
        "additionalProperties": False,
    }
