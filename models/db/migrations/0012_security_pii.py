"""Issue 21: personal numbers that cannot be rebuilt from what is stored in clear."""
from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [('models', '0011_security_limits')]

    initial = False

    operations = []
