"""Staff accounts in the admin console: the list, creating one (each mistake said in Chinese),
a new password (old sessions end), disabling (signed out at once), re-enabling, and no admin
disabling their own account. Every action is in the audit trail, never with a password."""
from __future__ import annotations

import pytest

from models.db.tables import AuditEntry, StaffSession, StaffUser
from tests.factories import make_site
from tests.pages import get_page, parse, post_form, text
from tests.staff_helpers import PASSWORD, browser_at, make_staff, sign_in

NEW_PASSWORD = "a-brand-new-password"


@pytest.fixture
async def world(db):
    await make_site("TH01", "五山街", name="五山街社区卫生服务中心")
    boss = await make_staff("admin", "boss")
    door = await make_staff("site", "door1", site_code="TH01")
    agent = await make_staff("callcentre", "agent1")
    return dict(boss=boss, door=door, agent=agent)


async def create(client, status: int = 303, **fields):
    page = await get_page(client, "/admin/accounts")
    data = {"role": "callcentre", "username": "newbie", "site": "", "subdistrict": "",
            "password": NEW_PASSWORD, "password2": NEW_PASSWORD, **fields}
    return await post_form(client, "/admin/accounts/create", page, data, status=status)


async def test_the_list_shows_each_account_its_place_state_and_last_sign_in(client, world):
    await sign_in(client, "boss")
    page = await get_page(client, "/admin/accounts")
    rows = {row.find("td").get_text(strip=True): text(row) for row in page.find("tbody").find_all("tr")}
    assert set(rows) == {"boss", "door1", "agent1"}
    assert "五山街社区卫生服务中心" in rows["door1"] and "接种点工作人员" in rows["door1"]
    assert "从未登录" in rows["door1"] and "从未登录" not in rows["boss"]
    assert all("可用" in row for row in rows.values())
    assert page.find("a", href=f"/admin/accounts/account?u={world['door'].id}")


@pytest.mark.parametrize("fields, says", [
    ({"password": "short", "password2": "short"}, "密码至少要10个字符。"),
    ({"password2": "something-else-entirely"}, "两次输入的密码不一致"),
    ({"username": "No Spaces!"}, "用户名须为3至40个字符"),
    ({"username": "door1"}, "这个用户名已有人使用"),
    ({"role": "site"}, "接种点工作人员的账号须选择所在接种点"),
    ({"role": "site", "site": "XX99"}, "没有这个接种点"),
    ({"role": "subdistrict", "subdistrict": "火星街"}, "须选择天河区的一个街道"),
    ({"role": "boss"}, "请选择角色"),
])
async def test_creating_an_account_says_what_is_wrong_in_chinese(client, world, fields, says):
    await sign_in(client, "boss")
    response = await create(client, status=422, **fields)
    page = parse(response)
    assert says in text(page.find(class_="error-summary"))
    assert page.find("input", id="new-username")["value"] == fields.get("username", "newbie")
    assert not await StaffUser.filter(username="newbie").exists()
    assert not await AuditEntry.filter(action="create_account").exists()


async def test_a_created_account_can_sign_in_and_is_audited(client, world):
    await sign_in(client, "boss")
    await create(client, role="subdistrict", username="Street1", subdistrict="龙洞街", site="TH01")
    user = await StaffUser.get(username="street1")
    assert (user.role, user.subdistrict, user.site_id) == ("subdistrict", "龙洞街", None)
    assert "已创建账号 street1" in text(await get_page(client, "/admin/accounts"))
    entry = await AuditEntry.get(action="create_account")
    assert entry.username == "boss" and entry.detail == "subdistrict street1 subdistrict=龙洞街"
    assert NEW_PASSWORD not in entry.detail
    async with browser_at(client.app, "198.51.100.50") as theirs:
        response = await sign_in(theirs, "street1", NEW_PASSWORD)
        assert response.headers["location"] == "/group"  # a sub-district account starts at group booking


async def test_a_new_password_ends_the_old_sessions_and_the_new_one_works(client, world):
    async with browser_at(client.app, "198.51.100.60") as door:
        await sign_in(door, "door1")
        assert (await door.get("/staff/site")).status_code == 200
        await sign_in(client, "boss")
        page = await get_page(client, f"/admin/accounts/account?u={world['door'].id}")
        mismatch = await post_form(client, "/admin/accounts/password", page,
                                   {"u": world["door"].id, "password": NEW_PASSWORD, "password2": "x"},
                                   status=422)
        assert "两次输入的密码不一致" in text(parse(mismatch))
        short = await post_form(client, "/admin/accounts/password", page,
                                {"u": world["door"].id, "password": "short", "password2": "short"},
                                status=422)
        assert "密码至少要10个字符" in text(parse(short))
        assert (await door.get("/staff/site")).status_code == 200  # nothing changed yet

        await post_form(client, "/admin/accounts/password", page,
                        {"u": world["door"].id, "password": NEW_PASSWORD, "password2": NEW_PASSWORD})
        response = await door.get("/staff/site")
        assert response.status_code == 303 and response.headers["location"].startswith("/staff?next=")
        await sign_in(door, "door1", PASSWORD, status=422)
        await sign_in(door, "door1", NEW_PASSWORD)
        assert (await door.get("/staff/site")).status_code == 200
    entry = await AuditEntry.get(action="reset_password")
    assert entry.detail == "door1, all sessions ended" and NEW_PASSWORD not in entry.detail
    assert (await get_page(client, "/admin")).find(string=lambda s: s and "重设密码" in s)  # named (issue 22)


async def test_a_disabled_account_is_signed_out_at_once_and_re_enabling_lets_it_back(client, world):
    async with browser_at(client.app, "198.51.100.70") as agent:
        await sign_in(agent, "agent1")
        assert (await agent.get("/staff/calls")).status_code == 200
        await sign_in(client, "boss")
        page = await get_page(client, f"/admin/accounts/account?u={world['agent'].id}")
        await post_form(client, "/admin/accounts/disable", page, {"u": world["agent"].id})
        assert "已停用 agent1" in text(await get_page(client, f"/admin/accounts/account?u={world['agent'].id}"))

        response = await agent.get("/staff/calls")  # the very next request
        assert response.status_code == 303 and response.headers["location"] == "/staff?next=/staff/calls"
        assert not await StaffSession.filter(user_id=world["agent"].id, revoked=False).exists()
        await sign_in(agent, "agent1", status=422)
        assert "已停用" in text(await get_page(client, "/admin/accounts"))

        page = await get_page(client, f"/admin/accounts/account?u={world['agent'].id}")
        await post_form(client, "/admin/accounts/enable", page, {"u": world["agent"].id})
        await sign_in(agent, "agent1")
        assert (await agent.get("/staff/calls")).status_code == 200
    actions = await AuditEntry.filter(username="boss").order_by("id").values_list("action", "detail")
    assert ("disable_account", "agent1, all sessions ended") in actions
    assert ("enable_account", "agent1") in actions


async def test_an_admin_cannot_disable_their_own_account(client, world):
    await sign_in(client, "boss")
    page = await get_page(client, f"/admin/accounts/account?u={world['boss'].id}")
    assert not page.find("form", action="/admin/accounts/disable")
    assert "不能在这里停用" in text(page)
    response = await post_form(client, "/admin/accounts/disable", page, {"u": world["boss"].id}, status=422)
    assert "不能停用您自己正在使用的账号" in text(parse(response))
    assert (await StaffUser.get(id=world["boss"].id)).active
    assert (await client.get("/admin/accounts")).status_code == 200  # still signed in
    assert not await AuditEntry.filter(action="disable_account").exists()


async def test_an_unknown_account_is_a_plain_not_found(client, world):
    await sign_in(client, "boss")
    await get_page(client, "/admin/accounts/account?u=9999", status=404)
    page = await get_page(client, "/admin/accounts")
    await post_form(client, "/admin/accounts/disable", page, {"u": "9999"}, status=404)
