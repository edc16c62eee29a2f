"""Personal data: resident ID and phone normalising, validation, keyed hashing, encryption, masking."""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import hmac
import os
import re
import unicodedata
from typing import Sequence

import phonenumbers
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, ValidationError


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-character resident ID number; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # one of: length, format, checksum, birth_date, region


class InvalidPhone(ValueError):
    """The text is not a mainland mobile number."""


# A value encrypted by Vault.encrypt(): this prefix, then urlsafe base64 of a random 12-byte nonce
# and the AES-256-GCM ciphertext with its 16-byte tag. Fernet tokens (what encrypt() wrote before)
# are urlsafe base64 of a version byte 0x80, so they always begin "gA" and never hold a ":".
CIPHER_PREFIX = "g2:"
_NONCE = 12
_TAG = 16


class Vault:
    """The keys for personal values, derived from the server secret: look-up hashes and encryption.

    Built once by whoever starts the service (web/app.py, run.py) and handed down. `old_keys`
    (SECRET_KEY_OLD) are the secrets in use before a rotation: values encrypted under them stay
    readable, new values are encrypted and hashed with `secret_key` only, and `run.py rotate-keys`
    (models/operations/rotation.py) rewrites the rest, after which the old keys can go.

    New values are AES-256-GCM (CIPHER_PREFIX): about 1.5 µs a value where Fernet (AES-CBC and
    HMAC, what was written before) takes 8–9 (bench/ciphers.py). Fernet values stay readable under
    any key, and rotate-keys rewrites them in the new format. Random 96-bit nonces: a key is good
    for 2**32 values (NIST SP 800-38D), some thousand times what a district writes between rotations.
    """

    def __init__(self, secret_key: str, old_keys: Sequence[str] = ()):
        if not secret_key:
            raise ValueError("a secret key is needed to protect personal data")
        olds = [key for key in dict.fromkeys(old_keys) if key and key != secret_key]
        self._set_keys([_derived(key) for key in (secret_key, *olds)])

    def _set_keys(self, keys: list[tuple[bytes, bytes, bytes]]) -> None:
        """keys: (HMAC key, Fernet key, AES-GCM key) of each secret, the current one first."""
        self._keys = keys
        (hmac_key, fernet_key, aes_key), old = keys[0], keys[1:]
        self._hmac_key, self._fernet_key = hmac_key, fernet_key  # the current ones
        # The key set up once; each hash copies it (half the cost: an import hashes 2 values a row).
        self._hmac = hmac.new(hmac_key, digestmod=hashlib.sha256)
        self._old_hmacs = [hmac.new(k, digestmod=hashlib.sha256) for k, _, _ in old]
        self._aead = AESGCM(aes_key)
        self._aeads = [self._aead, *(AESGCM(a) for _, _, a in old)]  # decryption tries each in turn
        self._current = Fernet(fernet_key)
        # Fernet values: decrypted with any key (Fernet's own rotation); never written any more.
        self._fernet = MultiFernet([self._current, *(Fernet(f) for _, f, _ in old)]) if old else self._current

    def __reduce__(self):
        """Pickled as its derived keys (never the secrets themselves): how an import hands the
        Vault to the worker process that checks, hashes and encrypts its rows."""
        return _vault_from_keys, (self._keys,)

    @property
    def rotating(self) -> bool:
        """Old keys are set: some values may still be under one of them."""
        return len(self._keys) > 1

    def keyed_hash(self, value: str) -> str:
        """The HMAC-SHA256 used to look a record up without storing the value (current key)."""
        keyed = self._hmac.copy()
        keyed.update(value.encode())
        return keyed.hexdigest()

    def old_hashes(self, value: str) -> list[str]:
        """The value's look-up hashes under each old key (none when no rotation is under way)."""
        found = []
        for old in self._old_hmacs:
            keyed = old.copy()
            keyed.update(value.encode())
            found.append(keyed.hexdigest())
        return found

    def matches(self, value: str, stored_hash: str) -> bool:
        """Whether `stored_hash` is the value's look-up hash under the current key or an old one:
        a row rotate-keys has not reached yet still answers a check (the link's ID check)."""
        found = False
        for candidate in (self.keyed_hash(value), *self.old_hashes(value)):
            found |= hmac.compare_digest(candidate, stored_hash)
        return found

    def encrypt(self, value: str) -> str:
        """Encrypt a personal value for storage (current key, AES-GCM: CIPHER_PREFIX)."""
        nonce = os.urandom(_NONCE)
        sealed = self._aead.encrypt(nonce, value.encode(), None)
        return CIPHER_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt a value stored by encrypt() (either format), under the current key or an old
        one; cryptography.fernet.InvalidToken when no key opens it, whatever its format."""
        if token.startswith(CIPHER_PREFIX):
            return self._open(token, self._aeads).decode()
        return self._fernet.decrypt(token.encode()).decode()

    def is_current(self, token: str) -> bool:
        """Whether the value is in the new format under the current key (rotate-keys is done
        with it; it rewrites a Fernet value under any key)."""
        if not token.startswith(CIPHER_PREFIX):
            return False
        try:
            self._open(token, self._aeads[:1])
        except InvalidToken:
            return False
        return True

    @staticmethod
    def _open(token: str, aeads: list[AESGCM]) -> bytes:
        try:
            raw = base64.urlsafe_b64decode(token[len(CIPHER_PREFIX):])
        except (binascii.Error, ValueError):  # ValueError: a non-ASCII character
            raise InvalidToken from None
        if len(raw) < _NONCE + _TAG:
            raise InvalidToken
        nonce, sealed = raw[:_NONCE], raw[_NONCE:]
        for aead in aeads:
            try:
                return aead.decrypt(nonce, sealed, None)
            except InvalidTag:
                continue
        raise InvalidToken


def _derived(secret_key: str) -> tuple[bytes, bytes, bytes]:
    digest = lambda label: hashlib.sha256(f"{label}:{secret_key}".encode()).digest()  # noqa: E731
    return digest("pii-hmac"), base64.urlsafe_b64encode(digest("pii-fernet")), digest("pii-aes-gcm")


def _vault_from_keys(keys: list[tuple[bytes, bytes, bytes]]) -> Vault:
    vault = Vault.__new__(Vault)
    vault._set_keys(keys)
    return vault


# ---- secrets that must be real

MIN_SECRET_LENGTH = 32
# Values that documentation, examples and habit put in SECRET_KEY: never a real secret, whatever
# their length (compared without case, spaces, dashes or underscores).
PLACEHOLDER_SECRETS = ("CHANGE-ME", "changeme", "change-me-please", "secret", "secret-key",
                       "your-secret-key", "replace-me", "password", "default", "development",
                       "dev", "test", "example", "insecure", "xxx")
_PLACEHOLDER_WORDS = ("changeme", "replaceme", "yoursecret", "placeholder")
MIN_DISTINCT_CHARACTERS = 8  # 'x' * 48 is long but not secret


def _folded(text: str) -> str:
    return re.sub(r"[\s_\-.]", "", text).lower()


def secret_problem(secret_key: str) -> str | None:
    """Why `secret_key` cannot protect a production service (a placeholder, too short, too
    repetitive), or None. `run.py serve` refuses to start with such a SECRET_KEY."""
    folded = _folded(secret_key)
    if folded in {_folded(p) for p in PLACEHOLDER_SECRETS} or any(w in folded for w in _PLACEHOLDER_WORDS):
        return "is a placeholder from an example, not a secret"
    if len(secret_key) < MIN_SECRET_LENGTH:
        return f"is {len(secret_key)} characters long; at least {MIN_SECRET_LENGTH} are needed"
    if len(set(secret_key)) < MIN_DISTINCT_CHARACTERS:
        return "repeats a few characters; use a random one"
    return None


# ASCII whitespace (as str.isspace() sees it) and dashes: what normalise_id drops from ASCII text.
_ASCII_DROP = str.maketrans("", "", "".join(ch for ch in map(chr, range(128)) if ch.isspace()) + "-")
_DIGITS = frozenset("0123456789")


def normalise_id(text: str) -> str:
    """Fold full-width characters, drop spaces and dashes, upper-case the final x."""
    text = text or ""
    if text.isascii():  # NFKC leaves ASCII as it is: the common case, without the Unicode tables
        return text.translate(_ASCII_DROP).upper()
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").upper()


def validate_id(text: str) -> str:
    """Return the normalised ID number, or raise InvalidIdNumber saying what is wrong."""
    number = normalise_id(text)
    if len(number) != 18:
        raise InvalidIdNumber("length")
    if not (number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")):
        raise InvalidIdNumber("format")
    if _DIGITS.issuperset(number[:17]):
        return _validate_ascii(number)
    # Other Unicode digits (which NFKC leaves alone): python-stdnum's own answers, as they come.
    try:
        ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdNumber("birth_date") from None
    try:
        ric.validate(number)
    except InvalidChecksum:
        raise InvalidIdNumber("checksum") from None
    except (ValidationError, KeyError):  # KeyError: a province's code with an unknown county
        # python-stdnum also refuses a region code created after the birth year, but numbers are
        # issued where people are registered: a Tianhe resident born in 1949 holds 440106….
        if not _region_known(number):
            raise InvalidIdNumber("region") from None
    return number


def _validate_ascii(number: str) -> str:
    """validate_id() for 17 ASCII digits and a digit or X, with python-stdnum's answers in its
    order (birth date, check character, area code) but without its generic clean-up of the text
    on every call (3 times a number): an import checks a million of them."""
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        raise InvalidIdNumber("birth_date") from None
    if number[17] != ric.calc_check_digit(number):
        raise InvalidIdNumber("checksum")
    # As ric.validate(): the area code as it was in the birth year; else, as above, any area
    # code that exists or existed.
    if not _place_known(number[:6], born.year) and not _region_known(number):
        raise InvalidIdNumber("region")
    return number


@functools.lru_cache(maxsize=65536)
def _place_known(region: str, year: int) -> bool:
    """Whether python-stdnum finds the area code as it was in that year (ric.get_birth_place)."""
    _cache_region_lookups()  # read on first use, not at import: most processes never need it
    try:
        ric.get_birth_place(f"{region}{year:04d}0101000")
    except (ValidationError, KeyError):  # KeyError: a province's code with an unknown county
        return False
    return True


def _cache_region_lookups() -> None:
    """python-stdnum finds a region code by scanning some 4,000 prefixes, about 1 ms a number
    (ric.validate and _region_known both ask): remember the answers (a few thousand codes exist),
    so that importing a million first-dose rows takes minutes, not hours. Same answers."""
    from stdnum import numdb

    regions = numdb.get("cn/loc")  # the one instance ric's look-ups use too
    if not hasattr(regions.info, "cache_info"):
        regions.info = functools.lru_cache(maxsize=8192)(regions.info)


def _region_known(number: str) -> bool:
    """Whether the first six digits are a region code that exists or existed."""
    return _region_code_known(number[:6])


@functools.lru_cache(maxsize=8192)
def _region_code_known(region: str) -> bool:
    from stdnum import numdb

    _cache_region_lookups()
    # The county's part must be known: a province's own code followed by an unknown county
    # (110999) is not an area code.
    return any("county" in props for _, props in numdb.get("cn/loc").info(region))


def birth_date(id_number: str) -> dt.date:
    """Return the birth date written in a valid ID number."""
    return dt.date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


# A plain 11-digit number starting with 1 that libphonenumber's parse() would keep whole: not
# 11…, 12… or 179… (carrier and IP-call prefixes it may strip for China, `national_prefix_for_parsing`).
_PLAIN_MOBILE = re.compile(r"1(?:[03-689]\d|7[0-8])\d{8}")


def normalise_phone(text: str) -> str:
    """Return an 11-digit mainland mobile number, or raise InvalidPhone."""
    text = text or ""
    if text.isascii():
        text = text.strip()
        if _PLAIN_MOBILE.fullmatch(text):
            # What parse(text, "CN") gives for such a number, without its string work (the
            # import's largest cost): the type is still libphonenumber's.
            number = phonenumbers.PhoneNumber(country_code=86, national_number=int(text))
            if phonenumbers.number_type(number) != phonenumbers.PhoneNumberType.MOBILE:
                raise InvalidPhone(text)
            return text
    text = unicodedata.normalize("NFKC", text).strip()
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise InvalidPhone(text) from None
    national = str(parsed.national_number)
    if (
        parsed.country_code != 86
        or phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.MOBILE
        or len(national) != 11
    ):
        raise InvalidPhone(text)
    return national


def mask_id(id_number: str) -> str:
    """440106199001011234 -> 440106**********34: the region and the last two characters kept.

    The birth year is stored in clear (Resident.birth_year): were the stars to hide exactly the
    birth date (the 8 digits the old mask hid), year, region and check character would leave a
    few dozen numbers per mask. Hiding the date and the first two sequence digits leaves about
    3,300 per mask once the year is known (tests/test_pii_at_rest.py counts them)."""
    return id_number[:6] + "*" * 10 + id_number[-2:]


def mask_phone(phone: str) -> str:
    """13812345678 -> 138****5678."""
    return phone[:3] + "****" + phone[-4:]


def mask_name(name: str) -> str:
    """张三明 -> 张*明, 张三 -> 张*, Alice Wong -> A*********g."""
    name = name.strip()
    if len(name) <= 1:
        return name
    if len(name) == 2:
        return name[0] + "*"
    return name[0] + "*" * (len(name) - 2) + name[-1]


def build_id_number(region: str, born: dt.date, sequence: int) -> str:
    """Make a valid ID number (for demo data and tests): region code, birth date, sequence, check."""
    body = f"{region}{born:%Y%m%d}{sequence % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")  # it ignores the last character
