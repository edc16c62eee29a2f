from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_district_operations')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LoginCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('phone_hash', fields.CharField(db_index=True, max_length=64)),
                ('code_hash', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('tries', fields.IntField(default=0)),
                ('used', fields.BooleanField(default=False)),
            ],
            options={'table': 'login_code', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A 6-digit code sent by SMS to a phone number, for the public way in without a link.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Resident',
            name='lang',
            field=fields.CharField(default='zh', max_length=5),
        ),
        ops.AlterModelOptions(
            name='SmsMessage',
            options={'table': 'sms_message', 'app': 'models', 'indexes': [Index(fields=['status', 'priority', 'next_attempt_at'])], 'pk_attr': 'id', 'table_description': 'One SMS in the outbox, written in the same transaction as what it reports.'},
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='claimed_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='dedupe_key',
            field=fields.CharField(null=True, unique=True, max_length=80),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='delivered_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='gateway_id',
            field=fields.CharField(default='', db_index=True, max_length=64),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='lang',
            field=fields.CharField(default='zh', max_length=5),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='params_cipher',
            field=fields.TextField(default='', unique=False),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='phone_hash',
            field=fields.CharField(default='', db_index=True, max_length=64),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='priority',
            field=fields.SmallIntField(default=2),
        ),
        ops.AddField(
            model_name='SmsMessage',
            name='template',
            field=fields.CharField(default='', max_length=30),
        ),
        ops.AddIndex(
            model_name='SmsMessage',
            index=Index(fields=['status', 'priority', 'next_attempt_at']),
        ),
    ]
