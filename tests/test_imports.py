"""CSV imports of sites and first doses: line-numbered refusals, good rows kept, re-import is a no-op."""
from __future__ import annotations

import datetime as dt

import pytest

from models.db.tables import Resident, Site
from models.operations.imports import ImportFileError, import_first_doses, import_sites
from models.people import pii
from tests.conftest import TODAY, VAULT
from tests.factories import make_site
from tests.pii_scan import find_personal_numbers

HEADER = "name,id_number,phone,first_dose_date,site_code,vaccine,subdistrict"


def ids(n: int, born=dt.date(1980, 5, 17), region="440106") -> list[str]:
    return [pii.build_id_number(region, born, 100 + i) for i in range(n)]


def bad_check(number: str) -> str:
    """The same number with a wrong check character."""
    return number[:17] + ("0" if number[17] != "0" else "1")


def write(tmp_path, text: str, *, bom: bool = False, name: str = "f.csv"):
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


async def test_bad_rows_are_reported_by_line_and_reason_and_good_rows_kept(db, tmp_path):
    await make_site("TH01")
    a, b, c, d = ids(4)
    text = "\n".join([
        "Name, ID_Number ,PHONE,first_dose_date,site_code,vaccine,subdistrict",   # 1 (BOM, odd header)
        f"张三明,{a},13812345678,2021-06-01,TH01,北京生物,五山街",                    # 2 good
        "",                                                                       # 3 blank
        " , , ,,, ,",                                                             # 4 only commas
        f"李四华,{bad_check(b)},13812345679,2021-06-01,TH01,,",                     # 5
        f"王五芳,{c},13812345670,2021-02-30,TH01,,",                                # 6
        f"赵六军,{d},13812345671,2021-06-01,X01,,",                                 # 7
        f"陈七英,{pii.build_id_number('440106', dt.date(1990, 1, 1), 7)},"
        "138 1234 5672,2021/6/2,TH01,科兴,",                                         # 8 good
        f"刘八妹,{pii.build_id_number('440106', dt.date(1990, 1, 2), 8)},13812345673,2021-08-01,TH01,,",  # 9
        f"黄九,{pii.build_id_number('440106', dt.date(1990, 1, 3), 9)},02012345678,2021-06-01,TH01,,",  # 10
        f"张三明,{a},13812345678,2021-06-01,TH01,北京生物,五山街",                    # 11 duplicate of 2
        "周十全,440106198002301234,13812345674,2021-06-01,TH01,,",                  # 12 Feb 30th born
        f"吴,{pii.build_id_number('440106', dt.date(1990, 1, 4), 10)},13812345675,2021-06-01,TH01,,天河",  # 13
        "",
    ])
    result = await import_first_doses(VAULT, write(tmp_path, text, bom=True), today=TODAY)

    assert (result.created, result.updated, result.unchanged) == (2, 0, 0)
    reasons = {e.line: e.reason for e in result.errors}
    assert reasons == {
        5: "id_number check character is wrong",
        6: "first_dose_date 2021-02-30 is not a date (YYYY-MM-DD)",
        7: "unknown site code X01",
        9: "first_dose_date 2021-08-01 is in the future",
        10: "phone is not a mainland mobile number (11 digits starting with 1)",
        11: f"id_number {pii.mask_id(a)} appears again (first on line 2)",
        12: "id_number birth date is not a real date",
        13: "subdistrict 天河 is not one of Tianhe's 21 sub-districts",
    }
    assert str(result.errors[0]) == "line 5: id_number check character is wrong"
    assert result.rejected == 8
    kept = await Resident.all().order_by("id")
    assert [r.name for r in kept] == ["张三明", "陈七英"]
    assert kept[1].first_dose_date == dt.date(2021, 6, 2) and kept[1].phone_masked == "138****5672"
    assert kept[1].subdistrict == "五山街"  # empty: the first-dose site's


async def test_reimporting_the_same_file_changes_nothing(db, tmp_path):
    await make_site("TH01")
    a, b = ids(2)
    path = write(tmp_path, "\n".join([
        HEADER,
        f"张三明,{a},13812345678,2021-06-01,TH01,北京生物,五山街",
        f"李四华,{b},13812345679,2021-06-03,TH01,,",
        f"王五芳,{bad_check(a)},13812345670,2021-06-01,TH01,,",
    ]))
    first = await import_first_doses(VAULT, path, today=TODAY)
    before = [(r.id, r.updated_at) for r in await Resident.all().order_by("id")]
    again = await import_first_doses(VAULT, path, today=TODAY)
    assert (first.created, first.rejected) == (2, 1)
    assert (again.created, again.updated, again.unchanged, again.rejected) == (0, 0, 2, 1)
    assert [(r.id, r.updated_at) for r in await Resident.all().order_by("id")] == before


async def test_a_changed_phone_updates_the_record(db, tmp_path):
    await make_site("TH01")
    (a,) = ids(1)
    await import_first_doses(VAULT, write(tmp_path, f"{HEADER}\n张三明,{a},13812345678,2021-06-01,TH01,,"),
                             today=TODAY)
    result = await import_first_doses(
        VAULT, write(tmp_path, f"{HEADER}\n张三明,{a},13900001111,2021-06-01,TH01,,", name="g.csv"),
        today=TODAY)
    assert (result.created, result.updated) == (0, 1)
    resident = await Resident.get(id_hash=VAULT.keyed_hash(a))
    assert VAULT.decrypt(resident.phone_cipher) == "13900001111"


async def _imported() -> list[tuple]:
    """Every record as the import left it, its ciphers decrypted (each encryption differs)."""
    return [(r.name, VAULT.decrypt(r.id_cipher), r.id_hash, r.id_masked, r.birth_year,
             VAULT.decrypt(r.phone_cipher), r.phone_hash, r.phone_masked, r.first_dose_date,
             r.first_site_id, r.vaccine, r.subdistrict, r.invited_at, r.lang)
            for r in await Resident.all().order_by("id_hash")]


async def test_the_command_lines_worker_process_imports_exactly_what_the_server_does(
        db, tmp_path, monkeypatch):
    """import_first_doses(command_line=True) checks, hashes and encrypts in a worker process, in
    other batches: the same records, the same refused lines and reasons, the same counts, and a
    re-import (which the workers stop encrypting ahead for) changes nothing but a changed phone."""
    from models.db.tables import ImportReject
    from models.operations.imports import pipeline, runs

    monkeypatch.setattr(runs, "BATCH", 7)  # batches end mid-file: repeats cross them
    monkeypatch.setattr(pipeline, "COMMAND_LINE_BATCH", 5)
    await make_site("TH01")
    await make_site("TH02", subdistrict="员村街")
    numbers = ids(30)
    lines = [HEADER]
    for n, number in enumerate(numbers):
        site = ("TH01", "TH02", "X9")[n % 3] if n % 7 else "TH01"
        day = "2021-02-30" if n == 11 else f"2021-06-{1 + n % 28:02d}"
        phone = "02012345678" if n == 13 else f"1381234{n:04d}"
        shown = number if n % 5 else f"{number[:6]} {number[6:]}".translate(
            str.maketrans("0123456789", "０１２３４５６７８９"))
        lines.append(f"人{n},{bad_check(number) if n == 17 else shown},{phone},{day},{site},"
                     f"{'科兴' if n % 2 else ''},{'' if n % 4 else '五山街'}")
        if n in (3, 20):
            lines.append("")
        if n in (4, 12, 25):  # again, later in the file (on a line in another batch)
            lines.append(f"又{n},{number},13900000000,2021-06-01,TH02,,")
    path = write(tmp_path, "\n".join(lines) + "\n", bom=True)

    async def one_way(**how) -> tuple:
        runs = []
        result = await import_first_doses(VAULT, path, today=TODAY, on_reject=runs.append, **how)
        refused = [(e.line, e.reason) for e in result.errors]
        assert [(e.line, e.reason) for e in runs] == refused  # on_reject: each, in line order
        stored = sorted((r.line, r.reason) for r in await ImportReject.filter(run_id=result.run_id))
        assert stored == [(e.line, e.codes) for e in result.errors]  # kept as codes (issue 22)
        return (result.created, result.updated, result.unchanged, result.rejected, result.rows,
                result.total), refused, await _imported()

    in_server = await one_way()
    assert in_server[0] == (20, 0, 0, 13, 33, 33) and in_server[1]
    assert any("appears again (first on line" in reason for _, reason in in_server[1])
    again = await one_way()
    await Resident.all().delete()
    await ImportReject.all().delete()
    command_line = await one_way(command_line=True)
    assert command_line == in_server
    # Re-imported on the command line: nothing changes (the workers soon stop encrypting ahead).
    assert await one_way(command_line=True) == again
    assert again[0] == (0, 0, 20, 13, 33, 33)
    # One phone changed: one record updated, its new number encrypted as the server does.
    changed = path.read_text(encoding="utf-8-sig").replace("13812340001,", "13812349999,")
    path.write_text(changed, encoding="utf-8")
    (counts, _, records) = await one_way(command_line=True)
    assert counts == (0, 1, 19, 13, 33, 33)
    assert sorted(r[5] for r in records) == sorted(
        "13812349999" if r[5] == "13812340001" else r[5] for r in command_line[2])


async def test_a_missing_column_refuses_the_whole_file(db, tmp_path):
    await make_site("TH01")
    (a,) = ids(1)
    path = write(tmp_path, f"name,id_number,phone,site_code\n张三明,{a},13812345678,TH01\n")
    with pytest.raises(ImportFileError, match="missing column.*first_dose_date"):
        await import_first_doses(VAULT, path, today=TODAY)
    assert await Resident.all().count() == 0


async def test_a_missing_or_empty_file_is_a_whole_file_error(db, tmp_path):
    with pytest.raises(ImportFileError, match="no such file"):
        await import_sites(tmp_path / "missing.csv")
    with pytest.raises(ImportFileError, match="empty"):
        await import_sites(write(tmp_path, "\n , ,\n", bom=True))


async def test_a_file_that_is_not_utf8_is_refused_before_anything_is_written(db, tmp_path):
    await make_site("TH01")
    a, b = ids(2)
    path = tmp_path / "gbk.csv"
    path.write_bytes(f"{HEADER}\nabc,{a},13812345678,2021-06-01,TH01,,\n张三,{b},13812345679,"
                     "2021-06-01,TH01,,\n".encode("gbk"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        await import_first_doses(VAULT, path, today=TODAY)
    assert await Resident.all().count() == 0


async def test_sites_are_upserted_and_bad_ones_reported(db, tmp_path):
    text = "\n".join([
        "code,name,subdistrict,address,phone",
        "TH01,五山街社区卫生服务中心,五山街,天河区五山路371号,020-85211301",     # 2
        'TH02,石牌街社区卫生服务中心,石牌,"天河区石牌东路40号',                  # 3 (address runs
        '（近岗顶）",020-85211303',                                            # 4  over two lines)
        "TH03,某卫生站,越秀街,某路1号,",                                         # 5
        "TH01,重复,五山街,天河区五山路1号,",                                      # 6
        ",无代码,五山街,地址,",                                                  # 7
        "TH04,龙洞街社区卫生服务中心,龙洞街,,",                                   # 8
    ])
    path = write(tmp_path, text, bom=True)
    result = await import_sites(path)
    assert (result.created, result.rejected) == (2, 4)
    assert [str(e) for e in result.errors] == [
        "line 5: subdistrict 越秀街 is not one of Tianhe's 21 sub-districts",
        "line 6: site code TH01 appears again (first on line 2)",
        "line 7: code is empty",
        "line 8: address is empty",
    ]
    th02 = await Site.get(code="TH02")
    assert th02.subdistrict == "石牌街" and th02.address == "天河区石牌东路40号\n（近岗顶）"
    again = await import_sites(path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    changed = await import_sites(write(tmp_path, "code,name,subdistrict,address\n"
                                       "TH01,五山街社区卫生服务中心,五山街,天河区五山路1号\n", name="g.csv"))
    assert (changed.updated, changed.unchanged) == (1, 0)
    assert (await Site.get(code="TH01")).phone == ""


async def test_refusals_never_quote_a_full_id_number_or_phone(db, tmp_path):
    await make_site("TH01")
    a, b, c = ids(3)
    text = "\n".join([
        HEADER,
        f"张三明,{a},13812345678,{b},TH01,,",             # an ID number in the date column
        f"李四华,{b},{c},2021-06-01,13812345678,,",       # an ID as phone, a phone as site code
        f"王五芳,{c},13812345670,2021-06-01,TH01,,{a}",   # an ID as sub-district
        f"赵六军,{a[:17]},13812345671,2021-06-01,TH01,,",   # 17 characters
        f"陈七英,{a},13812345672,2021-06-01,TH01,,",       # a duplicate (of line 2) quotes it masked
    ])
    result = await import_first_doses(VAULT, write(tmp_path, text), today=TODAY)
    printed = "\n".join(str(e) for e in result.errors)
    assert result.rejected == 5
    assert "line 5: id_number must be 18 characters, not 17" in printed
    assert find_personal_numbers(printed) == []
    assert pii.mask_id(a) in printed


def _reference_id(text: str) -> str:
    """validate_id() as python-stdnum answers it, step by step (the import's fast path must agree)."""
    import unicodedata

    from stdnum.cn import ric
    from stdnum.exceptions import InvalidChecksum, ValidationError

    number = "".join(ch for ch in unicodedata.normalize("NFKC", text) if not ch.isspace() and ch != "-").upper()
    if len(number) != 18:
        raise pii.InvalidIdNumber("length")
    if not (number[:17].isdigit() and (number[17].isdigit() or number[17] == "X")):
        raise pii.InvalidIdNumber("format")
    try:
        ric.get_birth_date(number)
    except ValidationError:
        raise pii.InvalidIdNumber("birth_date") from None
    try:
        ric.validate(number)
    except InvalidChecksum:
        raise pii.InvalidIdNumber("checksum") from None
    except ValidationError:
        if not pii._region_known(number):
            raise pii.InvalidIdNumber("region") from None
    return number


def _reference_phone(text: str) -> str:
    import unicodedata

    import phonenumbers

    text = unicodedata.normalize("NFKC", text).strip()
    try:
        parsed = phonenumbers.parse(text, "CN")
    except phonenumbers.NumberParseException:
        raise pii.InvalidPhone(text) from None
    national = str(parsed.national_number)
    if (parsed.country_code != 86 or len(national) != 11
            or phonenumbers.number_type(parsed) != phonenumbers.PhoneNumberType.MOBILE):
        raise pii.InvalidPhone(text)
    return national


def _answer(check, text):
    try:
        return check(text)
    except pii.InvalidIdNumber as exc:
        return f"invalid {exc.reason}"
    except pii.InvalidPhone:
        return "invalid phone"


def test_the_fast_id_and_phone_checks_answer_as_python_stdnum_and_libphonenumber_do():
    import random

    from stdnum.cn import ric

    rng = random.Random(14)
    regions = ["440106", "440104", "440111", "430102", "110101", "110103", "320000", "999999", "440100"]
    for _ in range(3000):
        body = (f"{rng.choice(regions)}{rng.randrange(1900, 2030):04d}{rng.randrange(0, 14):02d}"
                f"{rng.randrange(0, 33):02d}{rng.randrange(1000):03d}")
        number = body + (ric.calc_check_digit(body + "0") if rng.random() < 0.7 else rng.choice("0123456789Xx"))
        text = rng.choice([number, number.lower(), f"{number[:6]} {number[6:14]}-{number[14:]}",
                           number.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
                           number[:rng.randrange(18)], f" {number}\t", number[:9] + "a" + number[10:]])
        assert _answer(pii.validate_id, text) == _answer(_reference_id, text), text
        phone = rng.choice([f"1{rng.randrange(10**10):010d}", f"+861{rng.randrange(10**10):010d}",
                            f" 1{rng.randrange(10**10):010d} ", f"1{rng.randrange(10**9):09d}",
                            f"1{rng.randrange(10**10):010d}".translate(str.maketrans("0123456789", "０１２３４５６７８９")),
                            f"0{rng.randrange(10**10):010d}", "138-1234-5678", "12345678901"])
        assert _answer(pii.normalise_phone, phone) == _answer(_reference_phone, phone), phone
    valid = pii.build_id_number("440106", dt.date(1949, 10, 1), 7)  # before Tianhe's code existed
    assert pii.validate_id(valid) == valid and pii.birth_date(valid) == dt.date(1949, 10, 1)


def test_an_unknown_county_in_a_known_province_is_refused_not_a_crash():
    # python-stdnum raises KeyError (not a ValidationError) for 110999: a province's code with a
    # county it does not know. It used to escape validate_id() (a 500 on the resident's page).
    number = pii.build_id_number("110999", dt.date(1990, 1, 1), 123)
    with pytest.raises(pii.InvalidIdNumber) as refused:
        pii.validate_id(number)
    assert refused.value.reason == "region"


def test_the_vaults_keyed_hash_is_the_standard_hmac_and_encryption_round_trips():
    import hashlib
    import hmac

    for value in ["440106198001010011", "13812345678", "", "x" * 15, "x" * 16, "张三明" * 5, "y" * 63, "z" * 300]:
        assert VAULT.keyed_hash(value) == hmac.new(VAULT._hmac_key, value.encode(), hashlib.sha256).hexdigest()
        assert VAULT.decrypt(VAULT.encrypt(value)) == value
    assert VAULT.encrypt("13812345678") != VAULT.encrypt("13812345678")  # a random IV each time
