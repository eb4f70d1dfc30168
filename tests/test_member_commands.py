"""`lectr member`: an operator makes an org's first owner, and the owner rules hold."""

from __future__ import annotations

import asyncio
import uuid

from tests.support.cli import run_lectr, run_lectr_json


async def test_members_are_added_listed_changed_and_removed(lectr_env: dict[str, str]) -> None:
    org = f"org-{uuid.uuid4().hex[:12]}"
    await asyncio.to_thread(run_lectr_json, "org", "create", org, env=lectr_env)

    async def lectr(*args: str) -> tuple[int, str, str]:
        done = await asyncio.to_thread(run_lectr, "member", *args, env=lectr_env)
        return done.returncode, done.stdout.strip(), done.stderr.strip()

    code, out, _ = await lectr("list", org)
    assert (code, out) == (0, f"{org} has no members yet: add one with `lectr member add`")
    code, out, _ = await lectr("add", org, "Alice@Example.com", "--role", "owner")
    assert code == 0 and out.startswith(f"Alice@Example.com is now owner of {org}")
    assert (await lectr("add", org, "bob@example.com"))[0] == 0
    # Emails are one person whatever their case.
    code, _, err = await lectr("add", org, "alice@example.com")
    assert (code, err) == (2, "lectr: alice@example.com is a member already")

    listed = await asyncio.to_thread(run_lectr_json, "member", "list", org, env=lectr_env)
    assert [(m["email"], m["role"], m["oidc_subject"]) for m in listed] == [  # type: ignore[union-attr]
        ("Alice@Example.com", "owner", None),
        ("bob@example.com", "member", None),
    ]
    code, _, err = await lectr("remove", org, "alice@example.com")
    assert (code, err) == (
        2, "lectr: this is the organisation's last owner: make another owner first"
    )  # fmt: skip
    code, out, _ = await lectr("role", org, "bob@example.com", "owner")
    assert (code, out) == (0, f"bob@example.com is now owner of {org} (was member)")
    code, out, _ = await lectr("remove", org, "alice@example.com")
    assert (code, out) == (0, f"Alice@Example.com (owner) is no longer a member of {org}")
    code, _, err = await lectr("remove", org, "alice@example.com")
    assert (code, err) == (2, f"lectr: alice@example.com is not a member of {org}")
    code, _, err = await lectr("add", "no-such-org", "c@example.com")
    assert (code, err) == (2, "lectr: no organisation with id or name 'no-such-org'")
    code, _, err = await lectr("add", org, "c@example.com", "--role", "god")
    assert code == 2 and "invalid choice: 'god'" in err
