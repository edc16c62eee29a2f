"""The official account's callback (/wechat): WeChat's signature, its messages, and our replies.

WeChat signs every request with SHA-1 over the sorted token, timestamp and nonce (`signature`).
In safe mode (安全模式, also 兼容模式) the message itself is AES-encrypted with the account's
EncodingAESKey, and `msg_signature` covers the encrypted body too. wechatpy does the signing,
the AES and the XML (wechatpy.crypto.WeChatCrypto, wechatpy.parser.parse_message,
wechatpy.replies.TextReply); this module decides what is accepted and what is answered.
Nothing here needs the database, so a reply comes back in milliseconds (WeChat waits 5 s).
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

import xmltodict
from wechatpy.crypto import WeChatCrypto
from wechatpy.events import BaseEvent
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException
from wechatpy.parser import parse_message
from wechatpy.replies import TextReply
from wechatpy.utils import WeChatSigner

from ..rules.guide import HOTLINE, WECHAT_ACCOUNT, WECHAT_KEYWORD

MAX_AGE_SECONDS = 5 * 60  # a request signed longer ago (or further ahead) than this is refused
NO_REPLY = "success"  # WeChat's "received, nothing to say" (it neither retries nor shows anything)
ZH_KEYWORDS = ("疫苗", "预约", "第二针")  # found anywhere in the message ("我想预约疫苗")
EN_KEYWORDS = ("guide",)  # the whole message, any case
_USER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # an OpenID or the account's own gh_… id
_ECHO = re.compile(r"^[A-Za-z0-9_-]{1,128}$")  # WeChat's echostr is a long number
_PUNCTUATION = re.compile(r"[\s\W_]+")


class Refused(Exception):
    """The request is not answered: `kind` is "signature" (403), "stale" (403) or "message" (400)."""

    def __init__(self, kind: str):
        super().__init__(kind)
        self.kind = kind


@dataclass(frozen=True)
class Account:
    """The official account's callback settings (WECHAT_TOKEN, WECHAT_APP_ID, WECHAT_AES_KEY)."""

    token: str = field(repr=False)
    app_id: str = ""
    crypto: WeChatCrypto | None = field(default=None, repr=False)  # safe mode, when a key is set

    @property
    def safe_mode(self) -> bool:
        return self.crypto is not None


def check_settings(token: str, app_id: str, aes_key: str) -> None:
    """Refuse, at start-up, an AES key WeChat could not have issued, or one without the app id."""
    if not aes_key:
        return
    if not token:
        raise ValueError("WECHAT_AES_KEY: set WECHAT_TOKEN too")
    if not app_id:
        raise ValueError("WECHAT_AES_KEY: set WECHAT_APP_ID too (safe mode checks it)")
    try:
        key = base64.b64decode(aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(aes_key) != 43 or len(key) != 32:
        raise ValueError("WECHAT_AES_KEY: the EncodingAESKey is 43 letters and digits "
                         "(copy it from the account's console)")


@lru_cache(maxsize=4)
def account(token: str, app_id: str = "", aes_key: str = "") -> Account:
    """The account for these settings (built once: the handler asks on every request)."""
    check_settings(token, app_id, aes_key)
    crypto = WeChatCrypto(token, aes_key, app_id) if aes_key else None
    return Account(token=token, app_id=app_id, crypto=crypto)


@dataclass(frozen=True)
class Links:
    """The addresses a reply gives: the public entry and the guide, in Chinese and in English."""

    entry: str
    guide: str
    entry_en: str
    guide_en: str


@dataclass(frozen=True)
class Signed:
    """What WeChat puts in the query string of every callback."""

    signature: str = ""
    timestamp: str = ""
    nonce: str = ""
    msg_signature: str = ""  # safe mode only
    encrypt_type: str = ""  # "aes" in safe and compatible mode


def _signature(*parts: str) -> str:
    signer = WeChatSigner()
    signer.add_data(*parts)
    return signer.signature


def _same(expected: str, given: str) -> bool:
    """Compared in constant time (wechatpy.utils.check_signature compares with !=)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def check(account: Account, signed: Signed, now: dt.datetime) -> None:
    """WeChat's signature over token, timestamp and nonce, and a timestamp within 5 minutes."""
    if not (signed.signature and signed.timestamp and signed.nonce) or len(signed.nonce) > 64:
        raise Refused("signature")
    if not _same(_signature(account.token, signed.timestamp, signed.nonce), signed.signature):
        raise Refused("signature")
    stamp = signed.timestamp
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise Refused("stale")
    if abs(int(stamp) - now.timestamp()) > MAX_AGE_SECONDS:
        raise Refused("stale")


def echo(account: Account, signed: Signed, echostr: str, now: dt.datetime) -> str:
    """The URL check the console does when the address is saved: echo `echostr` back."""
    check(account, signed, now)
    if not _ECHO.match(echostr or ""):
        raise Refused("message")
    return echostr


def _plain_message(account: Account, signed: Signed, body: bytes) -> str:
    """The message's XML: decrypted in safe mode (msg_signature checked), as sent otherwise."""
    if not account.safe_mode:
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("message") from None
    if signed.encrypt_type != "aes" or not signed.msg_signature:
        # Safe mode is configured: a plain message would be one whose body nobody signed.
        raise Refused("signature")
    try:
        envelope = xmltodict.parse(body)["xml"]
        encrypted = envelope["Encrypt"]
    except Exception:  # not XML, not <xml>, no <Encrypt>, a DTD
        raise Refused("message") from None
    if not isinstance(encrypted, str):
        raise Refused("message")
    expected = _signature(account.token, signed.timestamp, signed.nonce, encrypted)
    if not _same(expected, signed.msg_signature):
        raise Refused("signature")
    try:
        # wechatpy checks msg_signature again (with !=) and decrypts: AES-CBC, then the app id.
        return account.crypto.decrypt_message(envelope, signed.msg_signature, signed.timestamp,
                                              signed.nonce)
    except (InvalidSignatureException, InvalidAppIdException):  # for another account
        raise Refused("signature") from None
    except Exception:  # not base64, not whole AES blocks, bad padding, not UTF-8
        raise Refused("message") from None


def _fold(text: str) -> str:
    """The words alone: width, case, spaces and punctuation folded away ("Ｇｕｉｄｅ！" -> "guide")."""
    return _PUNCTUATION.sub("", unicodedata.normalize("NFKC", text or "")).casefold()


def reply_text(kind: str, content: str, links: Links) -> str | None:
    """What the account answers: `kind` is the message type ("text", "image"…) or "event:<event>";
    None: nothing to say (unsubscribe, menu clicks, location reports, types wechatpy does not
    know)."""
    if kind in ("event:subscribe", "event:subscribe_scan"):
        return welcome(links)
    if kind.startswith("event:") or kind == "unknown":
        return None
    words = _fold(content) if kind == "text" else ""
    if words in EN_KEYWORDS:
        return booking_en(links)
    if any(keyword in words for keyword in ZH_KEYWORDS):
        return booking_zh(links)
    return default_reply()


def booking_zh(links: Links) -> str:
    return (f"天河区新冠疫苗第二剂预约\n"
            f"预约入口（用登记的手机号登录）：{links.entry}\n"
            f"第二剂接种指引（谁可以约、怎样约、当天带什么）：{links.guide}\n"
            f"收到政务短信的市民，直接打开短信中的专属链接即可。\n"
            f"不预约不接种，现场不派号。咨询电话：{HOTLINE}")


def booking_en(links: Links) -> str:
    return (f"Tianhe second-dose booking\n"
            f"Book (sign in with your registered phone): {links.entry_en}\n"
            f"The second-dose guide (who, how, what to bring): {links.guide_en}\n"
            f"Got our SMS? Just open the personal link in it.\n"
            f"No booking, no vaccination. Help: call {HOTLINE}")


def welcome(links: Links) -> str:
    return (f"感谢关注“{WECHAT_ACCOUNT}”！\n"
            f"新冠疫苗第二剂预约入口：{links.entry}\n"
            f"第二剂接种指引：{links.guide}\n"
            f"以后回复“{WECHAT_KEYWORD}”可再次获取。Reply \"guide\" for English.")


def default_reply() -> str:
    return (f"您好！预约新冠疫苗第二剂，请回复“{WECHAT_KEYWORD}”，获取预约入口和接种指引。"
            f"咨询电话：{HOTLINE}。\nReply \"guide\" for the booking address in English.")


def answer(account: Account, signed: Signed, body: bytes, now: dt.datetime, links: Links) -> str:
    """The reply to one callback POST: XML (encrypted in safe mode), or "success" for none."""
    check(account, signed, now)
    xml = _plain_message(account, signed, body)
    try:
        message = parse_message(xml)
        kind = f"event:{message.event}" if isinstance(message, BaseEvent) else message.type
        source, target = message.source, message.target
        content = message.content if message.type == "text" else ""
    except Exception:  # not XML, not <xml>, no MsgType, a field given twice…
        raise Refused("message") from None
    if not all(isinstance(v, str) and _USER_NAME.match(v) for v in (source, target)):
        raise Refused("message")
    if not isinstance(content, (str, type(None))):
        raise Refused("message")
    text = reply_text(str(kind), content or "", links)
    if text is None:
        return NO_REPLY
    reply = TextReply(source=target, target=source, content=text, time=int(now.timestamp()))
    if account.safe_mode:
        return account.crypto.encrypt_message(reply.render(), signed.nonce, signed.timestamp)
    return reply.render()
