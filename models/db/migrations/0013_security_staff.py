"""Issue 21: staff see only what their role needs."""
from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0012_security_pii')]

    initial = False

    operations = []
