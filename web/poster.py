"""The A4 poster sites and residents' committees print: the QR code of the public way in and the
three ways to book. One SVG, drawn from one template, is both what /poster shows (inline, so
the page prints it) and what `python run.py poster > poster.svg` writes.
"""
from __future__ import annotations

import segno
from markupsafe import Markup

from . import i18n
from .templating import environment

QR_X, QR_Y, QR_SIZE = 50, 62, 110  # millimetres on the A4 page (210 x 297)


def qr_svg(address: str) -> str:
    """The QR code of `address` as an SVG element placed on the poster; the quiet zone of four
    modules is white, so it scans on coloured paper too."""
    qr = segno.make_qr(address, error="m")
    inner = qr.svg_inline(border=4, dark="#000", light="#fff", omitsize=True,
                          svgclass="qr", lineclass=None, title=address)
    return inner.replace("<svg ", f'<svg x="{QR_X}" y="{QR_Y}" width="{QR_SIZE}" '
                                  f'height="{QR_SIZE}" shape-rendering="crispEdges" ', 1)


def poster_svg(address: str, lang: str = "zh", *, standalone: bool = False) -> Markup:
    """The poster as an SVG document (standalone: with the XML declaration, for a file)."""
    i18n.set_language(lang)
    return Markup(environment().get_template("pages/entry/poster_a4.svg.html").render(
        address=address, qr=Markup(qr_svg(address)), standalone=standalone,
        svg_lang="zh-Hans" if lang == "zh" else "en",
    ))
