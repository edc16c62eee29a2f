"""Rendering: a page, or its fragment when htmx asks for one, from the app's Jinja2 environment.

create_app picks the environment (`environment(debug=…)`, kept on app.state.templates): one that
caches compiled templates, or, when debugging, one that reloads a template edited on disk. Each is
built once per process and never changed after, so two apps in one process share nothing they
could overwrite."""
from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, pass_eval_context, select_autoescape
from jinja2.ext import Extension
from jinja2.lexer import Token
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

from models.booking_codes import format_code
from . import i18n
from .http import url_for

ROOT = Path(__file__).resolve().parent.parent
STATIC_DIR = ROOT / "static"
LARGE_COOKIE = "text"


def _fingerprint(name: str) -> str:
    """static/app.css -> /static/app.css?v=<hash>, so the file can be cached for a year."""
    digest = hashlib.sha256((STATIC_DIR / name).read_bytes()).hexdigest()[:10]
    return f"/static/{name}?v={digest}"


@functools.cache
def static_url(name: str) -> str:
    """The fingerprinted address of a static file (read once per process)."""
    return _fingerprint(name)


def _draw_site_choice(env: Environment, lang: str, site_id: int, name: str, address: str,
                      first_free_day, checked: bool, focus: bool) -> Markup:
    macros = env.get_template("macros/booking.html").module
    return macros.site_choice_item(site_id, name, address, first_free_day, checked, focus)


@functools.lru_cache(maxsize=8192)
def _cached_site_choice(*args) -> Markup:  # `lang` is in the key: the item is drawn in it
    return _draw_site_choice(environment(debug=False), *args)


def _site_choice(env: Environment, choice, chosen, focus) -> Markup:
    """One site of a site list (macros/booking.html: site_choice_item), drawn once for all it
    shows, in this language: a district's site page lists 100 sites, 6 ms of Jinja drawn anew.
    The debugging environment draws it every time (a macro edited on disk shows at once)."""
    site = choice.site
    args = (i18n.current_language(), site.id, site.name, site.address, choice.first_free_day,
            site.id == chosen, bool(focus) and site.id == chosen)
    return _draw_site_choice(env, *args) if env.auto_reload else _cached_site_choice(*args)


@pass_eval_context
def _gettext(eval_ctx, string: str, /, **variables) -> str:
    """`_("…")` and `{% trans %}` in one call: what jinja2.ext's new-style gettext does (the
    translation marked safe where the template autoescapes, always formatted with the
    variables), without its two extra hops through the context (`_` → `gettext` → the
    catalogue): a page calls it about twenty times."""
    rv = i18n.gettext(string)
    if eval_ctx.autoescape:
        rv = Markup(rv)
    return rv % variables


@pass_eval_context
def _translated(eval_ctx, text: str) -> str:
    """A translation folded in when the template was compiled: marked safe where the template
    autoescapes, as `_()` marks it (applied to a constant, Jinja works it out at compile time)."""
    return Markup(text) if eval_ctx.autoescape else text


class _FoldTranslations(Extension):
    """`_("…")` of a literal with nothing to fill in, translated once, when the template is
    compiled for its language (`_in_language`), instead of on every render: the token stream's
    `_ ( "…" )` becomes `( "…translated…" | _translated )`, a constant the compiler writes into
    the template's text. The same characters as `_gettext` gives at render time (a text whose
    formatting would not give them is left to it); `x._("…")` (an attribute) is left alone."""

    def filter_stream(self, stream):
        catalog = i18n.translations(self.environment.fold_language)
        tokens = list(stream)
        i = 0
        while i < len(tokens):
            folded = self._fold(catalog, tokens, i)
            if folded is None:
                yield tokens[i]
                i += 1
                continue
            line = tokens[i].lineno
            yield from (Token(line, "lparen", "("), Token(line, "string", folded),
                        Token(line, "pipe", "|"), Token(line, "name", "_translated"),
                        Token(line, "rparen", ")"))
            i += 4

    @staticmethod
    def _fold(catalog, tokens, i) -> str | None:
        if not (tokens[i].type == "name" and tokens[i].value == "_" and i + 3 < len(tokens)
                and [t.type for t in tokens[i + 1:i + 4]] == ["lparen", "string", "rparen"]
                and (i == 0 or tokens[i - 1].type != "dot")):
            return None
        text = catalog.gettext(tokens[i + 2].value)
        try:
            plain, marked = text % {}, str(Markup(text) % {})
        except (TypeError, ValueError, KeyError):
            return None
        return plain if plain == marked else None


def _in_language(env: Environment, lang: str) -> Environment:
    """The environment's twin whose templates are compiled in `lang` (_FoldTranslations), made
    once per language; an environment not made by `environment()` is used as it is."""
    twins = getattr(env, "_languages", None)
    if twins is None:
        return env
    twin = twins.get(lang)
    if twin is None:
        twin = env.overlay(extensions=[_FoldTranslations], cache_size=400)
        twin.fold_language = lang
        twins[lang] = twin
    return twin


@functools.cache
def environment(*, debug: bool = False) -> Environment:
    """The Jinja2 environment, built once per process for each mode: with `debug`, templates
    edited on disk show at once; without, none is stat()ed on every page (web/app.py picks)."""
    env = Environment(
        loader=FileSystemLoader(ROOT / "templates"),
        autoescape=select_autoescape(["html"]),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=debug,
    )
    env.install_gettext_callables(i18n.gettext, i18n.ngettext, newstyle=True)
    env.globals.update(_=_gettext, gettext=_gettext)
    env.filters.update(
        day=i18n.day_text,
        short_day=i18n.short_day_text,
        weekday=i18n.weekday_text,
        numeric_day=i18n.numeric_day_text,
        full_date=i18n.full_date_text,
        moment=i18n.datetime_text,
        clock=i18n.clock_text,
        code=format_code,
        _translated=_translated,
    )
    env.globals.update(timespan=i18n.window_text, static_url=static_url,
                       site_choice=functools.partial(_site_choice, env))
    env._languages = {}  # its twin per language: _in_language
    return env


def wants_fragment(request: Request) -> bool:
    """htmx asked for a part of the page (not a boosted navigation, not a history restore)."""
    h = request.headers
    return (
        h.get("hx-request") == "true"
        and h.get("hx-boosted") != "true"
        and h.get("hx-history-restore-request") != "true"
    )


def render(
    request: Request, page: str, context: dict | None = None, *, status: int = 200,
    fragment: str | None = None, headers: dict[str, str] | None = None,
) -> HTMLResponse:
    """Render `page`, or `fragment` instead when htmx asks for it; always Vary on HX-Request."""
    lang = i18n.choose_language(request.cookies.get(i18n.LANG_COOKIE))
    i18n.set_language(lang)
    csrf = request.scope.get("csrftoken")
    ctx = {
        "request": request,
        "lang": lang,
        "html_lang": "zh-Hans" if lang == "zh" else "en",
        "large_text": request.cookies.get(LARGE_COOKIE) == "large",
        "csrf_token": csrf() if csrf else "",
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "url": lambda name, **params: url_for(request, name, **params),
        **(context or {}),
    }
    name = fragment if fragment and wants_fragment(request) else page
    # The app's environment (create_app); an app built otherwise (a middleware's test) draws
    # from the caching one.
    env = _in_language(getattr(request.app.state, "templates", None) or environment(), lang)
    html = env.get_template(name).render(ctx)
    headers = {"Vary": "HX-Request", **(headers or {})}
    if request.headers.get("hx-boosted") == "true":
        # The XHR followed our 303s: tell htmx the address of what it shows (never a POST's).
        headers["HX-Push-Url"] = ctx["here"] if request.method == "GET" else "false"
    return HTMLResponse(html, status_code=status, headers=headers)
