"""Staff accounts: create, reset a password, disable and re-enable.

A disabled account's sessions end at once (its next request lands on the sign-in page); so do
all of a person's sessions when the admin gives them a new password. An admin cannot disable
their own account. Every action is audited (never with a password).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Route

from models.db.tables import StaffUser
from models.rules.tianhe import SUBDISTRICTS
from models.staff import accounts, sessions
from models.staff.accounts import StaffError
from ...http import parse_id, parse_text, see_other, url_for
from ...staff_auth import ADMIN, current_staff, record, staff_only
from ...templating import render

FLASH = "accounts_flash"  # what the page after a 303 says was done: {"done": ..., "username": ...}
PASSWORD_MAX = 200  # as the sign-in form reads it


def _password(form, name: str) -> str:
    return parse_text(form.get(name), PASSWORD_MAX)


def _scope(user: StaffUser) -> str:
    """Where the account works, for the audit trail."""
    if user.role == "site" and user.site:
        return f" site={user.site.code}"
    if user.role in ("subdistrict", "clinic") and user.subdistrict:
        return f" subdistrict={user.subdistrict}"
    if user.role == "clinic" and user.district_wide:
        return " district-wide"
    return ""


async def _list_page(request: Request, *, values: dict | None = None, error: str = "",
                     status: int = 200):
    """The list of accounts and the form to create one."""
    return render(request, "pages/admin/accounts.html", {
        "staff": await current_staff(request), "accounts": await accounts.all_accounts(),
        "last": await sessions.last_sign_ins(), "sites": await accounts.site_codes(),
        "subdistricts": SUBDISTRICTS, "roles": StaffUser.ROLES, "values": values or {},
        "error": error, "flash": request.session.pop(FLASH, None) if status == 200 else None,
    }, status=status)


async def _account_page(request: Request, account: StaffUser, *, error: str = "", status: int = 200):
    me = await current_staff(request)
    last = (await sessions.last_sign_ins()).get(account.id)
    return render(request, "pages/admin/accounts_edit.html", {
        "staff": me, "account": account, "last": last, "is_me": account.id == me.id,
        "error": error, "flash": request.session.pop(FLASH, None) if status == 200 else None,
    }, status=status)


async def _missing(request: Request):
    return render(request, "pages/admin/accounts_missing.html",
                  {"staff": await current_staff(request)}, status=404)


def _done(request: Request, done: str, account: StaffUser, route: str = "admin_account"):
    request.session[FLASH] = {"done": done, "username": account.username}
    if route == "admin_account":
        return see_other(url_for(request, route, u=account.id))
    return see_other(url_for(request, route))


@staff_only(*ADMIN)
async def admin_accounts(request: Request):
    """GET /admin/accounts: every account (role, where, active, last sign-in) and a form to add one."""
    return await _list_page(request)


@staff_only(*ADMIN)
async def admin_account_create(request: Request):
    """POST /admin/accounts/create: role, username, site or sub-district (a clinic: its
    sub-district, or "the whole district" ticked on purpose), the password twice."""
    form = await request.form()
    values = {"role": parse_text(form.get("role"), 12), "username": parse_text(form.get("username"), 40),
              "site": parse_text(form.get("site"), 32), "subdistrict": parse_text(form.get("subdistrict"), 50),
              "district_wide": parse_text(form.get("district_wide"), 1) == "1"}
    password = _password(form, "password")
    if password != _password(form, "password2"):
        return await _list_page(request, values=values, error="password_mismatch", status=422)
    try:
        user = await accounts.create_user(
            role=values["role"], username=values["username"], password=password,
            site_code=values["site"] if values["role"] == "site" else None,
            subdistrict=values["subdistrict"] if values["role"] in ("subdistrict", "clinic") else None,
            district_wide=values["district_wide"] and values["role"] == "clinic")
    except StaffError as exc:
        return await _list_page(request, values=values, error=exc.reason or "invalid", status=422)
    await record(request, "create_account", detail=f"{user.role} {user.username}{_scope(user)}")
    return _done(request, "created", user, "admin_accounts")


@staff_only(*ADMIN)
async def admin_account(request: Request):
    """GET /admin/accounts/account?u=<id>: one account; new password, disable or re-enable."""
    account = await accounts.account_by_id(parse_id(request.query_params.get("u")))
    if account is None:
        return await _missing(request)
    return await _account_page(request, account)


async def _posted_account(request: Request):
    form = await request.form()
    return form, await accounts.account_by_id(parse_id(form.get("u")))


@staff_only(*ADMIN)
async def admin_account_password(request: Request):
    """POST /admin/accounts/password: the admin types a new password (twice); every session of
    the account ends."""
    form, account = await _posted_account(request)
    if account is None:
        return await _missing(request)
    password = _password(form, "password")
    if password != _password(form, "password2"):
        return await _account_page(request, account, error="password_mismatch", status=422)
    try:
        await sessions.reset_password(account.id, password)
    except StaffError as exc:
        return await _account_page(request, account, error=exc.reason or "invalid", status=422)
    await record(request, "reset_password", detail=f"{account.username}, all sessions ended")
    return _done(request, "password", account)


@staff_only(*ADMIN)
async def admin_account_disable(request: Request):
    """POST /admin/accounts/disable: the account can no longer sign in; its sessions end now."""
    form, account = await _posted_account(request)
    if account is None:
        return await _missing(request)
    if account.id == (await current_staff(request)).id:
        return await _account_page(request, account, error="self", status=422)
    await sessions.disable_user(account.id)
    await record(request, "disable_account", detail=f"{account.username}, all sessions ended")
    return _done(request, "disabled", account)


@staff_only(*ADMIN)
async def admin_account_enable(request: Request):
    """POST /admin/accounts/enable: the account may sign in again (with its password)."""
    form, account = await _posted_account(request)
    if account is None:
        return await _missing(request)
    await sessions.enable_user(account.id)
    await record(request, "enable_account", detail=account.username)
    return _done(request, "enabled", account)


ROUTES = [
    Route("/admin/accounts", admin_accounts, name="admin_accounts"),
    Route("/admin/accounts/create", admin_account_create, methods=["POST"], name="admin_account_create"),
    Route("/admin/accounts/account", admin_account, name="admin_account"),
    Route("/admin/accounts/password", admin_account_password, methods=["POST"],
          name="admin_account_password"),
    Route("/admin/accounts/disable", admin_account_disable, methods=["POST"], name="admin_account_disable"),
    Route("/admin/accounts/enable", admin_account_enable, methods=["POST"], name="admin_account_enable"),
]
