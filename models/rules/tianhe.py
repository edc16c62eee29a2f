"""Facts about Tianhe district that the data is checked against."""
from __future__ import annotations

# The district's 21 sub-districts (街道), as the notice and product.md list them.
SUBDISTRICTS: tuple[str, ...] = (
    "五山街", "员村街", "车陂街", "沙河街", "石牌街", "兴华街", "沙东街", "林和街",
    "棠下街", "猎德街", "冼村街", "天园街", "天河南街", "元岗街", "黄村街", "龙洞街",
    "长兴街", "凤凰街", "前进街", "珠吉街", "新塘街",
)

# Resident ID numbers registered in Tianhe begin with this area code.
AREA_CODE = "440106"


def normalise_subdistrict(text: str) -> str | None:
    """Return the sub-district's full name ("五山" or "五山街" -> "五山街"), or None if not in Tianhe."""
    name = "".join((text or "").split())
    if name in SUBDISTRICTS:
        return name
    if name + "街" in SUBDISTRICTS:
        return name + "街"
    return None
