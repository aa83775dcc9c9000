"""The module map in DESIGN.md holds: data flows one way, each library lives in one place."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "digest"

# Stage modules never import each other; pipeline.py composes them.
STAGES = {"ingest", "rank", "render", "mail", "store"}

# Each outside library may be imported only under these modules (package prefixes).
LIBRARY_HOMES = {
    "sqlalchemy": {"store"},
    "httpx": {"ingest"},
    "feedparser": {"ingest"},
    "defusedxml": {"ingest"},
    "sklearn": {"rank", "evaluate"},
    "jinja2": {"render"},
    "css_inline": {"render"},
    "smtplib": {"mail"},
    "mailbox": {"mail"},
    "click": {"cli"},
    "flask": {"web"},
    "werkzeug": {"web"},
    "apscheduler": {"schedule"},
    "itsdangerous": {"tokens"},
    "dotenv": {"config"},
    "email_validator": {"addresses"},
    "lz4": {"packing"},
}

# Records and errors are the shared vocabulary: they import nothing of ours but each other
# and the outbox's codec (packing), which imports nothing of ours at all.
LEAVES = {"models": set(), "errors": set(), "packing": set()}


def modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        found.append((".".join(parts), path))
    return found


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "digest":
                names.update(f"digest.{alias.name}" for alias in node.names)
    return names


def top(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_stage_modules_do_not_import_each_other(name: str, path: Path) -> None:
    own = top(name)
    if own not in STAGES:
        return
    for imported in imports(path):
        if imported.startswith("digest."):
            other = imported.split(".")[1]
            assert other == own or other not in STAGES, f"{name} imports {imported}"


@pytest.mark.parametrize(("name", "path"), modules(), ids=[m for m, _ in modules()])
def test_each_library_is_imported_only_in_its_module(name: str, path: Path) -> None:
    for imported in imports(path):
        library = top(imported)
        homes = LIBRARY_HOMES.get(library)
        if homes is not None:
            assert top(name) in homes, f"{name} imports {library}, which lives in {homes}"


def test_records_and_errors_import_nothing_of_ours() -> None:
    for name, path in modules():
        if name in LEAVES:
            ours = {i for i in imports(path) if i.startswith("digest")}
            assert ours <= {"digest.errors", "digest.models", "digest.packing"}, (name, ours)


def test_only_cli_and_scheduler_read_the_wall_clock() -> None:
    # The web app's default clock is its edge; ingest.http reads Retry-After given as an
    # HTTP date, which is only meaningful against the wall clock.
    allowed = {"cli.base", "schedule", "web", "ingest.http"}
    for name, path in modules():
        text = path.read_text(encoding="utf-8")
        reads = "datetime.now(" in text or "date.today(" in text or "time.time(" in text
        if reads:
            assert any(name == a or name.startswith(a + ".") for a in allowed), name
