"""Issue 21: SMS that cannot be turned into a weapon or a bill."""
from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0013_security_staff')]

    initial = False

    operations = []
