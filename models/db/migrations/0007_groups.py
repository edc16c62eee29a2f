from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0006_sms_outbox_login_codes')]

    initial = False

    operations = [
        ops.CreateModel(
            name='GroupList',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('owner', fields.ForeignKeyField('models.StaffUser', source_field='owner_id', db_constraint=True, to_field='id', related_name='group_lists', on_delete=OnDelete.CASCADE)),
                ('subdistrict', fields.CharField(default='', db_index=True, max_length=50)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('runs', fields.IntField(default=0)),
                ('last_action', fields.CharField(default='', max_length=10)),
                ('last_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'group_list', 'app': 'models', 'pk_attr': 'id', 'table_description': "A list of people a sub-district office or residents' committee books together (/group)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='GroupMember',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('group', fields.ForeignKeyField('models.GroupList', source_field='group_id', db_constraint=True, to_field='id', related_name='members', on_delete=OnDelete.CASCADE)),
                ('row', fields.IntField()),
                ('name', fields.CharField(max_length=50)),
                ('id_hash', fields.CharField(default='', db_index=True, max_length=64)),
                ('id_cipher', fields.TextField(default='', unique=False)),
                ('id_masked', fields.CharField(default='', max_length=18)),
                ('id_problem', fields.CharField(default='', max_length=12)),
                ('phone_cipher', fields.TextField(default='', unique=False)),
                ('phone_masked', fields.CharField(default='', max_length=11)),
                ('resident', fields.ForeignKeyField('models.Resident', source_field='resident_id', null=True, db_constraint=True, to_field='id', related_name='group_rows', on_delete=OnDelete.SET_NULL)),
                ('booking', fields.ForeignKeyField('models.Booking', source_field='booking_id', null=True, db_constraint=True, to_field='id', related_name='group_rows', on_delete=OnDelete.SET_NULL)),
                ('outcome', fields.CharField(default='', max_length=20)),
                ('run', fields.IntField(default=0)),
                ('added_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'group_member', 'app': 'models', 'unique_together': (('group', 'row'),), 'pk_attr': 'id', 'table_description': 'One row of a group list, as typed: the ID number kept hashed (to find the record),'},
            bases=['Model'],
        ),
    ]
