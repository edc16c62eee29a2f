"""The official account's callback (/wechat), called as WeChat's servers call it: the XML WeChat
sends, signed as WeChat signs it (SHA-1 over the sorted token, timestamp and nonce), and in safe
mode encrypted with wechatpy's own WeChatCrypto, as WeChat would.

No database is opened here: the callback must answer without one (WeChat waits 5 seconds)."""
from __future__ import annotations

import base64
import hashlib
import logging

import httpx
import pytest
import xmltodict
from wechatpy.crypto import WeChatCrypto

from tests.conftest import BASE_URL, NOW, TEST_SECRET

TOKEN = "tianhe-wechat-token"
APP_ID = "wx0123456789abcdef"
AES_KEY = base64.b64encode(bytes(range(32))).decode().rstrip("=")  # 43 characters, as WeChat's
ACCOUNT = "gh_tianhefabu01"  # the official account's own id: ToUserName of what users send
OPENID = "oTianheResident_0123456789ab"  # a follower: FromUserName
NOW_STAMP = str(int(NOW.timestamp()))


def sign(token: str, *parts: str) -> str:
    """WeChat's signature: the SHA-1 of the token and the parts, sorted and joined."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()


def signed_query(timestamp: str = NOW_STAMP, nonce: str = "1320562132", token: str = TOKEN) -> dict:
    return {"signature": sign(token, timestamp, nonce), "timestamp": timestamp, "nonce": nonce,
            "openid": OPENID}


def text_message(content: str, sender: str = OPENID) -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{sender}]]></FromUserName>"
            f"<CreateTime>{NOW_STAMP}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>23637352235060880</MsgId></xml>")


def event_message(event: str, key: str = "") -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{NOW_STAMP}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>")


def image_message() -> str:
    return (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<FromUserName><![CDATA[{OPENID}]]></FromUserName>"
            f"<CreateTime>{NOW_STAMP}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[http://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"
            f"<MsgId>1234567890123456</MsgId></xml>")


async def _client(clock, **wechat):
    from web.app import create_app
    from web.settings import Settings

    settings = Settings(secret_key=TEST_SECRET, base_url=BASE_URL, **wechat)
    app = create_app(settings, manage_db=False, clock=clock)
    transport = httpx.ASGITransport(app=app, client=("101.226.103.1", 5000),
                                    raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def plain(clock):
    """The app with the account in plain mode (明文模式): WECHAT_TOKEN only."""
    async with await _client(clock, wechat_token=TOKEN) as c:
        yield c


@pytest.fixture
async def safe(clock):
    """The app with the account in safe mode (安全模式): token, app id and EncodingAESKey."""
    async with await _client(clock, wechat_token=TOKEN, wechat_app_id=APP_ID,
                             wechat_aes_key=AES_KEY) as c:
        yield c


async def post(client, xml: str, query: dict | None = None):
    return await client.post("/wechat", params=signed_query() if query is None else query,
                             content=xml.encode(), headers={"Content-Type": "text/xml"})


def reply_of(response) -> dict:
    assert response.status_code == 200, (response.status_code, response.text)
    return xmltodict.parse(response.text)["xml"]


# The URL check WeChat's console makes when the address is saved

async def test_the_console_url_check_gets_its_echo_back(plain):
    r = await plain.get("/wechat", params={**signed_query(), "echostr": "5838479218127813673"})
    assert r.status_code == 200
    assert r.text == "5838479218127813673"
    assert r.headers["content-type"].startswith("text/plain")


async def test_a_url_check_with_a_wrong_signature_is_refused(plain):
    query = {**signed_query(), "echostr": "5838479218127813673"}
    query["signature"] = sign("another-token", query["timestamp"], query["nonce"])
    r = await plain.get("/wechat", params=query)
    assert r.status_code == 403
    assert "5838479218127813673" not in r.text
    assert r.headers["content-type"].startswith("text/plain")


async def test_an_echo_that_is_not_wechats_kind_of_string_is_not_echoed(plain):
    r = await plain.get("/wechat", params={**signed_query(), "echostr": "<script>alert(1)</script>"})
    assert r.status_code == 400
    assert "<script>" not in r.text


async def test_the_callback_is_off_while_no_token_is_set(clock):
    async with await _client(clock) as off:
        assert (await off.get("/wechat", params={**signed_query(), "echostr": "1"})).status_code == 404
        assert (await post(off, text_message("疫苗"))).status_code == 404


# Messages, in plain mode

async def test_the_keyword_gets_the_entry_address_and_the_guide(plain):
    reply = reply_of(await post(plain, text_message("疫苗")))
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert reply["MsgType"] == "text"
    assert int(reply["CreateTime"]) == int(NOW.timestamp())
    assert f"{BASE_URL}/entry" in reply["Content"]
    assert f"{BASE_URL}/guide" in reply["Content"]
    assert "12345" in reply["Content"]


@pytest.mark.parametrize("words", ["预约", "第二针", "  疫苗  ", "疫苗！", "我想预约第二针疫苗"])
async def test_every_keyword_gets_the_same_answer_in_chinese(plain, words):
    content = reply_of(await post(plain, text_message(words)))["Content"]
    assert f"{BASE_URL}/entry" in content and f"{BASE_URL}/guide" in content
    assert "第二剂接种指引" in content


@pytest.mark.parametrize("words", ["guide", "GUIDE", " Guide ", "ｇｕｉｄｅ"])
async def test_guide_in_any_case_gets_the_answer_in_english_with_english_links(plain, words):
    content = reply_of(await post(plain, text_message(words)))["Content"]
    assert "second-dose guide" in content
    assert f"{BASE_URL}/lang/en?next=/guide" in content
    assert f"{BASE_URL}/lang/en?next=/entry" in content


@pytest.mark.parametrize("xml", [text_message("你好，请问几点上班？"), text_message("guidelines"),
                                 image_message()])
async def test_anything_else_gets_a_polite_answer_naming_the_keyword(plain, xml):
    content = reply_of(await post(plain, xml))["Content"]
    assert "您好" in content and "回复“疫苗”" in content
    assert "guide" in content  # and how to get it in English
    assert BASE_URL not in content


async def test_following_the_account_gets_a_welcome_with_both_addresses(plain):
    for xml in (event_message("subscribe"), event_message("subscribe", "qrscene_poster")):
        content = reply_of(await post(plain, xml))["Content"]
        assert "感谢关注“广州天河发布”" in content
        assert f"{BASE_URL}/entry" in content and f"{BASE_URL}/guide" in content


@pytest.mark.parametrize("event", ["unsubscribe", "CLICK", "LOCATION", "VIEW"])
async def test_other_events_get_no_message(plain, event):
    r = await post(plain, event_message(event))
    assert r.status_code == 200
    assert r.text == "success"  # WeChat's "nothing to say": no retry, nothing shown


async def test_a_message_with_a_wrong_signature_is_refused(plain):
    query = signed_query()
    query["signature"] = sign("guessed-token", query["timestamp"], query["nonce"])
    r = await post(plain, text_message("疫苗"), query)
    assert r.status_code == 403
    assert r.headers["content-type"].startswith("text/plain")
    assert BASE_URL not in r.text


@pytest.mark.parametrize("drop", ["signature", "timestamp", "nonce"])
async def test_a_message_missing_part_of_the_signature_is_refused(plain, drop):
    query = signed_query()
    del query[drop]
    assert (await post(plain, text_message("疫苗"), query)).status_code == 403


@pytest.mark.parametrize("seconds", [-301, 301, -3600, 86400])
async def test_a_timestamp_more_than_five_minutes_off_is_refused(plain, seconds):
    stamp = str(int(NOW.timestamp()) + seconds)
    r = await post(plain, text_message("疫苗"), signed_query(timestamp=stamp))
    assert r.status_code == 403
    assert "stale" in r.text


async def test_a_timestamp_within_five_minutes_is_accepted(plain):
    for seconds in (-299, 299):
        stamp = str(int(NOW.timestamp()) + seconds)
        assert (await post(plain, text_message("疫苗"), signed_query(timestamp=stamp))).status_code == 200


async def test_the_clock_decides_what_is_stale(plain, clock):
    query = signed_query()
    clock.advance(minutes=6)
    assert (await post(plain, text_message("疫苗"), query)).status_code == 403


@pytest.mark.parametrize("body", [
    "", "not xml at all", "<xml>", "<notxml><MsgType>text</MsgType></notxml>",
    "<xml><MsgType>text</MsgType><Content>疫苗</Content></xml>",  # from nobody
    text_message("疫苗").replace("<MsgType><![CDATA[text]]></MsgType>", ""),
    text_message("疫苗", sender="o]]><Evil>1</Evil><x><![CDATA["),
    text_message("疫苗").replace("</xml>", f"<FromUserName>{OPENID}</FromUserName></xml>"),
    '<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    + text_message("疫苗").replace("<![CDATA[疫苗]]>", "&b;"),
    "<xml><ToUserName><a>1</a></ToUserName></xml>",
])
async def test_a_signed_message_we_cannot_read_is_a_bad_request_never_a_crash(plain, body):
    r = await post(plain, body)
    assert r.status_code == 400, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain")


async def test_bytes_that_are_not_utf8_are_a_bad_request(plain):
    r = await plain.post("/wechat", params=signed_query(), content=b"<xml>\xff\xfe</xml>",
                         headers={"Content-Type": "text/xml"})
    assert r.status_code == 400


async def test_hostile_query_values_never_crash_the_callback(plain):
    hostile = ["", "x" * 5000, "\x00", "１２３", "-1", "99999999999999999999", "1e9", "😀"]
    for value in hostile:
        for name in ("signature", "timestamp", "nonce", "echostr", "msg_signature", "encrypt_type"):
            query = {**signed_query(), name: value}
            for r in (await plain.get("/wechat", params=query), await post(plain, text_message("疫苗"), query)):
                assert r.status_code < 500, (name, value, r.status_code)


async def test_the_log_names_no_follower(plain, caplog):
    caplog.set_level(logging.DEBUG)
    await post(plain, text_message("疫苗"))
    await post(plain, text_message("疫苗"), {**signed_query(), "signature": "0" * 40})
    await post(plain, "<xml>")
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("booking"))
    assert "refused" in ours
    assert OPENID not in ours  # (the test client's own log of the URLs it asks for is not ours)


# Safe mode (安全模式): the message is encrypted, msg_signature covers it

def encrypted(xml: str, *, app_id: str = APP_ID, timestamp: str = NOW_STAMP,
              nonce: str = "1320562132") -> tuple[str, dict]:
    """The body and query WeChat sends in safe mode, made with wechatpy's own crypto."""
    wechat = WeChatCrypto(TOKEN, AES_KEY, app_id)
    envelope = xmltodict.parse(wechat.encrypt_message(xml, nonce, timestamp))["xml"]
    body = (f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
            f"<Encrypt><![CDATA[{envelope['Encrypt']}]]></Encrypt></xml>")
    query = {**signed_query(timestamp, nonce), "encrypt_type": "aes",
             "msg_signature": envelope["MsgSignature"]}
    return body, query


def decrypted(response) -> dict:
    """Our encrypted reply, checked and opened as WeChat does."""
    envelope = reply_of(response)
    assert "Content" not in envelope and "Encrypt" in envelope
    xml = WeChatCrypto(TOKEN, AES_KEY, APP_ID).decrypt_message(
        response.text, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"])
    return xmltodict.parse(xml)["xml"]


async def test_safe_mode_decrypts_the_keyword_and_encrypts_the_answer(safe):
    body, query = encrypted(text_message("疫苗"))
    reply = decrypted(await post(safe, body, query))
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert f"{BASE_URL}/entry" in reply["Content"] and f"{BASE_URL}/guide" in reply["Content"]


async def test_safe_mode_welcomes_a_new_follower(safe):
    body, query = encrypted(event_message("subscribe"))
    assert "感谢关注" in decrypted(await post(safe, body, query))["Content"]


async def test_safe_mode_refuses_a_body_its_msg_signature_does_not_cover(safe):
    body, query = encrypted(text_message("疫苗"))
    other, _ = encrypted(text_message("别的内容"))
    assert (await post(safe, other, query)).status_code == 403


async def test_safe_mode_refuses_a_message_encrypted_for_another_account(safe):
    body, query = encrypted(text_message("疫苗"), app_id="wx_another_account")
    assert (await post(safe, body, query)).status_code == 403


async def test_safe_mode_refuses_plain_messages(safe):
    # Only the token, timestamp and nonce are signed in plain mode, not the message.
    assert (await post(safe, text_message("疫苗"))).status_code == 403


async def test_safe_mode_refuses_a_stale_timestamp(safe):
    stamp = str(int(NOW.timestamp()) - 600)
    body, query = encrypted(text_message("疫苗"), timestamp=stamp)
    assert (await post(safe, body, query)).status_code == 403


async def test_safe_mode_answers_unreadable_ciphertext_with_a_bad_request(safe):
    garbage = "bm90IGEgbWVzc2FnZQ=="
    query = {**signed_query(), "encrypt_type": "aes",
             "msg_signature": sign(TOKEN, NOW_STAMP, "1320562132", garbage)}
    body = f"<xml><ToUserName>{ACCOUNT}</ToUserName><Encrypt><![CDATA[{garbage}]]></Encrypt></xml>"
    assert (await post(safe, body, query)).status_code == 400


async def test_safe_mode_still_echoes_the_console_url_check(safe):
    r = await safe.get("/wechat", params={**signed_query(), "echostr": "8127813673"})
    assert r.status_code == 200 and r.text == "8127813673"


@pytest.mark.parametrize("env, problem", [
    ({"WECHAT_TOKEN": TOKEN, "WECHAT_APP_ID": APP_ID, "WECHAT_AES_KEY": "short"}, "43"),
    ({"WECHAT_TOKEN": TOKEN, "WECHAT_AES_KEY": AES_KEY}, "WECHAT_APP_ID"),
    ({"WECHAT_APP_ID": APP_ID, "WECHAT_AES_KEY": AES_KEY}, "WECHAT_TOKEN"),
])
def test_a_safe_mode_setting_wechat_could_not_have_issued_stops_the_start(monkeypatch, env, problem):
    from web.settings import load_settings

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=problem):
        load_settings(secret_key=TEST_SECRET)


def test_the_settings_read_the_three_wechat_variables(monkeypatch):
    from web.settings import load_settings

    monkeypatch.setenv("WECHAT_TOKEN", TOKEN)
    monkeypatch.setenv("WECHAT_APP_ID", APP_ID)
    monkeypatch.setenv("WECHAT_AES_KEY", AES_KEY)
    settings = load_settings(secret_key=TEST_SECRET)
    assert (settings.wechat_token, settings.wechat_app_id, settings.wechat_aes_key) == \
        (TOKEN, APP_ID, AES_KEY)
    assert TOKEN not in repr(settings) and AES_KEY not in repr(settings)


@pytest.mark.parametrize("body", ["", "not xml", f"<xml><ToUserName>{ACCOUNT}</ToUserName></xml>",
                                  "<xml><Encrypt><a>1</a></Encrypt></xml>"])
async def test_safe_mode_answers_an_envelope_without_a_message_with_a_bad_request(safe, body):
    query = {**signed_query(), "encrypt_type": "aes", "msg_signature": "0" * 40}
    assert (await post(safe, body, query)).status_code == 400
