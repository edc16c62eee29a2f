"""Key rotation: `python run.py rotate-keys` (docs/cli.md#rotate-keys).

A new SECRET_KEY is set and the old one moved to SECRET_KEY_OLD. From then on the service writes
with the new key and still reads what the old one encrypted (pii.Vault tries each key) or signed
(itsdangerous with a list of keys: web/keys.py); this command rewrites what is stored:

- every cipher (ID numbers, phones, SMS bodies and parameters) encrypted again with the new key;
- every look-up hash (HMAC of an ID number or phone) computed again with the new key, from the
  decrypted value, in the same UPDATE as the row's ciphers;
- the phone hashes of short-lived rows that hold no cipher (log-in codes, the SMS caps' counts)
  mapped from the old hash to the new one through the SMS sent to those phones in the last day.
  A log-in code asked for before the rotation cannot be checked any more (only its hash with the
  old key is kept): the person asks for another.

Batches of BATCH rows in id order, each read, rewritten and committed as one transaction. A row
is done when all its ciphers open with the new key alone in the AES-GCM format (a Fernet value,
written before issue 25, is rewritten under any key), so a run stopped half-way (or run twice)
takes up where the last one left off and rewrites nothing twice. When it reports every table done,
SECRET_KEY_OLD can go. Erased records (purge) keep their "erased:<id>" and empty hashes.

Run it with the web service stopped, or right after it restarts with the new keys: until a
person's row is rewritten, looking them up by ID number or phone uses the new key's hash and
misses them.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Callable

from cryptography.fernet import InvalidToken
from tortoise.transactions import in_transaction

from ..db import rewrites
from ..people.pii import Vault

BATCH = 1000
MARK = "erased:"  # purge's id_hash of an erased record (models/operations/purge.py: MARK)


@dataclass(frozen=True)
class Table:
    """A table's ciphers and the look-up hashes computed from them (hash column -> cipher column)."""
    name: str
    ciphers: tuple[str, ...]
    hashes: dict[str, str] = field(default_factory=dict)


TABLES = (
    Table("resident", ("id_cipher", "phone_cipher"), {"id_hash": "id_cipher", "phone_hash": "phone_cipher"}),
    Table("group_member", ("id_cipher", "phone_cipher"), {"id_hash": "id_cipher"}),
    Table("sms_message", ("phone_cipher", "body_cipher", "params_cipher"), {"phone_hash": "phone_cipher"}),
)
# Rows holding a phone's keyed hash and no cipher; a table not (yet) in the schema is passed over.
PHONE_HASH_ONLY = (("login_code", "phone_hash"), ("sms_quota", "phone_hash"))
MAPPED_FROM_DAYS = 1  # how far back SMS are read to map those hashes


class RotationError(Exception):
    """A value no key opens: SECRET_KEY_OLD lacks the key it was written with."""


@dataclass
class TableCount:
    rows: int = 0  # rows read
    rewritten: int = 0  # rows that were under an old key


@dataclass
class RotationResult:
    tables: dict[str, TableCount] = field(default_factory=dict)
    mapped: int = 0  # phone hashes of log-in codes and SMS caps moved to the new key

    def summary(self) -> str:
        parts = [f"{t}: {c.rewritten:,} of {c.rows:,} rows rewritten" for t, c in self.tables.items()]
        return "; ".join(parts + [f"{self.mapped:,} log-in/cap phone hashes moved"])


def _rotated_row(vault: Vault, table: Table, row: dict) -> dict | None:
    """The new values of a row still under an old key (its ciphers and hashes), or None."""
    ciphers = {c: row[c] for c in table.ciphers if row[c]}
    if all(vault.is_current(token) for token in ciphers.values()):
        return None
    plain = {}
    for column, token in ciphers.items():
        try:
            plain[column] = vault.decrypt(token)
        except InvalidToken:
            raise RotationError(f"{table.name} row {row['id']}: {column} opens with neither SECRET_KEY "
                                "nor SECRET_KEY_OLD; set the key it was written with in SECRET_KEY_OLD") from None
    new = {column: vault.encrypt(value) for column, value in plain.items()}
    for hash_column, source in table.hashes.items():
        old = row[hash_column]
        if old and not old.startswith(MARK) and source in plain:
            new[hash_column] = vault.keyed_hash(plain[source])
    return new


async def _rotate_table(vault: Vault, table: Table, count: TableCount,
                        say: Callable[[str], None]) -> None:
    columns = ["id", *table.ciphers, *table.hashes]
    total = await rewrites.count_rows(table.name)
    last_id = 0
    while True:
        async with in_transaction() as tx:
            rows = await rewrites.rows_after(tx, table.name, columns, last_id, BATCH)
            if not rows:
                break
            updates: dict[tuple[str, ...], list[list]] = {}
            for row in rows:
                new = _rotated_row(vault, table, dict(row))
                if new:
                    names = tuple(sorted(new))
                    updates.setdefault(names, []).append([new[n] for n in names] + [row["id"]])
            for names, values in updates.items():
                await rewrites.update_by_id(tx, table.name, names, values)
                count.rewritten += len(values)
        count.rows += len(rows)
        last_id = rows[-1]["id"]
        say(f"{table.name}: {count.rows:,} of {total:,} rows read, {count.rewritten:,} rewritten")


async def _map_phone_hashes(vault: Vault, now: dt.datetime) -> int:
    """Move the phone hashes of log-in codes and SMS caps from an old key's to the new key's,
    through the phones of the SMS sent in the last MAPPED_FROM_DAYS."""
    tables = [(t, c) for t, c in PHONE_HASH_ONLY if await rewrites.table_exists(t)]
    if not tables or not vault.rotating:
        return 0
    since = now - dt.timedelta(days=MAPPED_FROM_DAYS)
    mapping: dict[str, str] = {}
    for cipher in await rewrites.phones_texted_since(since):
        try:
            phone = vault.decrypt(cipher)
        except InvalidToken:
            continue
        new = vault.keyed_hash(phone)
        for old in vault.old_hashes(phone):
            mapping[old] = new
    moved = 0
    if not mapping:
        return 0
    async with in_transaction() as tx:
        for table, column in tables:
            found = await rewrites.distinct_values(tx, table, column)
            pairs = [[mapping[h], h] for h in found if h in mapping]
            if pairs:
                await rewrites.replace_values(tx, table, column, pairs)
                moved += len(pairs)
    return moved


async def rotate_keys(vault: Vault, *, now: dt.datetime,
                      say: Callable[[str], None] = lambda line: None) -> RotationResult:
    """Rewrite every cipher and look-up hash still under an old key (see the module's docstring)."""
    result = RotationResult()
    for table in TABLES:
        result.tables[table.name] = count = TableCount()
        await _rotate_table(vault, table, count, say)
    result.mapped = await _map_phone_hashes(vault, now)
    return result
