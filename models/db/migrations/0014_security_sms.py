"""Issue 21: SMS that cannot be turned into a weapon or a bill.

sms_quota: per phone number, the SMS asked for on demand in the last day (models/messaging/caps.py);
sms_message.expires_at: a log-in code is dropped as `expired` instead of sent once it is past it.
"""
from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [('models', '0013_security_staff')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsQuota',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone_hash', fields.CharField(unique=True, max_length=64)),
                ('times', fields.TextField(default='', unique=False)),
                ('last_at', fields.BigIntField(db_index=True)),
            ],
            options={'table': 'sms_quota', 'app': 'models', 'pk_attr': 'id', 'table_description': 'SMS asked for on demand to one phone number (log-in codes, link re-sends) in the last day,'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='expires_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
