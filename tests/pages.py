"""Helpers to fetch and check pages the way a browser would see them."""
from __future__ import annotations

from collections import Counter

from bs4 import BeautifulSoup


def parse(response) -> BeautifulSoup:
    """Parse an HTML response and check what every page must have."""
    assert response.headers["content-type"].startswith("text/html"), response.headers["content-type"]
    soup = BeautifulSoup(response.text, "html.parser")
    assert soup.title and soup.title.string.strip(), "page has no title"
    ids = Counter(el["id"] for el in soup.find_all(id=True))
    dupes = [i for i, n in ids.items() if n > 1]
    assert not dupes, f"duplicate ids: {dupes}"
    for form in soup.find_all("form"):
        assert form.get("method") == "post" or form.get("method") == "get", form
        assert form.get("action", "").startswith("/"), form
        if form["method"] == "post":
            token = form.find("input", attrs={"name": "csrftoken"})
            assert token and token.get("value"), f"POST form without a CSRF token: {form.get('action')}"
    return soup


def text(soup: BeautifulSoup) -> str:
    return " ".join(soup.get_text(" ").split())


def csrf(soup: BeautifulSoup) -> str:
    field = soup.find("input", attrs={"name": "csrftoken"})
    return field["value"]


async def get_page(client, url: str, status: int = 200):
    response = await client.get(url)
    assert response.status_code == status, (url, response.status_code, response.text[:500])
    return parse(response)


async def post_form(client, url: str, soup: BeautifulSoup, data: dict, status: int = 303):
    """POST a form found on `soup`, CSRF token included, and check the status."""
    response = await client.post(url, data={"csrftoken": csrf(soup), **data})
    assert response.status_code == status, (url, response.status_code, response.text[:800])
    return response
