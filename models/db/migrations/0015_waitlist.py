"""Issue 24: the waiting list (models/booking/waitlist.py): one entry per person and the offers
that hold freed places for them (counted in slot.held like holds).
(The handoff_ticket options change is the migration tool's own bookkeeping: no SQL.)
"""
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0014_security_sms')]

    initial = False

    operations = [
        ops.CreateModel(
            name='WaitlistEntry',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('resident', fields.OneToOneField('models.Resident', source_field='resident_id', db_constraint=True, to_field='id', related_name='waitlist', on_delete=OnDelete.CASCADE)),
                ('status', fields.CharField(default='waiting', max_length=10)),
                ('scope', fields.CharField(default='site', max_length=12)),
                ('site', fields.ForeignKeyField('models.Site', source_field='site_id', db_constraint=True, to_field='id', related_name='waitlist', on_delete=OnDelete.CASCADE)),
                ('subdistrict', fields.CharField(default='', max_length=50)),
                ('days', fields.CharField(default='any', max_length=10)),
                ('part', fields.CharField(default='any', max_length=10)),
                ('first_day', fields.DateField()),
                ('due_by', fields.DateField()),
                ('senior', fields.BooleanField(default=False)),
                ('joined_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expired_offers', fields.SmallIntField(default=0)),
                ('callback', fields.BooleanField(default=False)),
                ('channel', fields.CharField(default='sms', max_length=20)),
                ('added_by', fields.ForeignKeyField('models.StaffUser', source_field='added_by_id', null=True, db_constraint=True, to_field='id', related_name='waitlist_added', on_delete=OnDelete.SET_NULL)),
                ('ended_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'waitlist_entry', 'app': 'models', 'indexes': [Index(fields=['status', 'due_by', 'senior', 'joined_at'])], 'pk_attr': 'id', 'table_description': 'A person on the waiting list (models/booking/waitlist.py): what they would accept, and'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='WaitlistOffer',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('entry', fields.ForeignKeyField('models.WaitlistEntry', source_field='entry_id', db_constraint=True, to_field='id', related_name='offers', on_delete=OnDelete.CASCADE)),
                ('resident', fields.ForeignKeyField('models.Resident', source_field='resident_id', db_constraint=True, to_field='id', related_name='offers', on_delete=OnDelete.CASCADE)),
                ('slot', fields.ForeignKeyField('models.Slot', source_field='slot_id', db_constraint=True, to_field='id', related_name='offers', on_delete=OnDelete.CASCADE)),
                ('token_hash', fields.CharField(unique=True, max_length=64)),
                ('status', fields.CharField(default='open', max_length=10)),
                ('same_day', fields.BooleanField(default=False)),
                ('callback', fields.BooleanField(default=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('sends_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('answered_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'waitlist_offer', 'app': 'models', 'indexes': [Index(fields=['status', 'expires_at']), Index(fields=['resident_id', 'status']), Index(fields=['slot_id', 'status'])], 'pk_attr': 'id', 'table_description': 'A freed place held for the next person on the list until `expires_at`: counted in the'},
            bases=['Model'],
        ),
        ops.AlterModelOptions(
            name='HandoffTicket',
            options={'table': 'handoff_ticket', 'app': 'models', 'pk_attr': 'id', 'table_description': "A one-time address (/h/…) made for a partner's signed hand-off (models/channels/handoff.py):"},
        ),
    ]
