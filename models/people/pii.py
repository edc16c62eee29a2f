"""Personal data: resident ID and phone normalising, validation, keyed hashing, encryption, masking."""
from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import hmac
import unicodedata

import phonenumbers
from cryptography.fernet import Fernet
from stdnum.cn import ric
from stdnum.exceptions import InvalidChecksum, ValidationError


class InvalidIdNumber(ValueError):
    """The text is not a valid 18-character resident ID number; `reason` says why."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason  # one of: length, format, checksum, birth_date, region


class InvalidPhone(ValueError):
    """The text is not a mainland mobile number."""


class Vault:
    """The keys for personal values, derived from the server secret: look-up hashes and encryption.

    Built once by whoever starts the service (web/app.py, run.py) and handed down.
    """

    def __init__(self, secret_key: str):
        if not secret_key:
            raise ValueError("a secret key is needed to protect personal data")
        digest = lambda label: hashlib.sha256(f"{label}:{secret_key}".encode()).digest()  # noqa: E731
        self._hmac_key = digest("pii-hmac")
        self._fernet = Fernet(base64.urlsafe_b64encode(digest("pii-fernet")))

    def keyed_hash(self, value: str) -> str:
        """The HMAC-SHA256 used to look a record up without storing the value."""
        return hmac.new(self._hmac_key, value.encode(), hashlib.sha256).hexdigest()

    def encrypt(self, value: str) -> str:
        """Encrypt a personal value for storage."""
        return self._fernet.encrypt(value.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Decrypt a value stored by encrypt()."""
        return self._fernet.decrypt(token.encode()).decode()


def normalise_id(text: str) -> str:
    """Fold full-width characters, drop spaces and dashes, upper-case the final x."""
    text = unicodedata.normalize("NFKC", text or "")
    return "".join(ch for ch in text if not ch.isspace() and ch != "-").upper()


def validate_id(text: str) -> str:
    """Return the normalised ID number, or raise InvalidIdNumber saying what is wrong."""
    number = normalise_id(text)
    if len(number) != 18:
        raise InvalidIdNumber("length")
    if not (number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")):
        raise InvalidIdNumber("format")
    try:
        ric.get_birth_date(number)
    except ValidationError:
        raise InvalidIdNumber("birth_date") from None
    try:
        ric.validate(number)
    except InvalidChecksum:
        raise InvalidIdNumber("checksum") from None
    except ValidationError:
        # python-stdnum also refuses a region code created after the birth year, but numbers are
        # issued where people are registered: a Tianhe resident born in 1949 holds 440106….
        if not _region_known(number):
            raise InvalidIdNumber("region") from None
    return number


def _cache_region_lookups() -> None:
    """python-stdnum finds a region code by scanning some 4,000 prefixes, about 1 ms a number
    (ric.validate and _region_known both ask): remember the answers (a few thousand codes exist),
    so that importing a million first-dose rows takes minutes, not hours. Same answers."""
    from stdnum import numdb

    regions = numdb.get("cn/loc")  # the one instance ric's look-ups use too
    if not hasattr(regions.info, "cache_info"):
        regions.info = functools.lru_cache(maxsize=8192)(regions.info)


_cache_region_lookups()


def _region_known(number: str) -> bool:
    """Whether the first six digits are a region code that exists or existed."""
    from stdnum import numdb

    return any(props for _, props in numdb.get("cn/loc").info(number[:6]))


def birth_date(id_number: str) -> dt.date:
    """Return the birth date written in a valid ID number."""
    return ric.get_birth_date(id_number)


def normalise_phone(text: str) -> str:
    """Return an 11-digit mainland mobile number, or raise InvalidPhone."""
    text = unicodedata.normalize("NFKC", text or "").strip()
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
    """440106199001011234 -> 440106********123X style: region and last four kept."""
    return id_number[:6] + "*" * 8 + id_number[-4:]


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
