"""What Tortoise cannot declare: one active booking per person, and places within capacity."""
from tortoise import migrations
from tortoise.migrations import operations as ops

ONE_ACTIVE_BOOKING = (
    "CREATE UNIQUE INDEX IF NOT EXISTS booking_one_active_per_resident "
    "ON booking (resident_id) WHERE status = 'active'"
)

# SQLite cannot add a CHECK to an existing table: triggers refuse the same rows.
SQLITE_CAPACITY = [
    f"""CREATE TRIGGER IF NOT EXISTS slot_within_capacity_{when}
    BEFORE {when.upper()} ON slot
    WHEN NEW.booked < 0 OR NEW.held < 0 OR NEW.booked + NEW.held > NEW.capacity
    BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: slot_within_capacity'); END"""
    for when in ("insert", "update")
]

PG_CAPACITY = (
    "ALTER TABLE slot ADD CONSTRAINT slot_within_capacity "
    "CHECK (booked >= 0 AND held >= 0 AND booked + held <= capacity)"
)


async def forward(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script(ONE_ACTIVE_BOOKING)
    if client.capabilities.dialect == "sqlite":
        for sql in SQLITE_CAPACITY:
            await client.execute_script(sql)
    else:
        await client.execute_script(PG_CAPACITY)


async def backward(apps, schema_editor):
    client = schema_editor.client
    await client.execute_script("DROP INDEX IF EXISTS booking_one_active_per_resident")
    if client.capabilities.dialect == "sqlite":
        for when in ("insert", "update"):
            await client.execute_script(f"DROP TRIGGER IF EXISTS slot_within_capacity_{when}")
    else:
        await client.execute_script("ALTER TABLE slot DROP CONSTRAINT IF EXISTS slot_within_capacity")


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    operations = [ops.RunPython(forward, backward)]
