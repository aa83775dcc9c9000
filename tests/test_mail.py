"""Message building and Maildir delivery: headers, MIME structure, header injection."""

from __future__ import annotations

import mailbox
import re
from datetime import UTC, date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from digest.addresses import normalize_email
from digest.config import config_from_values
from digest.errors import DeliveryError
from digest.mail import (
    MaildirTransport,
    SmtpTransport,
    build_message,
    envelope,
    header_text,
    make_message_id,
    message_to_bytes,
    open_transport,
    with_date,
)
from digest.mail import message as mail_message
from digest.models import Digest, Paper, RenderedEmail, ScoredPaper, Subscriber
from digest.pipeline.composing import compose
from digest.render import make_environment
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)
NOW = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)


def rendered(subject: str = "Your research digest for Mon 25 May 2026: 2 papers") -> RenderedEmail:
    return RenderedEmail(
        subject=subject,
        preheader="first title",
        text="Hello,\n.a line starting with a dot\n$a<b$ & verbatim\n",
        html="<p>Hello, $a&lt;b$ &amp; escaped</p>",
    )


def make(**overrides: object) -> EmailMessage:
    kwargs: dict[str, object] = {
        "from_name": "Research Digest",
        "from_addr": "digest@example.org",
        "to_name": "Ada Lovelace",
        "to_addr": "ada@example.org",
        "message_id": make_message_id(42, DAY, "example.org"),
        "date": NOW,
        "list_id": "digest.example.org",
        "list_unsubscribe": "https://digest.example.org/u/tok?x=1",
    }
    email_parts = overrides.pop("rendered", rendered())
    kwargs.update(overrides)
    return build_message(email_parts, **kwargs)  # type: ignore[arg-type]


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = message_from_bytes(message_to_bytes(message), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_message_is_multipart_alternative_text_first_then_html() -> None:
    msg = reparse(make())
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p.get_content_charset() == "utf-8" for p in parts)
    assert parts[0].get_content().replace("\r\n", "\n") == rendered().text
    assert parts[1].get_content().strip() == rendered().html


def test_message_has_the_standard_and_list_headers() -> None:
    msg = reparse(make(list_name="Research Digest"))
    assert msg["Date"] == "Mon, 25 May 2026 07:00:00 +0000"
    assert msg["Message-ID"] == make_message_id(42, DAY, "example.org")
    assert msg["List-Id"] == "Research Digest <digest.example.org>"
    assert msg["List-Unsubscribe"] == "<https://digest.example.org/u/tok?x=1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["MIME-Version"] == "1.0"
    assert str(msg["From"]) == "Research Digest <digest@example.org>"


def test_no_list_unsubscribe_headers_without_a_url() -> None:
    msg = reparse(make(list_unsubscribe=None))
    assert msg["List-Unsubscribe"] is None
    assert msg["List-Unsubscribe-Post"] is None


def test_message_id_is_deterministic_per_subscriber_and_day() -> None:
    first = make_message_id(42, DAY, "example.org")
    assert first == make_message_id(42, DAY, "example.org")
    assert first.startswith("<digest.42.2026-05-25.") and first.endswith("@example.org>")
    assert first != make_message_id(43, DAY, "example.org")
    assert first != make_message_id(42, DAY + timedelta(days=1), "example.org")
    assert make_message_id(42, DAY, "digest@example.org\r\nBcc: x").endswith("@example.orgBccx>")
    assert make_message_id(1, DAY, "example.org", kind="confirm").startswith("<confirm.1.")


def test_non_ascii_display_names_are_rfc2047_encoded() -> None:
    msg = make(to_name="Émile Noether", from_name="Digest für Forschung")
    raw = message_to_bytes(msg)
    raw.decode("ascii")  # every header is 7-bit on the wire
    assert b"=?utf-8?" in raw
    parsed = reparse(msg)
    assert parsed["To"].addresses[0].display_name == "Émile Noether"
    assert parsed["From"].addresses[0].display_name == "Digest für Forschung"


def test_a_non_ascii_subject_is_encoded_and_round_trips() -> None:
    msg = reparse(make(rendered=rendered("Ihr Digest: Übersicht — 3 papers")))
    assert msg["Subject"] == "Ihr Digest: Übersicht — 3 papers"


@pytest.mark.parametrize("breaker", ["\r\n", "\n", "\r", "\u2028", "\x85", "\r\n\t"])
def test_line_breaks_in_subject_or_names_never_start_a_header(breaker: str) -> None:
    msg = make(
        rendered=rendered(f"Hello{breaker}Bcc: victim@example.net"),
        to_name=f"Ada{breaker}X-Injected: yes",
        from_name=f"Digest{breaker}Reply-To: evil@example.net",
        list_unsubscribe=f"https://digest.example.org/u{breaker}X-Evil: 1",
        extra_headers={"X-Digest-Papers": f"3{breaker}X-Also: no"},
    )
    parsed = reparse(msg)
    assert parsed["Bcc"] is None
    assert parsed["X-Injected"] is None
    assert parsed["Reply-To"] is None
    assert parsed["X-Evil"] is None
    assert parsed["X-Also"] is None
    assert parsed["Subject"] == "Hello Bcc: victim@example.net"
    assert parsed["To"].addresses[0].display_name == "Ada X-Injected: yes"
    assert parsed["X-Digest-Papers"] == "3 X-Also: no"
    assert header_text("a\r\n\r\nb") == "a b"


def test_a_malformed_recipient_is_a_permanent_delivery_error() -> None:
    for bad in ("ada@example.org\r\nBcc: x@y", "not an address", "", "a@b@c"):
        with pytest.raises(DeliveryError) as info:
            make(to_addr=bad)
        assert info.value.permanent


def test_an_international_domain_goes_out_as_idna() -> None:
    msg = reparse(make(to_addr="ada@bücher.example"))
    assert msg["To"].addresses[0].addr_spec == "ada@xn--bcher-kva.example"


def test_an_international_domain_is_encoded_as_idna_2008_not_2003(
    smtp_server: SmtpTestServer,
) -> None:
    # "faß.de" is its own domain, xn--fa-hia.de; Python's IDNA 2003 codec made it
    # fass.de, and the digest (with its signed preferences link) went to a stranger.
    # The address as every entry point stores it: email-validator's normalized form.
    to = normalize_email("Jana@xn--fa-hia.de")
    assert to == "jana@faß.de"
    msg = make(to_addr=to, from_addr="digest@straße.example")
    with SmtpTransport(smtp_server.settings()) as transport:
        transport.send(msg)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["jana@xn--fa-hia.de"]
    assert received.mail_from == "digest@xn--strae-oqa.example"
    assert received.message["To"].addresses[0].addr_spec == "jana@xn--fa-hia.de"
    assert received.message["From"].addresses[0].addr_spec == "digest@xn--strae-oqa.example"


def test_extra_headers_cannot_replace_structural_ones() -> None:
    with pytest.raises(ValueError):
        make(extra_headers={"To": "someone@example.net"})
    with pytest.raises(ValueError):
        make(extra_headers={"Bad Name": "x"})


def test_naive_and_offset_dates_are_written_with_their_zone() -> None:
    assert reparse(make(date=datetime(2026, 5, 25, 7)))["Date"].endswith("+0000")
    cest = timezone(timedelta(hours=2))
    assert reparse(make(date=datetime(2026, 5, 25, 9, tzinfo=cest)))["Date"].endswith("+0200")


def test_messages_dated_within_one_second_reuse_one_formatted_date_line() -> None:
    # The send phase reads the clock for each message: the Date line (whole seconds)
    # is formatted once a second, not once a message (~10 us each).
    first = datetime(2026, 5, 25, 7, 0, 1, 1000, tzinfo=UTC)
    line = with_date(b"x", first)
    hits = mail_message._date_line.cache_info().hits
    for micro in (250_000, 999_999):
        assert with_date(b"x", first.replace(microsecond=micro)) == line
    assert mail_message._date_line.cache_info().hits == hits + 2
    assert line == b"Date: Mon, 25 May 2026 07:00:01 +0000\r\nx"
    cest = timezone(timedelta(hours=2))
    assert with_date(b"", first.astimezone(cest)).endswith(b" 09:00:01 +0200\r\n")


def test_envelope_comes_from_the_headers() -> None:
    assert envelope(make()) == ("digest@example.org", ["ada@example.org"])


def test_wire_bytes_use_crlf_and_lines_stay_short() -> None:
    long_html = "<p>" + "x" * 5000 + "</p>"
    msg = make(rendered=RenderedEmail("s", "p", "t " * 3000, long_html))
    raw = message_to_bytes(msg)
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_maildir_delivery_is_readable_by_mailbox_maildir(tmp_path: Path) -> None:
    target = tmp_path / "mail"
    with open_transport(None, target) as transport:
        assert isinstance(transport, MaildirTransport)
        reply = transport.send(make())
        transport.send(make(to_addr="bob@example.org"))
    assert reply.startswith("250 ")
    for sub in ("cur", "new", "tmp"):
        assert (target / sub).is_dir()
    box = mailbox.Maildir(target, factory=None, create=False)
    messages = [
        message_from_bytes(box.get_bytes(key), policy=policy.default) for key in box.iterkeys()
    ]
    assert sorted(str(m["To"]) for m in messages) == [
        "Ada Lovelace <ada@example.org>",
        "Ada Lovelace <bob@example.org>",
    ]
    assert all(m.get_content_type() == "multipart/alternative" for m in messages)
    # Files on disk use the local line ending so mutt and friends show no ^M.
    assert b"\r\n" not in box.get_bytes(next(iter(box.keys())))


def test_open_transport_picks_smtp_when_settings_are_given(tmp_path: Path) -> None:
    from digest.config import SmtpSettings

    transport = open_transport(SmtpSettings("127.0.0.1", 25, "none"), tmp_path)
    assert isinstance(transport, SmtpTransport)
    transport.close()  # never connected: closing is a no-op


def test_an_international_base_url_gives_a_list_unsubscribe_receivers_can_read(
    tmp_path: Path,
) -> None:
    # DIGEST_BASE_URL typed with its Unicode host: the List-Unsubscribe URL was not
    # ASCII, so the header went out RFC 2047-encoded ("=?utf-8?q?=3Chttps=3A//b=C3=BC..."),
    # which mailbox providers do not read as a URL: no unsubscribe button, no one-click.
    config = config_from_values({
        "DIGEST_VAR_DIR": str(tmp_path / "var"),
        "DIGEST_SECRET_KEY": "test-secret-key-0123456789abcdef",
        "DIGEST_FROM": "Research Digest <digest@example.org>",
        "DIGEST_BASE_URL": "https://Bücher.example/dïgest/",
    })
    paper = Paper(key="arxiv:2605.00001", title="A paper", url="https://arxiv.org/abs/2605.00001")
    digest = Digest(subscriber=Subscriber(id=7, email="ada@example.org", name="Ada"), day=DAY,
                    papers=(ScoredPaper(paper, 0.5, "matches: paper"),), batch_size=1)
    env = make_environment(config.templates_dir)
    _, message = compose(config, digest, env=env, now=NOW)
    wire = message_to_bytes(message)
    assert wire.isascii() and b"=?" not in wire.split(b"\r\n\r\n", 1)[0]
    parsed = message_from_bytes(wire, policy=policy.default)
    unsubscribe = str(parsed["List-Unsubscribe"])
    assert re.fullmatch(r"<https://xn--bcher-kva\.example/d%C3%AFgest/unsubscribe/[\w.-]+>",
                        unsubscribe)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == "Research Digest <digest.xn--bcher-kva.example>"
    # The links in both parts are the same ASCII URLs.
    for kind in ("plain", "html"):
        body = parsed.get_body((kind,))
        assert body is not None
        assert unsubscribe[1:-1] in body.get_content()  # type: ignore[attr-defined]
    assert config.base_url == "https://xn--bcher-kva.example/d%C3%AFgest"
