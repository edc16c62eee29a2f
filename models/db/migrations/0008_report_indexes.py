from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0007_groups')]

    initial = False

    operations = [
        ops.AddIndex(
            model_name='Booking',
            index=Index(fields=['slot_id', 'status']),
        ),
        ops.AddIndex(
            model_name='Resident',
            index=Index(fields=['subdistrict', 'vaccine', 'first_dose_date', 'second_dose_date']),
        ),
        ops.AddIndex(
            model_name='Resident',
            index=Index(fields=['subdistrict', 'second_dose_date']),
        ),
    ]
