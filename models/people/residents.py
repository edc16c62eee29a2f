"""First-dose records: creating and updating them from trusted, already-validated values."""
from __future__ import annotations

import datetime as dt

from ..db import reads
from ..db.tables import Booking, Resident, Site
from . import pii


async def upsert_resident(
    vault: pii.Vault, *, name: str, id_number: str, phone: str, first_dose_date: dt.date, site: Site,
    vaccine: str = "", subdistrict: str = "",
) -> tuple[Resident, str]:
    """Create or update the record for a validated ID number; return it and created/updated/unchanged."""
    id_hash = vault.keyed_hash(id_number)
    values = dict(
        name=name.strip(),
        phone_hash=vault.keyed_hash(phone),
        phone_masked=pii.mask_phone(phone),
        first_dose_date=first_dose_date,
        first_site_id=site.id,
        vaccine=vaccine.strip(),
        subdistrict=(subdistrict or site.subdistrict).strip(),
    )
    existing = await Resident.get_or_none(id_hash=id_hash)
    if existing is None:
        resident = await Resident.create(
            id_hash=id_hash,
            id_cipher=vault.encrypt(id_number),
            id_masked=pii.mask_id(id_number),
            birth_year=pii.birth_date(id_number).year,
            phone_cipher=vault.encrypt(phone),
            **values,
        )
        return resident, "created"
    changed = {k: v for k, v in values.items() if getattr(existing, k) != v}
    if not changed:
        return existing, "unchanged"
    if "phone_hash" in changed:
        changed["phone_cipher"] = vault.encrypt(phone)
    for key, value in changed.items():
        setattr(existing, key, value)
    await existing.save(update_fields=list(changed))
    return existing, "updated"


def birth_date_of(vault: pii.Vault, resident: Resident) -> dt.date:
    """Their birth date, read from the encrypted ID number: only the year is stored in clear (so
    that mask, year and region never give the number back). Rule 8 (70 or more on the day) needs
    the day; nothing of it is kept. An erased record (purge) has only the year left: 1 January."""
    try:
        return pii.birth_date(vault.decrypt(resident.id_cipher))
    except ValueError:  # erased: the cipher holds no ID number
        return dt.date(max(resident.birth_year, 1), 1, 1)


async def prefer_language(resident: Resident, lang: str) -> None:
    """Write their SMS from now on in `lang` ("en", else Chinese): the language they read the site
    in when they proved who they are."""
    lang = "en" if lang == "en" else "zh"
    if resident.lang != lang:
        await Resident.filter(id=resident.id).update(lang=lang)
        resident.lang = lang


async def is_restricted(resident: Resident, today: dt.date) -> bool:
    """Whether the resident lives in a sub-district marked medium/high risk as of `today`."""
    if not resident.subdistrict:
        return False
    return await reads.risk_marked(resident.subdistrict, today)


async def active_booking(resident_id: int) -> Booking | None:
    """Their active booking (at most one: rule 4), slot and site loaded.

    Asked on every resident page: one query written once (models/db/reads.py)."""
    return await reads.active_booking(resident_id)
