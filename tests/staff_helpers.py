"""Staff accounts and sign-in for tests."""
from __future__ import annotations

import contextlib

import httpx

from models.staff.accounts import create_user
from tests.pages import get_page, post_form

PASSWORD = "correct-horse-battery"


async def make_staff(role: str, username: str | None = None, **kw):
    return await create_user(role=role, username=username or f"{role}-user", password=PASSWORD, **kw)


async def sign_in(client, username: str, password: str = PASSWORD, status: int = 303):
    page = await get_page(client, "/staff")
    return await post_form(client, "/staff/login", page,
                           {"username": username, "password": password}, status=status)


@contextlib.asynccontextmanager
async def browser_at(app, address: str):
    """Another browser, at another client address, on the same app."""
    transport = httpx.ASGITransport(app=app, client=(address, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
