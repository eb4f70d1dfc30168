"""Which database objects belong to :mod:`schema.tables`, for Alembic autogenerate.

The daily partitions of ``request_logs`` are created at run time (migrations and the
partition upkeep job), so they are not in the metadata and must not be reported as
tables to drop.
"""

from __future__ import annotations

from typing import Any

from schema.partitions import is_partition


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    if type_ == "table" and name is not None:
        return not is_partition(name)
    return True
