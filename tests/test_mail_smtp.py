"""SMTP delivery against a real aiosmtpd server on 127.0.0.1, with faults injected.

Every reply class maps to a DeliveryError with the right code, ``permanent`` flag and
``after_data``; see tests/fixtures/smtp_server.py for the server and its faults.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from email.message import EmailMessage

import pytest

from digest.config import SmtpSettings, parse_smtp_url
from digest.errors import AuthenticationError, DeliveryError
from digest.mail import (
    SendError,
    SmtpTransport,
    TlsRequiredError,
    build_message,
    make_message_id,
    open_transport,
)
from digest.models import RenderedEmail
from tests.fixtures.smtp_server import SmtpTestServer

DAY = date(2026, 5, 25)


def message_to(addr: str, n: int = 1, *, name: str = "Reader") -> EmailMessage:
    return build_message(
        RenderedEmail(
            subject=f"Your research digest for Mon 25 May 2026: {n} papers",
            preheader="",
            text=f"Paper {n}\n.leading dot survives\n",
            html=f"<p>Paper {n}</p>",
        ),
        from_name="Research Digest",
        from_addr="digest@example.org",
        to_name=name,
        to_addr=addr,
        message_id=make_message_id(n, DAY, "example.org"),
        date=datetime(2026, 5, 25, 7, tzinfo=UTC),
        list_id="digest.example.org",
        list_unsubscribe=f"https://digest.example.org/u/{n}",
    )


# The smtp_server tests run against a server without and with PIPELINING (RFC 2920).
SMTP_WITH_AND_WITHOUT_PIPELINING = True


def test_commands_are_pipelined_where_the_server_offers_it(
    smtp_server: SmtpTestServer,
) -> None:
    offered = smtp_server.handler.pipelining
    with SmtpTransport(smtp_server.settings()) as transport:
        for n in range(3):
            transport.send(message_to(f"r{n}@example.org", n))
        assert transport.pipelined == (3 if offered else 0)
    # Seen by the server: MAIL, RCPT and DATA came in one read, or each on its own.
    assert smtp_server.pipelined == (3 if offered else 0)
    assert [m.rcpt_tos for m in smtp_server.messages] == [[f"r{n}@example.org"] for n in range(3)]


def test_one_refused_recipient_of_two_sends_nothing_and_the_next_message_goes(
    smtp_server: SmtpTestServer,
) -> None:
    # With a recipient accepted the server answers DATA with 354; pipelined, the client
    # learns of the refusal only then, and must leave without sending the message.
    smtp_server.fail("rcpt", "550 5.1.1 No such user", recipient="gone@example.org")
    payload = message_to("a@example.org").as_bytes().replace(b"\n", b"\r\n")
    with SmtpTransport(smtp_server.settings()) as transport:
        with pytest.raises(SendError) as info:
            transport.send_wire("digest@example.org", ["a@example.org", "gone@example.org"],
                                payload)
        assert (info.value.code, info.value.permanent, info.value.stage) == (550, True, "rcpt")
        assert transport.send(message_to("b@example.org")).startswith("250")
    assert [m.rcpt_tos for m in smtp_server.messages] == [["b@example.org"]]


def send_expecting_error(server: SmtpTestServer, message: EmailMessage) -> SendError:
    with SmtpTransport(server.settings()) as transport, pytest.raises(SendError) as info:
        transport.send(message)
    return info.value


def test_messages_arrive_with_headers_intact(smtp_server: SmtpTestServer) -> None:
    with SmtpTransport(smtp_server.settings()) as transport:
        reply = transport.send(message_to("ada@example.org", name="Émile Noether"))
    assert reply.startswith("250")
    [received] = smtp_server.messages
    assert received.mail_from == "digest@example.org"
    assert received.rcpt_tos == ["ada@example.org"]
    msg = received.message
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert msg["Message-ID"] == make_message_id(1, DAY, "example.org")
    assert msg["List-Unsubscribe"] == "<https://digest.example.org/u/1>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["To"].addresses[0].display_name == "Émile Noether"
    assert b"=?utf-8?" in received.data
    # Dot-stuffing is undone by the server: the body line is intact.
    assert ".leading dot survives" in next(msg.iter_parts()).get_content()


def test_one_connection_serves_many_messages(smtp_server: SmtpTestServer) -> None:
    with SmtpTransport(smtp_server.settings()) as transport:
        for n in range(10):
            transport.send(message_to(f"r{n}@example.org", n))
    assert len(smtp_server.messages) == 10
    assert smtp_server.connections == 1
    assert transport.connections == 1


def test_nothing_to_send_opens_no_connection(smtp_server: SmtpTestServer) -> None:
    with SmtpTransport(smtp_server.settings()):
        pass
    assert smtp_server.connections == 0


def test_smtp_url_from_config_reaches_the_server(smtp_server: SmtpTestServer) -> None:
    settings = parse_smtp_url(smtp_server.url)
    assert settings is not None
    with open_transport(settings, maildir=None) as transport:  # type: ignore[arg-type]
        transport.send(message_to("ada@example.org"))
    assert len(smtp_server.messages) == 1


@pytest.mark.parametrize(
    ("stage", "reply", "code", "permanent"),
    [
        ("rcpt", "451 4.7.1 Greylisted, try again", 451, False),
        ("rcpt", "550 5.1.1 No such user", 550, True),
        ("rcpt", "552 5.2.2 Mailbox full", 552, False),  # RFC 5321: temporary at RCPT
        ("rcpt", "452 4.5.3 Too many recipients", 452, False),
        ("mail", "451 4.3.0 Local problem", 451, False),
        ("mail", "553 5.1.8 Sender rejected", 553, True),
        ("data", "451 4.3.0 Queue full", 451, False),
        ("data", "552 5.3.4 Message too big", 552, True),  # after DATA, 552 is permanent
        ("data", "452 4.3.1 Insufficient storage", 452, False),
        ("data", "554 5.7.1 Rejected as spam", 554, True),
        ("data", "550 5.7.1 Policy", 550, True),
    ],
)
def test_reply_classes_map_to_delivery_errors(
    smtp_server: SmtpTestServer, stage: str, reply: str, code: int, permanent: bool
) -> None:
    smtp_server.fail(stage, reply)  # type: ignore[arg-type]
    err = send_expecting_error(smtp_server, message_to("ada@example.org"))
    assert isinstance(err, DeliveryError)
    assert (err.code, err.permanent, err.after_data) == (code, permanent, False)
    assert str(code) in str(err)
    assert smtp_server.messages == []


def test_a_refused_recipient_does_not_spoil_the_connection(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail("rcpt", "550 5.1.1 No such user", recipient="gone@example.org")
    smtp_server.fail("data", "451 4.3.0 Later", recipient="later@example.org")
    outcomes: list[str] = []
    with SmtpTransport(smtp_server.settings()) as transport:
        for addr in ("a@example.org", "gone@example.org", "later@example.org", "b@example.org"):
            try:
                outcomes.append(transport.send(message_to(addr))[:3])
            except SendError as err:
                outcomes.append(str(err.code))
    assert outcomes == ["250", "550", "451", "250"]
    assert [m.rcpt_tos for m in smtp_server.messages] == [["a@example.org"], ["b@example.org"]]
    assert smtp_server.connections == 1


def test_421_closes_and_the_next_send_reconnects(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail("mail", "421 4.3.2 Service shutting down", skip=2)
    results: list[str] = []
    with SmtpTransport(smtp_server.settings()) as transport:
        for n in range(5):
            try:
                results.append(transport.send(message_to(f"r{n}@example.org", n))[:3])
            except SendError as err:
                assert not err.permanent and not err.after_data
                results.append(str(err.code))
    assert results == ["250", "250", "421", "250", "250"]
    assert len(smtp_server.messages) == 4
    assert smtp_server.connections == 2


def test_421_after_data_is_temporary_and_reconnects(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail("data", "421 4.4.2 Timeout, closing")
    with SmtpTransport(smtp_server.settings()) as transport:
        with pytest.raises(SendError) as info:
            transport.send(message_to("a@example.org"))
        assert (info.value.code, info.value.permanent, info.value.after_data) == (421, False, False)
        transport.send(message_to("b@example.org"))
    assert smtp_server.connections == 2


def test_connection_dropped_after_data_without_reply_is_unknown(
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.fail("data", action="drop")
    err = send_expecting_error(smtp_server, message_to("a@example.org"))
    assert err.after_data
    assert err.code is None and not err.permanent
    assert "may have been delivered" in str(err)
    # The server did take it: exactly the case a resend would duplicate.
    assert len(smtp_server.messages) == 1


def test_no_reply_after_data_times_out_as_unknown(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail("data", action="hang")
    settings = smtp_server.settings(timeout=0.5)
    with SmtpTransport(settings) as transport, pytest.raises(SendError) as info:
        transport.send(message_to("a@example.org"))
    assert info.value.after_data
    assert "timed out" in str(info.value)


def test_connection_dropped_right_after_the_250_is_a_success_and_recovers(
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.fail("data", "250 2.0.0 Queued", action="drop-after")
    with SmtpTransport(smtp_server.settings()) as transport:
        assert transport.send(message_to("a@example.org")).startswith("250 2.0.0")
        # The idle connection is dead; the next send notices at MAIL and reconnects.
        assert transport.send(message_to("b@example.org")).startswith("250")
    assert len(smtp_server.messages) == 2
    assert smtp_server.connections == 2


def test_connection_dropped_before_mail_reply_is_temporary(smtp_server: SmtpTestServer) -> None:
    smtp_server.fail("mail", action="drop", times=2)
    err = send_expecting_error(smtp_server, message_to("a@example.org"))
    assert (err.code, err.permanent, err.after_data, err.stage) == (None, False, False, "mail")


def test_connection_dropped_at_rcpt_is_temporary_not_unknown(
    smtp_server: SmtpTestServer,
) -> None:
    smtp_server.fail("rcpt", action="drop")
    err = send_expecting_error(smtp_server, message_to("a@example.org"))
    assert (err.permanent, err.after_data, err.stage) == (False, False, "rcpt")
    assert smtp_server.messages == []


def test_a_server_that_never_greets_is_a_temporary_error(silent_smtp_port: int) -> None:
    settings = SmtpSettings("127.0.0.1", silent_smtp_port, "none", timeout=0.5)
    with SmtpTransport(settings) as transport, pytest.raises(SendError) as info:
        transport.send(message_to("a@example.org"))
    assert (info.value.permanent, info.value.stage) == (False, "connect")
    assert "timed out" in str(info.value)


def test_nobody_listening_is_a_temporary_error(silent_smtp_port: int) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings = SmtpSettings("127.0.0.1", closed_port, "none", timeout=1)
    with SmtpTransport(settings) as transport, pytest.raises(SendError) as info:
        transport.send(message_to("a@example.org"))
    assert (info.value.permanent, info.value.stage) == (False, "connect")


def test_good_credentials_authenticate(
    make_smtp_server: Callable[..., SmtpTestServer],
) -> None:
    server = make_smtp_server(auth=("digest", "s3cret"))
    with SmtpTransport(server.settings()) as transport:
        transport.send(message_to("a@example.org"))
    assert len(server.messages) == 1


def test_bad_credentials_raise_authentication_error_535(
    make_smtp_server: Callable[..., SmtpTestServer],
) -> None:
    server = make_smtp_server(auth=("digest", "s3cret"))
    settings = server.settings(username="digest", password="wrong")
    with SmtpTransport(settings) as transport, pytest.raises(AuthenticationError) as info:
        transport.send(message_to("a@example.org"))
    assert info.value.code == 535
    assert info.value.permanent
    assert "wrong" not in str(info.value)
    assert server.messages == []


def test_missing_credentials_where_required_raise_authentication_error(
    make_smtp_server: Callable[..., SmtpTestServer],
) -> None:
    server = make_smtp_server(auth=("digest", "s3cret"))
    settings = SmtpSettings(server.host, server.port, "none", timeout=3)
    with SmtpTransport(settings) as transport, pytest.raises(AuthenticationError) as info:
        transport.send(message_to("a@example.org"))
    assert info.value.code == 530


def test_starttls_is_required_unless_turned_off(smtp_server: SmtpTestServer) -> None:
    settings = SmtpSettings(smtp_server.host, smtp_server.port, "starttls", timeout=3)
    with SmtpTransport(settings) as transport, pytest.raises(TlsRequiredError) as info:
        transport.send(message_to("a@example.org"))
    assert isinstance(info.value, AuthenticationError)  # stops the run
    assert "starttls=off" in info.value.hint
    assert smtp_server.messages == []


def test_starttls_with_auth_delivers(make_smtp_server: Callable[..., SmtpTestServer]) -> None:
    server = make_smtp_server(starttls=True, auth=("digest", "s3cret"))
    transport = SmtpTransport(server.settings(), ssl_context=server.client_ssl_context())
    with transport:
        transport.send(message_to("a@example.org"))
        transport.send(message_to("b@example.org"))
    assert len(server.messages) == 2
    assert server.connections == 1


def test_starttls_refuses_an_untrusted_certificate(
    make_smtp_server: Callable[..., SmtpTestServer],
) -> None:
    server = make_smtp_server(starttls=True)
    with SmtpTransport(server.settings()) as transport, pytest.raises(SendError) as info:
        transport.send(message_to("a@example.org"))
    assert info.value.stage == "tls"
    assert server.messages == []


def test_implicit_tls_delivers(make_smtp_server: Callable[..., SmtpTestServer]) -> None:
    server = make_smtp_server(implicit_tls=True, auth=("digest", "s3cret"))
    assert server.url.startswith("smtps://")
    transport = SmtpTransport(server.settings(), ssl_context=server.client_ssl_context())
    with transport:
        transport.send(message_to("a@example.org"))
    assert len(server.messages) == 1


def test_crlf_in_subject_never_reaches_the_server_as_a_header(
    smtp_server: SmtpTestServer,
) -> None:
    message = build_message(
        RenderedEmail("Hi\r\nBcc: victim@example.net", "", "t", "<p>t</p>"),
        from_name="Digest\r\nX-Evil: 1",
        from_addr="digest@example.org",
        to_name="Ada",
        to_addr="ada@example.org",
        message_id=make_message_id(1, DAY, "example.org"),
        date=datetime(2026, 5, 25, tzinfo=UTC),
        list_id="digest.example.org",
        list_unsubscribe=None,
    )
    with SmtpTransport(smtp_server.settings()) as transport:
        transport.send(message)
    [received] = smtp_server.messages
    assert received.rcpt_tos == ["ada@example.org"]
    assert received.message["Bcc"] is None and received.message["X-Evil"] is None
    assert received.message["Subject"] == "Hi Bcc: victim@example.net"
