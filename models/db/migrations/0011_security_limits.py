"""Issue 21: what the rate limits keep in the database (placeholder until used)."""
from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0010_sms_status_kind_index')]

    initial = False

    operations = []
