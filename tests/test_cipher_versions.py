"""Issue 25: personal values are encrypted with AES-GCM ("g2:…"), not Fernet any more.

Every value Fernet wrote stays readable (under SECRET_KEY or SECRET_KEY_OLD); rotate-keys rewrites
Fernet values in the new format as it rewrites values under an old key; a tampered value of
either format is refused with the exception the callers expect (cryptography's InvalidToken).
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import pickle

import pytest
from cryptography.fernet import Fernet, InvalidToken

from models.channels import entry
from models.db.tables import Resident, SmsMessage
from models.messaging.outbox import queue
from models.messaging.sms import Sms
from models.operations import rotation
from models.people import lookup, pii
from models.people.residents import birth_date_of
from tests.conftest import TEST_SECRET, VAULT
from tests.factories import make_resident, make_site
from web.settings import build_district

NEW_SECRET = "rotated-key-Zq8v3LkP0wYt6Hc2Rn9Sd4Fg7Jm1Xb5U"


def old_code_encrypt(secret: str, value: str) -> str:
    """What Vault.encrypt() wrote before issue 25: Fernet, its key derived from the secret."""
    key = base64.urlsafe_b64encode(hashlib.sha256(f"pii-fernet:{secret}".encode()).digest())
    return Fernet(key).encrypt(value.encode()).decode()


def tampered(token: str) -> str:
    """The token with one byte of its ciphertext changed (base64 kept valid)."""
    prefix = pii.CIPHER_PREFIX if token.startswith(pii.CIPHER_PREFIX) else ""
    raw = bytearray(base64.urlsafe_b64decode(token[len(prefix):]))
    raw[len(raw) // 2] ^= 1
    return prefix + base64.urlsafe_b64encode(bytes(raw)).decode()


def test_a_new_value_is_in_the_new_format_and_reads_back():
    token = VAULT.encrypt("440106199001011234")
    assert token.startswith("g2:") and not token.startswith("gAAAAA")
    assert VAULT.decrypt(token) == "440106199001011234"
    assert VAULT.encrypt("440106199001011234") != token  # a fresh nonce each time
    assert VAULT.is_current(token)
    assert VAULT.decrypt(VAULT.encrypt("")) == "" and VAULT.decrypt(VAULT.encrypt("张三明")) == "张三明"


def test_a_fernet_value_written_by_the_old_code_is_still_read():
    token = old_code_encrypt(TEST_SECRET, "13812345678")
    assert token.startswith("gAAAAA")
    assert VAULT.decrypt(token) == "13812345678"
    assert not VAULT.is_current(token)  # rotate-keys rewrites it in the new format


def test_old_keys_open_both_formats_and_new_values_use_the_new_key():
    rotating = pii.Vault(NEW_SECRET, [TEST_SECRET])
    assert rotating.decrypt(old_code_encrypt(TEST_SECRET, "a")) == "a"
    assert rotating.decrypt(VAULT.encrypt("b")) == "b"
    assert not rotating.is_current(VAULT.encrypt("b"))
    new = rotating.encrypt("c")
    assert pii.Vault(NEW_SECRET).decrypt(new) == "c" and rotating.is_current(new)
    with pytest.raises(InvalidToken):
        VAULT.decrypt(new)


@pytest.mark.parametrize("fmt", ["new", "fernet"])
def test_a_tampered_or_foreign_value_is_refused_with_invalid_token(fmt):
    token = VAULT.encrypt("13812345678") if fmt == "new" else old_code_encrypt(TEST_SECRET, "13812345678")
    other = pii.Vault(NEW_SECRET)
    for bad in (tampered(token), token[:-8], token[:len(token) // 2], other.encrypt("13812345678")
                if fmt == "new" else old_code_encrypt(NEW_SECRET, "13812345678")):
        with pytest.raises(InvalidToken):
            VAULT.decrypt(bad)
        assert not VAULT.is_current(bad)
    for junk in ("g2:", "g2:AAAA", "g2:!!!!", "g2:é", "gAAAAA"):
        with pytest.raises(InvalidToken):
            VAULT.decrypt(junk)


async def test_a_sealed_phone_in_a_session_refuses_tampering_in_both_formats(settings, clock):
    district = build_district(settings, clock=clock)
    sealed = entry.seal_phone(district, "13812345678")
    assert sealed.startswith("g2:") and entry.unseal_phone(district, sealed) == "13812345678"
    assert entry.unseal_phone(district, old_code_encrypt(TEST_SECRET, "13812345678")) == "13812345678"
    assert entry.unseal_phone(district, tampered(sealed)) is None
    assert entry.unseal_phone(district, tampered(old_code_encrypt(TEST_SECRET, "13812345678"))) is None


def test_the_vault_handed_to_an_import_worker_reads_and_writes_both_formats():
    rotating = pickle.loads(pickle.dumps(pii.Vault(NEW_SECRET, [TEST_SECRET])))
    assert rotating.decrypt(old_code_encrypt(TEST_SECRET, "x")) == "x"
    assert rotating.decrypt(VAULT.encrypt("y")) == "y"
    assert pii.Vault(NEW_SECRET).decrypt(rotating.encrypt("z")) == "z"


# ---- stored values (SQLite and PostgreSQL)


async def _residents_in_both_formats(clock):
    """Four residents under TEST_SECRET: two as the old code wrote them (Fernet), two new."""
    site = await make_site("TH01", "五山街")
    first = clock.today() - dt.timedelta(days=30)
    people = []
    for n in range(4):
        phone = f"1381234{n:04d}"
        resident, number = await make_resident(site, first_dose=first, name=f"张{n}明", phone=phone)
        if n < 2:
            await Resident.filter(id=resident.id).update(id_cipher=old_code_encrypt(TEST_SECRET, number),
                                                         phone_cipher=old_code_encrypt(TEST_SECRET, phone))
        people.append((resident.id, number, phone))
    return people


async def test_stored_fernet_values_are_read_where_the_service_reads_them(db, clock):
    people = await _residents_in_both_formats(clock)
    for n, (resident_id, number, phone) in enumerate(people):
        resident = await Resident.get(id=resident_id)
        assert resident.id_cipher.startswith("gAAAAA" if n < 2 else "g2:")
        assert lookup.reveal(VAULT, resident, "id") == number
        assert lookup.reveal(VAULT, resident, "phone") == phone
        assert birth_date_of(VAULT, resident) == pii.birth_date(number)


async def test_rotation_with_an_old_key_rewrites_both_formats_to_the_new_key(db, settings, clock):
    people = await _residents_in_both_formats(clock)
    resident = await Resident.get(id=people[0][0])
    await queue(VAULT, resident, Sms("confirm", {"name": "张*明"}, "预约成功", "zh"), kind="confirm")
    await SmsMessage.filter(resident_id=resident.id).update(
        body_cipher=old_code_encrypt(TEST_SECRET, "预约成功"))
    new = build_district(settings.with_(secret_key=NEW_SECRET, secret_key_old=(TEST_SECRET,)), clock=clock)
    result = await rotation.rotate_keys(new.vault, now=clock.now())
    assert result.tables["resident"].rewritten == 4 and result.tables["sms_message"].rewritten == 1

    new_only = pii.Vault(NEW_SECRET)
    for resident_id, number, phone in people:
        row = await Resident.get(id=resident_id)
        assert row.id_cipher.startswith("g2:") and row.phone_cipher.startswith("g2:")
        assert new_only.decrypt(row.id_cipher) == number and new_only.decrypt(row.phone_cipher) == phone
        assert row.id_hash == new_only.keyed_hash(number)
        with pytest.raises(InvalidToken):
            VAULT.decrypt(row.id_cipher)
    sms = await SmsMessage.get(resident_id=resident.id)
    assert new_only.decrypt(sms.body_cipher) == "预约成功" and sms.body_cipher.startswith("g2:")
    # Run again: every value is current, nothing rewritten.
    again = await rotation.rotate_keys(new.vault, now=clock.now())
    assert again.tables["resident"].rewritten == 0 and again.tables["sms_message"].rewritten == 0


async def test_rotation_without_an_old_key_rewrites_fernet_values_in_the_new_format(db, settings, clock):
    people = await _residents_in_both_formats(clock)
    before = {r["id"]: r for r in await Resident.all().values("id", "id_cipher", "id_hash", "phone_hash")}
    lines = []
    result = await rotation.rotate_keys(VAULT, now=clock.now(), say=lines.append)
    assert result.tables["resident"].rewritten == 2 and result.tables["resident"].rows == 4
    assert any(line.startswith("resident: 4 of 4 rows read, 2 rewritten") for line in lines), lines
    for resident_id, number, phone in people:
        row = await Resident.get(id=resident_id)
        assert VAULT.is_current(row.id_cipher) and VAULT.is_current(row.phone_cipher)
        assert VAULT.decrypt(row.id_cipher) == number and VAULT.decrypt(row.phone_cipher) == phone
        assert row.id_hash == before[resident_id]["id_hash"]  # the same key: the same hashes
        assert row.phone_hash == before[resident_id]["phone_hash"]
    for resident_id, _, _ in people[2:]:  # already in the new format: not rewritten
        assert (await Resident.get(id=resident_id)).id_cipher == before[resident_id]["id_cipher"]
