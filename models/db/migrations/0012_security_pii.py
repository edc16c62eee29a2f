"""Issue 21: personal numbers that cannot be rebuilt from what is stored in clear.

The masked ID number used to hide exactly the 8 birth-date digits, with `birth_date` in clear
beside it: the pair gave the whole number back. Now only the birth year stays in clear
(`birth_year`), the full date is dropped (it is read from the encrypted number where rule 8 needs
it), and every mask keeps the region and the last two characters only (`440106**********3X`):
residents, group-list rows and the refusals of past imports. Purged rows keep their region-only
mask (the rewrite leaves `440106************` as it is).

The column is dropped with SQLite's own ALTER TABLE … DROP COLUMN (3.35+), not by Tortoise's
table rebuild, which would DROP the old `resident` table under foreign_keys=ON (cascading into
bookings) and lose its indexes; secure_delete makes SQLite overwrite the freed bytes instead of
leaving old birth dates in free pages. Backups made before this migration still hold them.
"""
import re

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

# The old mask (6 + 8 stars + 4) and any shorter one (a mistyped number on a group list: 6, stars,
# last 4) rewritten as pii.mask_id() and groups._mask_any() write them now: 6, stars, last 2.
NEW_MASK = ("substr({c}, 1, 6) || substr('************', 1, length({c}) - 8) "
            "|| substr({c}, length({c}) - 1, 2)")
OLD_MASK_IN_TEXT = re.compile(r"(\d{6})\*{8}[0-9X]{2}([0-9X]{2})")


async def forward(apps, schema_editor):
    client = schema_editor.client
    sqlite = client.capabilities.dialect == "sqlite"
    if sqlite:
        await client.execute_script("PRAGMA secure_delete = ON")
    await client.execute_script("ALTER TABLE resident ADD COLUMN birth_year INT NOT NULL DEFAULT 0")
    year = "CAST(substr(birth_date, 1, 4) AS INTEGER)" if sqlite else "CAST(EXTRACT(YEAR FROM birth_date) AS INTEGER)"
    await client.execute_script(
        f"UPDATE resident SET birth_year = {year}, id_masked = {NEW_MASK.format(c='id_masked')} "
        "WHERE length(id_masked) = 18")
    await client.execute_script(
        f"UPDATE group_member SET id_masked = {NEW_MASK.format(c='id_masked')} "
        "WHERE length(id_masked) >= 12")
    await client.execute_script("ALTER TABLE resident DROP COLUMN birth_date")
    if not sqlite:
        await client.execute_script("ALTER TABLE resident ALTER COLUMN birth_year DROP DEFAULT")
    # "id_number 440106********123X appears again (first on line 2)": an import's refusals.
    _, rows = await client.execute_query("SELECT id, reason FROM import_reject WHERE reason LIKE '%********%'")
    for row in rows:
        reason = OLD_MASK_IN_TEXT.sub(r"\1**********\2", row["reason"])
        if reason != row["reason"]:
            await client.execute_query("UPDATE import_reject SET reason = "
                                       + ("? WHERE id = ?" if sqlite else "$1 WHERE id = $2"),
                                       [reason, row["id"]])
    if sqlite:
        await client.execute_script("PRAGMA secure_delete = OFF")


async def backward(apps, schema_editor):
    """The column back, as 1 January of the year: the day and month are gone (masks stay short)."""
    client = schema_editor.client
    sqlite = client.capabilities.dialect == "sqlite"
    await client.execute_script("ALTER TABLE resident ADD COLUMN birth_date DATE NOT NULL DEFAULT '1900-01-01'")
    born = ("printf('%04d-01-01', birth_year)" if sqlite
            else "make_date(GREATEST(birth_year, 1), 1, 1)")
    await client.execute_script(f"UPDATE resident SET birth_date = {born}")
    await client.execute_script("ALTER TABLE resident DROP COLUMN birth_year")


class _StateOnly:
    """The model's new shape for Tortoise's migration state; forward() changes the database."""

    async def database_forward(self, *args, **kwargs) -> None:
        return None

    async def database_backward(self, *args, **kwargs) -> None:
        return None


class AddFieldState(_StateOnly, ops.AddField):
    pass


class RemoveFieldState(_StateOnly, ops.RemoveField):
    pass


class Migration(migrations.Migration):
    dependencies = [('models', '0011_security_limits')]

    initial = False

    operations = [
        ops.RunPython(forward, backward),
        AddFieldState(model_name='Resident', name='birth_year', field=fields.IntField()),
        RemoveFieldState(model_name='Resident', name='birth_date'),
    ]
