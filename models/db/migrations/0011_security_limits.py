"""Issue 21: what the rate limits keep in the database (web/limits.py: the counters every
worker and host shares when no Redis is set)."""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0010_sms_status_kind_index')]

    initial = False

    operations = [
        ops.CreateModel(
            name='RateCounter',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('key', fields.CharField(max_length=64)),
                ('period', fields.BigIntField()),
                ('hits', fields.IntField(default=0)),
                ('expires', fields.BigIntField(db_index=True)),
            ],
            options={'table': 'rate_counter', 'app': 'models', 'unique_together': (('key', 'period'),), 'pk_attr': 'id', 'table_description': "One rate limit's count for one key in one window (web/limits.py), when no Redis is set:"},
            bases=['Model'],
        ),
    ]
