from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_audit_append_only')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ImportRun',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=20)),
                ('filename', fields.CharField(default='', max_length=200)),
                ('status', fields.CharField(default='running', max_length=10)),
                ('rows', fields.IntField(default=0)),
                ('created', fields.IntField(default=0)),
                ('updated', fields.IntField(default=0)),
                ('unchanged', fields.IntField(default=0)),
                ('rejected', fields.IntField(default=0)),
                ('error', fields.CharField(default='', max_length=300)),
                ('user', fields.ForeignKeyField('models.StaffUser', source_field='user_id', null=True, db_constraint=True, to_field='id', related_name='imports', on_delete=OnDelete.CASCADE)),
                ('started_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('finished_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'import_run', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One import of a CSV file (from the browser or the CLI): its progress and its counts.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ImportReject',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('run', fields.ForeignKeyField('models.ImportRun', source_field='run_id', db_constraint=True, to_field='id', related_name='rejects', on_delete=OnDelete.CASCADE)),
                ('line', fields.IntField()),
                ('reason', fields.CharField(max_length=500)),
            ],
            options={'table': 'import_reject', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A row an import refused: its line in the file and every reason.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SiteTemplate',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('site', fields.ForeignKeyField('models.Site', source_field='site_id', db_constraint=True, to_field='id', related_name='template', on_delete=OnDelete.CASCADE)),
                ('weekday', fields.IntField()),
                ('start', fields.CharField(max_length=5)),
                ('end', fields.CharField(max_length=5)),
                ('capacity', fields.IntField()),
            ],
            options={'table': 'site_template', 'app': 'models', 'unique_together': (('site', 'weekday', 'start'),), 'pk_attr': 'id', 'table_description': "One time window of a site's weekly template: applied to a date range, it opens slots."},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='AuditEntry',
            options={'table': 'audit_entry', 'app': 'models', 'pk_attr': 'id', 'table_description': 'One staff action. Append-only: the database refuses UPDATE and DELETE (migration 0004).'},
        ),
        ops.AddField(
            model_name='Resident',
            name='reminded_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AlterModelOptions(
            name='RiskArea',
            options={'table': 'risk_area', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A sub-district marked medium or high risk: from `since`, its residents cannot book.'},
        ),
        ops.AddField(
            model_name='RiskArea',
            name='since',
            field=fields.DateField(null=True),
        ),
        ops.AddField(
            model_name='Slot',
            name='closed_reason',
            field=fields.CharField(default='', max_length=100),
        ),
    ]
