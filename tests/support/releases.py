"""The next release's migrations, as the tests play them (see ``schema/migrations/README.md``).

Each folder holds one migration 0007 on top of this release's head (0006), for
``lectr.migrations.upgrade(url, extra_versions=[folder])``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
# 0007 expands (a nullable column on request_logs, a new table): compatible with 0006.
NEXT_RELEASE_EXPAND = HERE / "next_release"
# 0007 contracts (drops a column 0006 uses): compatible only with itself.
NEXT_RELEASE_CONTRACT = HERE / "next_release_contract"
NEXT_REVISION = "0007"
