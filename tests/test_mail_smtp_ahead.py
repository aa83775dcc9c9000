"""The next message's envelope written with a message's data (RFC 2920), under faults.

``SmtpTransport.finish_data(data, then=(sender, recipients))`` appends the next MAIL,
RCPT and DATA to the write that carries a message's data; ``open_data`` for those
addresses then only reads their replies. Against a real aiosmtpd server on 127.0.0.1
(tests/fixtures/smtp_server.py): what the server received, what was raised, and the
transport's ``ahead`` and ``connections`` counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from digest.mail import SendError, SmtpTransport, dot_stuffed
from tests.fixtures.smtp_server import FaultySMTP, SmtpTestServer

SENDER = "digest@example.org"


def wire(addr: str, n: int) -> bytes:
    """Return a small message (CRLF lines) to ``addr``; its body has lines DATA would
    mistake for commands or for the end of the data if they were not stuffed."""
    return (
        f"From: Research Digest <{SENDER}>\r\n"
        f"To: <{addr}>\r\n"
        f"Subject: digest {n}\r\n"
        f"Message-ID: <{n}.ahead@example.org>\r\n"
        "\r\n"
        f"Paper {n}\r\n"
        ".\r\n"
        ".leading dot survives\r\n"
        "MAIL FROM:<not-a-command@example.org>\r\n"
    ).encode("ascii")


def data_of(payload: bytes) -> bytes:
    """Return ``payload`` in DATA's form, its final "." line included."""
    stuffed = dot_stuffed(payload)
    assert stuffed is not None
    return stuffed + b".\r\n"


def envelope_of(addr: str) -> tuple[str, list[str]]:
    return SENDER, [addr]


@pytest.fixture
def server(make_smtp_server: Callable[..., SmtpTestServer]) -> SmtpTestServer:
    """A server that offers PIPELINING."""
    return make_smtp_server(pipelining=True)


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """Record every chunk the test servers read from a client, in order."""
    seen: list[bytes] = []
    original = FaultySMTP.data_received

    def recording(self: FaultySMTP, data: bytes) -> None:
        seen.append(bytes(data))
        original(self, data)

    monkeypatch.setattr(FaultySMTP, "data_received", recording)
    yield seen


def delivered(server: SmtpTestServer, addr: str) -> list[bytes]:
    return [m.data for m in server.by_recipient(addr)]


def send_two(transport: SmtpTransport, first: str, second: str) -> tuple[str, str]:
    """Send ``first`` with ``second``'s envelope ahead, then ``second``; return replies."""
    transport.open_data(*envelope_of(first))
    one = transport.finish_data(data_of(wire(first, 1)), then=envelope_of(second))
    transport.open_data(*envelope_of(second))
    two = transport.finish_data(data_of(wire(second, 2)))
    return one, two



def first_fails_with_the_second_ahead(transport: SmtpTransport) -> pytest.ExceptionInfo[SendError]:
    """Send a@example.org's message (the 1st) with b@example.org's envelope written ahead;
    return the SendError its data met."""
    transport.open_data(*envelope_of("a@example.org"))
    with pytest.raises(SendError) as info:
        transport.finish_data(data_of(wire("a@example.org", 1)),
                              then=envelope_of("b@example.org"))
    return info


def send_second_on_a_new_connection(transport: SmtpTransport) -> None:
    """Send b@example.org's message (the 2nd); it must take the transport's 2nd connection."""
    transport.open_data(*envelope_of("b@example.org"))
    assert transport.finish_data(data_of(wire("b@example.org", 2))).startswith("250")
    assert transport.connections == 2


def second_arrived_on_connection_2(server: SmtpTestServer) -> None:
    """Assert the server took b@example.org's message once, intact, on connection 2."""
    [second] = server.by_recipient("b@example.org")
    assert (second.data, second.connection) == (wire("b@example.org", 2), 2)

def test_the_next_envelope_goes_out_with_the_data_and_both_arrive_once(
    server: SmtpTestServer, reads: list[bytes]
) -> None:
    with SmtpTransport(server.settings()) as transport:
        one, two = send_two(transport, "a@example.org", "b@example.org")
        assert one.startswith("250") and two.startswith("250")
        assert (transport.ahead, transport.connections, transport.pipelined) == (1, 1, 2)
    assert delivered(server, "a@example.org") == [wire("a@example.org", 1)]
    assert delivered(server, "b@example.org") == [wire("b@example.org", 2)]
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"], ["b@example.org"]]
    assert server.connections == 1
    # The server read the first message's end and the second's envelope at once.
    together = b"\r\n.\r\nMAIL FROM:<digest@example.org>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"
    assert [chunk for chunk in reads if chunk.endswith(together)] != []
    # ...and never the second envelope on its own.
    assert [chunk for chunk in reads if chunk.startswith(b"MAIL FROM:<digest@example.org>\r\n"
                                                         b"RCPT TO:<b@example.org>")] == []


def test_a_chain_of_messages_each_with_the_next_envelope_ahead(server: SmtpTestServer) -> None:
    addrs = [f"r{n}@example.org" for n in range(5)]
    with SmtpTransport(server.settings()) as transport:
        for n, addr in enumerate(addrs):
            transport.open_data(*envelope_of(addr))
            following = envelope_of(addrs[n + 1]) if n + 1 < len(addrs) else None
            assert transport.finish_data(data_of(wire(addr, n)), then=following)[:3] == "250"
        assert (transport.ahead, transport.connections) == (4, 1)
    assert [m.data for m in server.messages] == [wire(a, n) for n, a in enumerate(addrs)]
    assert server.connections == 1


@pytest.mark.parametrize(
    ("reply", "code", "permanent"),
    [
        ("550 5.7.1 Policy", 550, True),
        ("554 5.7.1 Rejected as spam", 554, True),
        ("452 4.3.1 Insufficient storage", 452, False),
        ("451 4.3.0 Queue full", 451, False),
    ],
)
def test_refused_data_with_the_next_envelope_ahead_then_the_next_goes(
    server: SmtpTestServer, reads: list[bytes], reply: str, code: int, permanent: bool
) -> None:
    server.fail("data", reply, recipient="a@example.org")
    with SmtpTransport(server.settings()) as transport:
        info = first_fails_with_the_second_ahead(transport)
        err = info.value
        assert (err.code, err.permanent, err.stage, err.after_data) == (
            code, permanent, "data", False)
        assert transport.ahead == 1
        transport.open_data(*envelope_of("b@example.org"))
        assert transport.finish_data(data_of(wire("b@example.org", 2))).startswith("250")
        assert transport.connections == 1
    assert delivered(server, "a@example.org") == []
    assert delivered(server, "b@example.org") == [wire("b@example.org", 2)]
    assert server.connections == 1
    # The refusal ended the transaction: no RSET between it and the envelope ahead.
    assert b"RSET\r\n" not in b"".join(reads).upper()


def test_421_after_data_with_the_next_envelope_ahead_reconnects_for_it(
    server: SmtpTestServer,
) -> None:
    server.fail("data", "421 4.4.2 Timeout, closing", recipient="a@example.org")
    with SmtpTransport(server.settings()) as transport:
        info = first_fails_with_the_second_ahead(transport)
        err = info.value
        assert (err.code, err.permanent, err.stage, err.after_data) == (421, False, "data", False)
        send_second_on_a_new_connection(transport)
    assert delivered(server, "a@example.org") == []
    second_arrived_on_connection_2(server)
    assert server.connections == 2


def test_no_reply_after_data_with_the_next_envelope_ahead_is_unknown_and_the_next_goes(
    server: SmtpTestServer,
) -> None:
    server.fail("data", action="drop", recipient="a@example.org")
    with SmtpTransport(server.settings()) as transport:
        info = first_fails_with_the_second_ahead(transport)
        err = info.value
        assert err.after_data
        assert (err.code, err.permanent, err.stage) == (None, False, "after-data")
        assert "may have been delivered" in str(err)
        send_second_on_a_new_connection(transport)
    # The server took the first before it died (the case a resend would duplicate).
    assert delivered(server, "a@example.org") == [wire("a@example.org", 1)]
    second_arrived_on_connection_2(server)
    assert server.connections == 2


def test_timeout_after_data_with_the_next_envelope_ahead_is_unknown_and_the_next_goes(
    server: SmtpTestServer,
) -> None:
    server.fail("data", action="hang", recipient="a@example.org", accept=False)
    with SmtpTransport(server.settings(timeout=0.5)) as transport:
        info = first_fails_with_the_second_ahead(transport)
        assert info.value.after_data and "timed out" in str(info.value)
        send_second_on_a_new_connection(transport)
    assert delivered(server, "a@example.org") == []
    second_arrived_on_connection_2(server)


def test_connection_closed_after_the_250_with_the_next_envelope_ahead_reconnects(
    server: SmtpTestServer,
) -> None:
    # The envelope ahead found no server: its replies fail at MAIL, before anything of
    # the second message was committed, so one fresh attempt carries it.
    server.fail("data", "250 2.0.0 Queued", action="drop-after", recipient="a@example.org")
    with SmtpTransport(server.settings()) as transport:
        one, two = send_two(transport, "a@example.org", "b@example.org")
        assert one.startswith("250 2.0.0") and two.startswith("250")
        assert (transport.ahead, transport.connections) == (1, 2)
    assert delivered(server, "a@example.org") == [wire("a@example.org", 1)]
    second_arrived_on_connection_2(server)


def test_the_envelope_ahead_refused_at_rcpt_then_a_third_message_goes(
    server: SmtpTestServer,
) -> None:
    server.fail("rcpt", "550 5.1.1 No such user", recipient="gone@example.org")
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        assert transport.finish_data(data_of(wire("a@example.org", 1)),
                                     then=envelope_of("gone@example.org")).startswith("250")
        with pytest.raises(SendError) as info:
            transport.open_data(*envelope_of("gone@example.org"))
        err = info.value
        assert (err.code, err.permanent, err.stage, err.after_data) == (550, True, "rcpt", False)
        with pytest.raises(RuntimeError):  # not in DATA: nothing to finish
            transport.finish_data(data_of(wire("gone@example.org", 2)))
        transport.open_data(*envelope_of("c@example.org"))
        assert transport.finish_data(data_of(wire("c@example.org", 3))).startswith("250")
        assert (transport.ahead, transport.connections) == (1, 1)
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"], ["c@example.org"]]
    assert delivered(server, "c@example.org") == [wire("c@example.org", 3)]
    assert server.connections == 1


def test_the_envelope_ahead_with_one_of_two_recipients_refused_sends_nothing_of_it(
    server: SmtpTestServer, reads: list[bytes]
) -> None:
    # One recipient accepted: the server answers DATA with 354, so the client must leave
    # without the message's data (dropping the connection) for nothing to be delivered.
    server.fail("rcpt", "550 5.1.1 No such user", recipient="gone@example.org")
    two = (SENDER, ["b@example.org", "gone@example.org"])
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=two)
        with pytest.raises(SendError) as info:
            transport.open_data(*two)
        assert (info.value.code, info.value.permanent, info.value.stage) == (550, True, "rcpt")
        assert transport.connections == 1  # dropped, not yet reopened
        transport.open_data(*envelope_of("c@example.org"))
        assert transport.finish_data(data_of(wire("c@example.org", 3))).startswith("250")
        assert transport.connections == 2
    assert [(m.rcpt_tos, m.connection) for m in server.messages] == [
        (["a@example.org"], 1), (["c@example.org"], 2)]
    assert delivered(server, "b@example.org") == []
    # Nothing more was written into that DATA: an RSET would be taken for the text.
    assert b"RSET\r\n" not in b"".join(reads).upper()


def test_the_envelope_ahead_refused_at_mail_with_421_reconnects_for_the_next(
    server: SmtpTestServer,
) -> None:
    server.fail("mail", "421 4.3.2 Service shutting down", skip=1)
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=envelope_of("b@example.org"))
        with pytest.raises(SendError) as info:
            transport.open_data(*envelope_of("b@example.org"))
        assert (info.value.code, info.value.permanent, info.value.stage) == (421, False, "mail")
        transport.open_data(*envelope_of("c@example.org"))
        assert transport.finish_data(data_of(wire("c@example.org", 3))).startswith("250")
        assert transport.connections == 2
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"], ["c@example.org"]]


def test_without_pipelining_nothing_is_written_ahead(
    make_smtp_server: Callable[..., SmtpTestServer], reads: list[bytes]
) -> None:
    server = make_smtp_server(pipelining=False)
    addrs = ["a@example.org", "b@example.org", "c@example.org"]
    with SmtpTransport(server.settings()) as transport:
        for n, addr in enumerate(addrs):
            transport.open_data(*envelope_of(addr))
            following = envelope_of(addrs[n + 1]) if n + 1 < len(addrs) else None
            assert transport.finish_data(data_of(wire(addr, n)), then=following)[:3] == "250"
        assert (transport.ahead, transport.pipelined, transport.connections) == (0, 0, 1)
    assert [m.data for m in server.messages] == [wire(a, n) for n, a in enumerate(addrs)]
    assert server.pipelined == 0
    # Each MAIL came in a read of its own, never after a message's data.
    assert not any(b"\r\n.\r\nMAIL" in chunk for chunk in reads)


def test_addresses_that_need_quoting_are_not_written_ahead(server: SmtpTestServer) -> None:
    # Not plain ASCII: the envelope is said by smtplib in open_data, not written ahead.
    odd = "first last@example.org"
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=envelope_of(odd))
        assert transport.ahead == 0
        transport.open_data(*envelope_of("b@example.org"))
        transport.finish_data(data_of(wire("b@example.org", 2)))
        assert transport.connections == 1
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"], ["b@example.org"]]


def test_open_data_for_other_addresses_drops_the_envelope_ahead(
    server: SmtpTestServer,
) -> None:
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=envelope_of("b@example.org"))
        # The caller changed its mind: another message goes next.
        transport.open_data(*envelope_of("c@example.org"))
        assert transport.finish_data(data_of(wire("c@example.org", 3))).startswith("250")
        assert (transport.ahead, transport.connections) == (1, 2)
        # b's turn comes later, said afresh on the new connection.
        send_second_on_a_new_connection(transport)
    assert [(m.rcpt_tos, m.connection) for m in server.messages] == [
        (["a@example.org"], 1), (["c@example.org"], 2), (["b@example.org"], 2)]
    assert delivered(server, "c@example.org") == [wire("c@example.org", 3)]
    assert delivered(server, "b@example.org") == [wire("b@example.org", 2)]


def test_send_reads_the_envelope_written_ahead_for_its_message(server: SmtpTestServer) -> None:
    payload = wire("b@example.org", 2)
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=envelope_of("b@example.org"))
        assert transport.send_wire(SENDER, ["b@example.org"], payload).startswith("250")
        assert transport.connections == 1
    assert [m.data for m in server.messages] == [wire("a@example.org", 1), payload]


@pytest.mark.parametrize("pipelining", [False, True], ids=["one-by-one", "pipelined"])
def test_close_in_data_delivers_nothing_and_raises_nothing(
    make_smtp_server: Callable[..., SmtpTestServer], reads: list[bytes], pipelining: bool
) -> None:
    server = make_smtp_server(pipelining=pipelining)
    transport = SmtpTransport(server.settings())
    transport.open_data(*envelope_of("a@example.org"))
    transport.close()
    transport.close()  # twice is harmless
    # Dropped without a word: in DATA a QUIT would be taken for the message's text.
    assert b"QUIT" not in b"".join(reads).upper()
    with pytest.raises(RuntimeError):
        transport.finish_data(data_of(wire("a@example.org", 1)))
    assert server.messages == []
    # The transport serves again afterwards, on a new connection.
    with transport:
        transport.send_wire(SENDER, ["b@example.org"], wire("b@example.org", 2))
    assert [(m.rcpt_tos, m.connection) for m in server.messages] == [(["b@example.org"], 2)]


def test_close_with_an_envelope_ahead_delivers_nothing_of_it(
    server: SmtpTestServer, reads: list[bytes]
) -> None:
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)), then=envelope_of("b@example.org"))
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"]]
    # The server is at 354 for b's envelope: a QUIT would be taken for b's text.
    assert b"QUIT" not in b"".join(reads).upper()


def test_close_after_a_message_without_an_envelope_ahead_says_quit(
    server: SmtpTestServer, reads: list[bytes]
) -> None:
    with SmtpTransport(server.settings()) as transport:
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)))
    assert b"".join(reads).upper().endswith(b"QUIT\r\n")


def test_finish_data_without_open_data_raises(server: SmtpTestServer) -> None:
    with SmtpTransport(server.settings()) as transport:
        with pytest.raises(RuntimeError):
            transport.finish_data(data_of(wire("a@example.org", 1)))
        transport.open()
        with pytest.raises(RuntimeError):  # connected, but not in DATA
            transport.finish_data(data_of(wire("a@example.org", 1)),
                                  then=envelope_of("b@example.org"))
        transport.open_data(*envelope_of("a@example.org"))
        transport.finish_data(data_of(wire("a@example.org", 1)))
        with pytest.raises(RuntimeError):  # the message is finished: no second time
            transport.finish_data(data_of(wire("a@example.org", 1)))
        assert transport.ahead == 0
    assert [m.rcpt_tos for m in server.messages] == [["a@example.org"]]
