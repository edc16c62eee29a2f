from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_handoff')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='SmsMessage',
            index=Index(fields=['status', 'kind']),
        ),
    ]
