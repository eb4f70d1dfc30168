"""May this release's code run against the database's schema? Checked at start-up.

The schema is fine when it is at this release's head, or newer (applied by the next
release's ``lectr migrate`` during a rolling upgrade) and declaring itself compatible
with this release: each migration records the oldest release head whose code still
runs against it in ``schema_compat`` (see ``schema/migrations/README.md``), which an
older process can read without having the newer migration files.

Loading this release's revision history needs Alembic: :func:`load_release` does it,
once, at start-up (call it in a thread from async code).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Release:
    """This release's schema: its head revision and every revision up to it."""

    head: str
    history: frozenset[str]


class Outcome(enum.Enum):
    AT_HEAD = "at head"
    NEWER_COMPATIBLE = "newer, compatible"
    MIGRATE = "older or missing: run lectr migrate"
    TOO_OLD = "this release is too old for it"


@dataclass(frozen=True)
class SchemaCheck:
    """The verdict, and the line to say about it (empty at head)."""

    outcome: Outcome
    current: str | None
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.AT_HEAD, Outcome.NEWER_COMPATIBLE)


class IncompatibleSchema(RuntimeError):
    """The code cannot run against the database's schema; the message says what to do."""


def load_release() -> Release:
    """This release's revisions, from its migration files (loads Alembic)."""
    from lectr.migrations import known_revisions

    head, history = known_revisions()
    return Release(head, history)


async def check_schema(conn: asyncpg.Connection, release: Release) -> SchemaCheck:
    """Compare the database's schema revision with ``release``."""
    if not await conn.fetchval("SELECT to_regclass('alembic_version') IS NOT NULL"):
        revisions: list[str] = []
    else:
        revisions = [r[0] for r in await conn.fetch("SELECT version_num FROM alembic_version")]
    if not revisions:
        return SchemaCheck(
            Outcome.MIGRATE,
            None,
            f"the database has no Lectr schema (this release needs {release.head}): "
            "run `lectr migrate`",
        )
    current = ", ".join(sorted(revisions))
    if revisions == [release.head]:
        return SchemaCheck(Outcome.AT_HEAD, current, "")
    if all(r in release.history for r in revisions):
        return SchemaCheck(
            Outcome.MIGRATE,
            current,
            f"the database schema is at {current}, not {release.head}: run `lectr migrate`",
        )
    declared = await _declared_compatibility(conn, revisions)
    unknown = [r for r in revisions if r not in release.history]
    if all(declared.get(r) in release.history for r in unknown):
        return SchemaCheck(
            Outcome.NEWER_COMPATIBLE,
            current,
            f"the database schema {current} is newer than this release ({release.head}) "
            "and declares itself compatible with it: running",
        )
    needs = ", ".join(sorted({declared[r] for r in unknown if r in declared}))
    return SchemaCheck(
        Outcome.TOO_OLD,
        current,
        f"this release of Lectr (schema {release.head}) is too old for the database "
        f"schema {current}, which "
        + (f"needs the code of schema {needs} or newer" if needs else "declares no older code")
        + ": upgrade Lectr, or run the release that matches the database",
    )


async def _declared_compatibility(conn: asyncpg.Connection, revisions: list[str]) -> dict[str, str]:
    if not await conn.fetchval("SELECT to_regclass('schema_compat') IS NOT NULL"):
        return {}
    rows = await conn.fetch(
        "SELECT revision, oldest_compatible FROM schema_compat WHERE revision = ANY($1)",
        revisions,
    )
    return {r["revision"]: r["oldest_compatible"] for r in rows}


async def require_compatible_schema(
    conn: asyncpg.Connection, release: Release, log: logging.Logger
) -> SchemaCheck:
    """Check the schema: log a warning when it is newer but compatible, raise
    :class:`IncompatibleSchema` with the reason when this code cannot run on it."""
    result = await check_schema(conn, release)
    if not result.ok:
        raise IncompatibleSchema(result.message)
    if result.outcome is Outcome.NEWER_COMPATIBLE:
        log.warning("%s", result.message)
    return result
