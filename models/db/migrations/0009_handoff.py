from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0008_report_indexes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='HandoffNonce',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('partner', fields.CharField(max_length=20)),
                ('nonce', fields.CharField(max_length=64)),
                ('seen_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'handoff_nonce', 'app': 'models', 'unique_together': (('partner', 'nonce'),), 'pk_attr': 'id', 'table_description': 'A nonce a partner signed a request with, kept while its timestamp could still be accepted:'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='HandoffTicket',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('partner', fields.CharField(max_length=20)),
                ('resident', fields.ForeignKeyField('models.Resident', source_field='resident_id', db_constraint=True, to_field='id', related_name='handoffs', on_delete=OnDelete.CASCADE)),
                ('lang', fields.CharField(default='', max_length=2)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'handoff_ticket', 'app': 'models', 'pk_attr': 'id', 'table_description': "A one-time address (/h/…) made for a partner's signed hand-off (models/people/handoff.py):"},
            bases=['Model'],
        ),
    ]
