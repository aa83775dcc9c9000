"""The direct MIME writer: what it writes parses back, with the stdlib, to what
EmailMessage.set_content and the stdlib generator made of the same input."""

from __future__ import annotations

import quopri
import random
import re
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest

from digest.mail import (
    build_message,
    envelope,
    header_text,
    make_address,
    make_message_id,
    message_to_bytes,
)
from digest.mail.message import WireMessage, _quoted_printable
from digest.models import RenderedEmail

NOW = datetime(2026, 5, 25, 7, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://digest.example.org/unsubscribe/MTAwMQ.awt1lw.uQyzmYuS_XCh81msq99ZTRhNeiM"
NAMES = [
    "",
    "Ada Lovelace",
    "Émile Noether",
    "Zoë O'Neil",
    'Dr. Ada "The Countess" Lovelace, FRS',
    "李雷",
    "back\\slash",
    "Jürgen " + "Schmidhuber-" * 3,
]
SUBJECTS = [
    "Your research digest for Mon 25 May 2026: 10 papers",
    "Ihr Digest: Übersicht — 3 papers",
    "Your research digest with a subject long enough that it has to be folded onto "
    "a second line and maybe a third one too",
    "日本語の件名 " * 8,
    "x" * 120,
    "",
]
TEXT = "Hello,\n.a line starting with a dot\n-- \n$a<b$ & verbatim = 1\n" + "é" * 200 + "\n"
HTML = '<p style="color: red">Hello, $a&lt;b$ &amp; ' + "x" * 3000 + " · ünï</p>"


def kwargs(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "from_name": "Research Digest",
        "from_addr": "digest@example.org",
        "to_name": "Ada Lovelace",
        "to_addr": "ada@example.org",
        "message_id": make_message_id(42, date(2026, 5, 25), "example.org"),
        "date": NOW,
        "list_id": "digest.example.org",
        "list_unsubscribe": UNSUBSCRIBE,
        "list_name": "Research Digest",
    }
    values.update(overrides)
    return values


def stdlib_message(rendered: RenderedEmail, **kw: Any) -> EmailMessage:
    """Build the message the way build_message did before it wrote bytes itself."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = make_address(kw["from_name"], kw["from_addr"])
    msg["To"] = make_address(kw["to_name"], kw["to_addr"])
    msg["Subject"] = header_text(rendered.subject)
    msg["Date"] = "Mon, 25 May 2026 07:00:00 +0000"
    msg["Message-ID"] = kw["message_id"]
    msg["List-Id"] = f"{kw['list_name']} <{kw['list_id']}>"
    msg["List-Unsubscribe"] = f"<{kw['list_unsubscribe']}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    msg["Precedence"] = "bulk"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    msg.set_content(rendered.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(rendered.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def parse(raw: bytes) -> EmailMessage:
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)
    return parsed


def parts_of(message: EmailMessage) -> list[tuple[str, str | None, str]]:
    return [
        (part.get_content_type(), part.get_content_charset(), part.get_content())
        for part in message.iter_parts()
    ]


def check_wire_format(raw: bytes) -> None:
    raw.decode("ascii")  # 7-bit: headers RFC 2047, bodies quoted-printable
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b"")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998
    assert max(len(line) for line in body.split(b"\r\n")) <= 76  # quoted-printable
    for word in re.findall(rb"=\?[^?]+\?[qQbB]\?[^?]*\?=", head):
        assert len(word) <= 75  # RFC 2047 2


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_written_message_reads_back_like_the_stdlib_built_one(name: str, subject: str) -> None:
    rendered = RenderedEmail(subject, "preheader", TEXT, HTML)
    ours = build_message(rendered, **kwargs(to_name=name))
    raw = message_to_bytes(ours)
    check_wire_format(raw)
    theirs = parse(message_to_bytes(stdlib_message(rendered, **kwargs(to_name=name))))
    parsed = parse(raw)
    assert parsed.keys() == theirs.keys()
    for field in parsed:
        if field not in ("To", "Content-Type"):
            assert str(parsed[field]) == str(theirs[field]), field
    [ours_to] = parsed["To"].addresses
    [their_to] = theirs["To"].addresses
    assert ours_to.addr_spec == their_to.addr_spec
    # The stdlib's parser puts a space between two adjacent encoded words in a display
    # name (RFC 2047 says to drop it), wherever the writer split a long name.
    assert ours_to.display_name.replace(" ", "") == name.replace(" ", "")
    assert parsed.get_content_type() == "multipart/alternative"
    assert parts_of(parsed) == parts_of(theirs)


def test_the_returned_message_reads_like_the_parsed_bytes() -> None:
    rendered = RenderedEmail("Ihr Digest: Übersicht", "p", TEXT, HTML)
    message = build_message(rendered, **kwargs(to_name="Émile Noether"))
    parsed = parse(message_to_bytes(message))
    assert message.keys() == parsed.keys()
    for field in message:
        assert str(message[field]) == str(parsed[field])
    assert message["To"].addresses[0].display_name == "Émile Noether"
    # Contents with "\n" line ends, as EmailMessage.set_content keeps them.
    assert parts_of(message) == [
        ("text/plain", "utf-8", TEXT),
        ("text/html", "utf-8", HTML + "\n"),
    ]
    assert message.get_body(("plain",)) is not None


def test_as_bytes_and_message_to_bytes_return_the_same_wire_bytes() -> None:
    message = build_message(RenderedEmail("s", "p", TEXT, HTML), **kwargs())
    raw = message_to_bytes(message)
    assert message.as_bytes() == raw
    assert bytes(message) == raw
    assert message_to_bytes(message, linesep="\n") == raw.replace(b"\r\n", b"\n")


def test_a_message_changed_after_building_is_serialized_with_the_change() -> None:
    message = build_message(RenderedEmail("s", "p", TEXT, HTML), **kwargs())
    assert isinstance(message, WireMessage)
    message["X-Campaign"] = "spring"
    assert b"X-Campaign: spring\r\n" in message_to_bytes(message)
    assert b"X-Campaign: spring\r\n" in message.as_bytes()

    message = build_message(RenderedEmail("s", "p", TEXT, HTML), **kwargs())
    del message["To"]
    message["To"] = "bob@example.org"
    assert envelope(message) == ("digest@example.org", ["bob@example.org"])
    assert parse(message_to_bytes(message))["To"] == "bob@example.org"

    message = build_message(RenderedEmail("s", "p", TEXT, HTML), **kwargs())
    text_part = message.get_body(("plain",))
    assert isinstance(text_part, EmailMessage)
    text_part.set_content("replaced\n", charset="utf-8", cte="quoted-printable")
    assert parse(message_to_bytes(message)).get_body(("plain",)).get_content() == "replaced\r\n"  # type: ignore[union-attr]


def test_long_and_non_ascii_headers_are_folded_and_encoded() -> None:
    long_name = "Émile Noether-Lovelace von und zu Schmidhuber, Dr. rer. nat. " * 2
    subject = "Ihr Digest: Übersicht — " + "sehr lange Betreffzeile " * 6
    message = build_message(
        RenderedEmail(subject, "p", "t", "<p>h</p>"),
        **kwargs(to_name=long_name, from_name="Digest für Forschung"),
    )
    raw = message_to_bytes(message)
    check_wire_format(raw)
    head = raw.partition(b"\r\n\r\n")[0].decode("ascii")
    for line in head.split("\r\n"):
        if not line.startswith("List-Unsubscribe:"):
            assert len(line) <= 78, line
    assert "\r\n " in head.partition("Subject:")[2].partition("\r\nDate:")[0]
    # ASCII words of a subject stay readable; only the run with other characters is encoded.
    assert head.startswith("From: =?utf-8?q?Digest_f=C3=BCr_Forschung?= <digest@example.org>")
    assert "Subject: Ihr Digest: =?utf-8?q?=C3=9Cbersicht_=E2=80=94?= sehr lange" in head
    parsed = parse(raw)
    assert parsed["Subject"] == subject.strip()
    assert parsed["From"].addresses[0].display_name == "Digest für Forschung"


def test_list_unsubscribe_is_one_unencoded_line() -> None:
    raw = message_to_bytes(build_message(RenderedEmail("s", "p", "t", "h"), **kwargs()))
    assert f"\r\nList-Unsubscribe: <{UNSUBSCRIBE}>\r\n".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw


def test_display_names_with_specials_are_quoted() -> None:
    message = build_message(
        RenderedEmail("s", "p", "t", "h"), **kwargs(to_name='Ada "AL" Lovelace, FRS')
    )
    raw = message_to_bytes(message)
    assert b'To: "Ada \\"AL\\" Lovelace, FRS" <ada@example.org>\r\n' in raw
    assert parse(raw)["To"].addresses[0].display_name == 'Ada "AL" Lovelace, FRS'


def test_text_that_looks_like_an_encoded_word_stays_literal() -> None:
    raw = message_to_bytes(
        build_message(RenderedEmail("=?utf-8?q?hi?= there", "p", "t", "h"), **kwargs())
    )
    assert parse(raw)["Subject"] == "=?utf-8?q?hi?= there"


def test_any_line_ending_in_a_body_becomes_crlf_on_the_wire() -> None:
    message = build_message(RenderedEmail("s", "p", "a\r\nb\rc\nd", "h"), **kwargs())
    raw = message_to_bytes(message)
    check_wire_format(raw)
    assert parse(raw).get_body(("plain",)).get_content() == "a\r\nb\r\nc\r\nd\r\n"  # type: ignore[union-attr]


def test_extra_headers_are_written_after_the_list_headers() -> None:
    raw = message_to_bytes(
        build_message(
            RenderedEmail("s", "p", "t", "h"),
            **kwargs(extra_headers={"X-Digest-Papers": "3", "Sender": "bounce@example.org"}),
        )
    )
    head = raw.partition(b"\r\n\r\n")[0]
    assert b"X-Auto-Response-Suppress: OOF, AutoReply\r\nX-Digest-Papers: 3\r\n" in head
    message = parse(raw)
    assert envelope(message) == ("bounce@example.org", ["ada@example.org"])
    built = build_message(
        RenderedEmail("s", "p", "t", "h"), **kwargs(extra_headers={"Sender": "bounce@example.org"})
    )
    assert envelope(built) == ("bounce@example.org", ["ada@example.org"])


def test_quoted_printable_round_trips_in_short_lines() -> None:
    rng = random.Random(7)
    alphabet = ["a", "b", " ", "\t", ".", "=", "é", "·", "\u034f", "From ", "x" * 90, "-- ",
                "\r\n", "\r", "\n"]
    for _ in range(300):
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 40)))
        encoded = _quoted_printable(text)
        body = text.replace("\r\n", "\n").replace("\r", "\n")
        body = body if body.endswith("\n") else body + "\n"
        assert quopri.decodestring(encoded.encode("ascii")).decode("utf-8") == body, text
        assert all(len(line) <= 76 for line in encoded.split("\n")), encoded
        assert all(not line.endswith((" ", "\t")) for line in encoded.split("\n")), encoded


@pytest.mark.parametrize("name", [*NAMES, "a <b@c> d", "x@y", "(comment)", "a,b;c:d", '"', "<>"])
def test_the_envelope_written_at_build_time_is_what_parsing_the_headers_finds(name: str) -> None:
    from digest.mail.message import _raw_envelope

    for address in ("ada@example.org", "a.b+c@x.example", "o'neil@x.org", "ada@bücher.example",
                    "a..b@x.org", ".a@x.org", "a!#$%&'*+/=?^_`{|}~-@x.org"):
        values = kwargs(from_name=name, to_name=name, to_addr=address)
        message = build_message(RenderedEmail("s", "p", "t", "h"), **values)
        # What build_message wrote into From and To is what reading them back finds.
        assert envelope(message) == _raw_envelope(message)
