"""Issue 21: staff see only what their role needs.

A clinic account must name its sub-district or be made district-wide on purpose
(StaffUser.district_wide); before, one created without a sub-district silently served the whole
district. Those accounts were made to serve it, so they keep working: they are marked
district-wide here, explicitly. From now on, a clinic account with neither sees nobody.

The column is added with a DEFAULT in SQL (Tortoise's ADD COLUMN has none, which SQLite refuses
for a NOT NULL column on a table with rows); the AddField below only tells Tortoise's migration
state about it.
"""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


async def forward(apps, schema_editor):
    client = schema_editor.client
    sqlite = client.capabilities.dialect == "sqlite"
    kind, yes = ("INT NOT NULL DEFAULT 0", "1") if sqlite else ("BOOL NOT NULL DEFAULT FALSE", "TRUE")
    await client.execute_script(f"ALTER TABLE staff_user ADD COLUMN district_wide {kind}")
    await client.execute_script(
        f"UPDATE staff_user SET district_wide = {yes} WHERE role = 'clinic' AND subdistrict = ''")


async def backward(apps, schema_editor):
    await schema_editor.client.execute_script("ALTER TABLE staff_user DROP COLUMN district_wide")


class AddFieldState(ops.AddField):
    """The model's new field for Tortoise's migration state; forward() changes the database."""

    async def database_forward(self, *args, **kwargs) -> None:
        return None

    async def database_backward(self, *args, **kwargs) -> None:
        return None


class Migration(migrations.Migration):
    dependencies = [('models', '0012_security_pii')]

    initial = False

    operations = [
        ops.RunPython(forward, backward),
        AddFieldState(
            model_name='StaffUser',
            name='district_wide',
            field=fields.BooleanField(default=False),
        ),
    ]
