"""The audit trail is append-only: the database refuses to change or delete an entry."""
from tortoise import migrations
from tortoise.migrations import operations as ops

SQLITE = [
    f"""CREATE TRIGGER IF NOT EXISTS audit_entry_no_{what}
    BEFORE {what.upper()} ON audit_entry
    BEGIN SELECT RAISE(ABORT, 'audit_entry is append-only'); END"""
    for what in ("update", "delete")
]
PG = [
    """CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION 'audit_entry is append-only'; END $$ LANGUAGE plpgsql""",
    """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_entry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
]


async def forward(apps, schema_editor):
    client = schema_editor.client
    for sql in SQLITE if client.capabilities.dialect == "sqlite" else PG:
        await client.execute_script(sql)


async def backward(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "sqlite":
        for what in ("update", "delete"):
            await client.execute_script(f"DROP TRIGGER IF EXISTS audit_entry_no_{what}")
    else:
        await client.execute_script("DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_entry")
        await client.execute_script("DROP FUNCTION IF EXISTS audit_entry_append_only()")


class Migration(migrations.Migration):
    dependencies = [("models", "0003_staff_sessions_audit")]

    operations = [ops.RunPython(forward, backward)]
