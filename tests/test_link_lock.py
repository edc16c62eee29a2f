"""The ID check's lock-out on a link (models/people/links.verify_identity), its writes made in SQL
written once (issue 25): each wrong number takes a try, the last one locks the link for
`lock_minutes`, nothing gets through while it lasts, the right number passes once it has ended
and gives every try back. On SQLite and PostgreSQL."""
from __future__ import annotations

import datetime as dt

from models.db.tables import Link
from models.people.links import issue_link, resolve_token, verify_identity
from tests.conftest import NOW, VAULT
from tests.factories import make_resident, make_site

OTHER = "11010519491231002X"


async def test_a_lock_lasts_its_minutes_then_the_right_number_passes(db):
    resident, number = await make_resident(await make_site(), first_dose=dt.date(2021, 6, 5))
    token = await issue_link(resident, now=NOW)
    link = await resolve_token(token, NOW)
    tries = [await verify_identity(VAULT, link, OTHER, now=NOW, max_failures=3, lock_minutes=30)
             for _ in range(3)]
    assert [t.reason for t in tries] == ["mismatch", "mismatch", "locked"]
    assert [t.tries_left for t in tries[:2]] == [2, 1]
    stored = await Link.get(id=link.id)
    assert stored.failures == 0 and stored.locked_until == NOW.astimezone(dt.timezone.utc) + dt.timedelta(minutes=30)
    later = NOW + dt.timedelta(minutes=29)
    assert (await verify_identity(VAULT, stored, number, now=later, max_failures=3)).reason == "locked"
    ended = NOW + dt.timedelta(minutes=30)
    link = await resolve_token(token, ended)
    assert (await verify_identity(VAULT, link, number, now=ended, max_failures=3)).ok
    stored = await Link.get(id=link.id)
    assert stored.failures == 0 and stored.locked_until is None


async def test_a_right_number_gives_the_tries_back(db):
    resident, number = await make_resident(await make_site(), first_dose=dt.date(2021, 6, 5))
    link = await resolve_token(await issue_link(resident, now=NOW), NOW)
    assert (await verify_identity(VAULT, link, OTHER, now=NOW, max_failures=3)).tries_left == 2
    assert (await Link.get(id=link.id)).failures == 1
    assert (await verify_identity(VAULT, link, number, now=NOW, max_failures=3)).ok
    assert (await Link.get(id=link.id)).failures == 0
