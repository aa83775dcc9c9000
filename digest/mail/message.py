"""Build RFC-correct MIME messages: multipart/alternative, list headers, no header injection.

``build_message`` writes the wire bytes itself (headers folded and RFC 2047-encoded here,
bodies quoted-printable with ``binascii``) and returns them inside an ``EmailMessage``
holding the same headers and parts as the stdlib parser would make of those bytes.
Building and serializing through ``EmailMessage.set_content`` and the generator cost
~7 ms per 30 KB digest, most of the send phase; this writer costs a few hundred
microseconds. The result stays an ordinary ``EmailMessage`` for every reader.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import random
import re
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from email import policy, quoprimime
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import Policy
from email.utils import format_datetime, getaddresses
from typing import Any

from digest.addresses import ascii_domain
from digest.errors import DeliveryError
from digest.models import RenderedEmail

# Every character str.splitlines() treats as a line boundary, plus the other C0
# controls: none of them may reach a header, where a CR/LF would start a new field.
_HEADER_UNSAFE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]+")
_FIELD_NAME = re.compile(r"^[!-9;-~]+$")  # RFC 5322 ftext: printable ASCII but ":"

# Headers build_message owns; extra_headers may not replace them.
_RESERVED = frozenset(
    name.lower()
    for name in (
        "From", "To", "Cc", "Bcc", "Subject", "Date", "Message-ID", "MIME-Version",
        "Content-Type", "Content-Transfer-Encoding", "List-Id", "List-Unsubscribe",
        "List-Unsubscribe-Post",
    )
)

CRLF = "\r\n"
MAX_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be at most 78 characters (998 MUST)
MAX_QP_LINE = 76  # RFC 2045 6.7: encoded lines at most 76 characters
# RFC 5322 atext: what a display-name word may hold without quoting.
_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+$")
_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_PRINTABLE_ASCII = re.compile(r"^[ -~]*$")
# RFC 2047 5(3): the characters a "Q" encoded word may leave as they are, valid even in
# a display name; a space becomes "_".
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_Q_CHAR = [chr(b) if b in _Q_SAFE else f"={b:02X}" for b in range(256)]
_Q_CHAR[ord(" ")] = "_"
_EW_PREFIX = "=?utf-8?"
_EW_MAX = 75  # RFC 2047 2: an encoded word is at most 75 characters


def make_message_id(
    subscriber_id: int, day: date, domain: str, kind: str = "digest", *, installation: str = ""
) -> str:
    """Return a Message-ID that is the same for every attempt at one (subscriber, day).

    Deterministic, so a retried or re-sent digest carries the same id and receivers
    that deduplicate on Message-ID drop the copy. ``installation`` (the pipeline passes
    its secret key, which only goes into the hash) keeps two installations mailing from
    one domain apart: without it, subscriber 1's digest of a day had one id on both, and
    a reader on both lists could have the second dropped as a duplicate.
    """
    kind = re.sub(r"[^A-Za-z0-9-]", "", kind) or "digest"
    host = re.sub(r"[^A-Za-z0-9.-]", "", domain.rsplit("@", 1)[-1]).strip(".") or "localhost"
    seed = f"{kind}:{subscriber_id}:{day.isoformat()}:{host}:{installation}".encode()
    short = hashlib.sha256(seed).hexdigest()[:12]
    return f"<{kind}.{subscriber_id}.{day.isoformat()}.{short}@{host}>"


def header_text(value: str | None) -> str:
    """Make a value safe for a header: no CR, LF or other control characters, one line."""
    return " ".join(_HEADER_UNSAFE.sub(" ", value or "").split())


def header_url(url: str) -> str:
    """Make a URL safe inside ``<...>`` in a header such as List-Unsubscribe."""
    cleaned = "".join(_HEADER_UNSAFE.sub("", url).split())
    return cleaned.replace("<", "%3C").replace(">", "%3E").replace(",", "%2C")


def make_address(name: str, addr: str) -> Address:
    """Build an Address (RFC 2047-encoded name on output); raise DeliveryError if malformed."""
    spec = addr.strip()
    if not spec or _HEADER_UNSAFE.search(spec) or " " in spec or spec.count("@") != 1:
        raise DeliveryError(
            f"not a deliverable email address: {header_text(addr)!r}",
            "fix or remove this subscriber's address",
            permanent=True,
        )
    local, _, domain = spec.partition("@")
    try:
        # International domains go out as IDNA 2008 A-labels (xn--), never through
        # Python's IDNA 2003 codec ("faß.de" is not fass.de); a non-ASCII local part
        # would need SMTPUTF8, which this mailer does not speak.
        domain = ascii_domain(domain)
        local.encode("ascii")
        return Address(display_name=header_text(name), username=local, domain=domain)
    except (ValueError, IndexError, UnicodeError) as err:
        raise DeliveryError(
            f"not a deliverable email address: {header_text(addr)!r}",
            "fix or remove this subscriber's address",
            permanent=True,
        ) from err


class WireMessage(EmailMessage):
    """An EmailMessage built together with its wire bytes, which serializing returns.

    The headers and parts are those the stdlib parser would make of the bytes. Should
    anyone change the message after it was built, serializing notices and falls back
    to the stdlib generator, so the bytes never disagree with the message.
    """

    def __init__(self) -> None:
        super().__init__(policy=policy.SMTP)
        self._wire = b""
        self._envelope: tuple[str, list[str]] | None = None
        self._built: tuple[object, ...] | None = None

    def as_bytes(self, unixfrom: bool = False, policy: Policy[Any] | None = None) -> bytes:
        """Return the message as bytes: the built wire bytes (CRLF) unless changed since."""
        if not unixfrom and (policy is None or policy.linesep == CRLF):
            wire = self.wire()
            if wire is not None:
                return wire
        return super().as_bytes(unixfrom=unixfrom, policy=policy)

    def wire(self) -> bytes | None:
        """Return the bytes written at build time, or None if the message changed since."""
        return self._wire if self._built == self._state() else None

    def built_envelope(self) -> tuple[str, list[str]] | None:
        """Return (sender, recipients) found at build time, or None if changed since."""
        return self._envelope if self._built == self._state() else None

    def _seal(self, wire: bytes, envelope: tuple[str, list[str]] | None) -> None:
        self._wire = wire
        self._built = self._state()
        self._envelope = envelope if envelope is not None else _raw_envelope(self)

    def _state(self) -> tuple[object, ...]:
        # Everything a change would touch: the raw headers (compared item by item,
        # mostly by identity), the policy, and each part's headers and payload. The
        # payload is read as an attribute: get_payload() parses a header on every call.
        payload = self.get_payload()
        items = payload if isinstance(payload, list) else []
        parts = [item for item in items if isinstance(item, Message)]
        return (
            tuple(self.raw_items()),
            self.policy,
            tuple(map(id, items)),
            tuple((tuple(part.raw_items()), getattr(part, "_payload", None)) for part in parts),
        )


def build_message(
    rendered: RenderedEmail,
    *,
    from_name: str,
    from_addr: str,
    to_name: str,
    to_addr: str,
    message_id: str,
    date: datetime | None,
    list_id: str,
    list_unsubscribe: str | None,
    extra_headers: Mapping[str, str] | None = None,
    list_name: str = "",
    auto_submitted: bool = True,
) -> EmailMessage:
    """Build a multipart/alternative message (text, then HTML) with list headers.

    Without ``date`` the message has no Date header yet: one written ahead of its send
    gets it from ``with_date`` as it goes out.
    """
    sender = make_address(from_name, from_addr)
    recipient = make_address(to_name, to_addr)
    list_host = re.sub(r"[^A-Za-z0-9.-]", "", list_id).strip(".") or "localhost"
    label = header_text(list_name)
    headers: list[tuple[str, str]] = [
        ("From", _address("From", sender)),
        ("To", _address("To", recipient)),
        ("Subject", _unstructured("Subject", header_text(rendered.subject))),
        *([("Date", _date(date))] if date is not None else []),
        ("Message-ID", _clean_message_id(message_id)),
        ("List-Id", f"{_phrase('List-Id', label)} <{list_host}>" if label else f"<{list_host}>"),
    ]
    if list_unsubscribe:
        url = header_url(list_unsubscribe)
        headers.append(("List-Unsubscribe", _bracketed_url(url)))
        if url.lower().startswith(("https://", "http://")):
            # RFC 8058 one-click: the mailbox provider POSTs to the URL; only valid
            # for a web URL, never for mailto:.
            headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    if auto_submitted:
        # A digest is generated by a program, not in reply to anything (RFC 3834):
        # this keeps vacation responders quiet. Precedence and the Exchange header do
        # the same for responders that predate RFC 3834.
        headers.append(("Auto-Submitted", "auto-generated"))
        headers.append(("Precedence", "bulk"))
        headers.append(("X-Auto-Response-Suppress", "OOF, AutoReply"))
    for name, value in (extra_headers or {}).items():
        if not _FIELD_NAME.match(name) or name.lower() in _RESERVED:
            raise ValueError(f"refusing to set header {name!r}")
        headers = [(n, v) for n, v in headers if n.lower() != name.lower()]
        headers.append((name, _unstructured(name, header_text(value))))
    # The envelope is the addresses just written into From and To (what parsing those
    # headers back finds, ~60 us a message), unless a Sender header names another one.
    given = {name.lower() for name in extra_headers or {}}
    known = None if "sender" in given else (_addr_spec(sender), [_addr_spec(recipient)])
    boundary = _boundary()
    headers.append(("MIME-Version", "1.0"))
    headers.append(("Content-Type", f'multipart/alternative;{CRLF} boundary="{boundary}"'))
    return _assemble(
        headers,
        [("plain", _quoted_printable(rendered.text)), ("html", _quoted_printable_html(rendered))],
        boundary=boundary,
        envelope=known,
    )


def with_date(wire: bytes, when: datetime) -> bytes:
    """Return a message's wire bytes (built without ``date``) with a Date header first."""
    # The offset is part of the key: equal instants in two zones are equal datetimes.
    # The header has whole seconds: the send phase reads its clock for each message,
    # and keyed on the second, a worker formats the line once a second rather than once
    # a message (~10 us each; keyed on the instant, every message missed the cache).
    return _date_line(when.replace(microsecond=0), when.utcoffset()) + wire


@functools.lru_cache(maxsize=16)
def _date_line(when: datetime, _offset: timedelta | None) -> bytes:
    return b"Date: " + _date(when).encode("ascii") + b"\r\n"


def _date(when: datetime) -> str:
    return format_datetime(when if when.tzinfo is not None else when.replace(tzinfo=UTC))


def message_to_bytes(message: EmailMessage, *, linesep: str = "\r\n") -> bytes:
    """Serialize a message for the wire (CRLF) or for a file (``linesep="\\n"``)."""
    wire = message.wire() if isinstance(message, WireMessage) else None
    if wire is not None:
        # Every line of the built bytes ends in CRLF and none holds a bare CR or LF
        # (headers are folded, bodies quoted-printable), so this swap is exact.
        return wire if linesep == CRLF else wire.replace(b"\r\n", linesep.encode("ascii"))
    return message.as_bytes(policy=policy.SMTP.clone(linesep=linesep))


def envelope(message: EmailMessage) -> tuple[str, list[str]]:
    """Return (sender, recipients) for the SMTP envelope from the message headers."""
    built = message.built_envelope() if isinstance(message, WireMessage) else None
    if built is not None:
        return built[0], list(built[1])
    sender_header = message["Sender"] or message["From"]
    senders = getaddresses([str(sender_header or "")])
    sender = senders[0][1] if senders else ""
    fields = [str(v) for name in ("To", "Cc", "Bcc") for v in message.get_all(name, [])]
    recipients = [addr for _, addr in getaddresses(fields) if addr]
    if not recipients:
        raise DeliveryError("the message has no recipient", "set a To header", permanent=True)
    return sender, recipients


def _raw_envelope(message: EmailMessage) -> tuple[str, list[str]]:
    # What envelope() finds in the headers, read from the raw values without the header
    # registry: the address parts are the same whether or not display names are decoded.
    raw: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        raw.setdefault(name.lower(), []).append(str(value).replace(CRLF, ""))
    senders = getaddresses(raw.get("sender") or raw.get("from") or [""])
    fields = raw.get("to", []) + raw.get("cc", []) + raw.get("bcc", [])
    return senders[0][1] if senders else "", [addr for _, addr in getaddresses(fields) if addr]


def _clean_message_id(message_id: str) -> str:
    value = header_text(message_id).replace(" ", "")
    if not re.fullmatch(r"<[^<>@\s]+@[^<>@\s]+>", value):
        raise ValueError(f"not a Message-ID: {message_id!r}")
    return value


# -- the writer ---------------------------------------------------------------------------


def _assemble(
    headers: list[tuple[str, str]],
    parts: list[tuple[str, str]],
    *,
    boundary: str,
    envelope: tuple[str, list[str]] | None = None,
) -> WireMessage:
    """Write the wire bytes and the EmailMessage the parser would read from them."""
    message = WireMessage()
    lines = []
    for name, value in headers:
        # Stored as a parser stores a header read from the wire: the raw, folded value,
        # decoded by the header registry when someone reads it.
        message.set_raw(name, value)
        lines.append(f"{name}: {value}{CRLF}")
    lines.append(CRLF)
    subparts: list[Message[str, str] | str] = []
    for subtype, body in parts:
        part = EmailMessage(policy=policy.SMTP)
        part.set_raw("Content-Type", f'text/{subtype}; charset="utf-8"')
        part.set_raw("Content-Transfer-Encoding", "quoted-printable")
        part.set_payload(body)
        subparts.append(part)
        lines.append(
            f"--{boundary}{CRLF}"
            f'Content-Type: text/{subtype}; charset="utf-8"{CRLF}'
            f"Content-Transfer-Encoding: quoted-printable{CRLF}{CRLF}"
        )
        lines.append(body.replace("\n", CRLF))
        lines.append(CRLF)  # the delimiter's own line break (RFC 2046 5.1.1)
    lines.append(f"--{boundary}--{CRLF}")
    message.set_payload(subparts)
    message._seal("".join(lines).encode("ascii"), envelope)
    return message


def _boundary() -> str:
    # Like the stdlib's. "==" never occurs in quoted-printable text (every "=" there
    # starts an escape), so the boundary cannot collide with a body.
    return f"{'=' * 15}{random.randrange(sys.maxsize):019d}=="


def _quoted_printable(text: str) -> str:
    """Encode a text body as quoted-printable lines (<= 76 characters), "\\n"-separated."""
    # Like EmailMessage.set_content: any line ending becomes one, and the body ends
    # with a line break.
    body = text.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    # One C call over the whole body. (Encoding line by line through a cache of lines
    # was slower: a 2,000-paper day has more distinct lines than the cache held, and
    # every link line is unique to its subscriber.)
    data = body.encode("utf-8")
    encoded = binascii.b2a_qp(data, istext=True).decode("ascii")
    if max(map(len, encoded.split("\n"))) > MAX_QP_LINE:
        # binascii can write a 77-character line when one ends in encoded whitespace;
        # the stdlib's encoder then keeps to the limit (over bytes, as latin-1 text).
        encoded = quoprimime.body_encode(data.decode("latin-1"), maxlinelen=MAX_QP_LINE)
    return encoded


def _quoted_printable_html(rendered: RenderedEmail) -> str:
    """Encode the HTML body like ``_quoted_printable``, reusing its shared pieces' encoding."""
    pieces = rendered.html_pieces
    if pieces and "".join(text for text, _ in pieces) == rendered.html:
        encoded = _encode_pieces(pieces)
        if encoded is not None:
            return encoded
    return _quoted_printable(rendered.html)


# Quoted-printable encodes each line on its own, so a run of whole lines encodes the same
# alone as inside the body. A day's digests share most of their HTML (each paper's
# title, authors and abstract lines, the page around them): a shared piece that is a run
# of whole lines is encoded once per process and looked up after (by the string object
# the renderer keeps, whose hash Python has already computed). Lines a per-line cache
# would look up one by one cost more in Python than binascii spends encoding them.
_QP_PIECES: dict[str, str] = {}
# ~1 per paper of the day (a row's head; rows share their tail) and 2 per page shape;
# emptied when full: at most ~13 MB of encoded text on ~1.3 KB pieces.
_QP_MAX_PIECES = 10_000


def _encode_pieces(pieces: tuple[tuple[str, bool], ...]) -> str | None:
    """Return the pieces' text quoted-printable encoded, or None to encode it as a whole.

    None when the text holds a "\\r" (line endings to normalise), or when a line would
    pass 76 characters (the whole body then goes to the stdlib's encoder).
    """
    cache = _QP_PIECES
    out: list[str] = []
    pending: list[str] = []  # pieces not looked up, encoded together
    line_start = True  # the text so far ends at the start of a line

    def flush() -> bool:
        if pending:
            encoded = _b2a_qp_lines("".join(pending))
            if encoded is None:
                return False
            out.append(encoded)
            pending.clear()
        return True

    for text, shared in pieces:
        if "\r" in text:
            return None
        if shared and line_start and text.endswith("\n"):
            found = cache.get(text)
            if found is None:
                found = _b2a_qp_lines(text)
                if found is None:
                    return None
                if len(cache) >= _QP_MAX_PIECES:
                    cache.clear()
                cache[text] = found
            if not flush():
                return None
            out.append(found)
        else:
            pending.append(text)
        if text:
            line_start = text.endswith("\n")
    if not line_start:
        pending.append("\n")  # the body ends with a line break, as _quoted_printable's
    if not flush():
        return None
    return "".join(out)


def _b2a_qp_lines(text: str) -> str | None:
    """Encode whole lines with binascii; None if an encoded line passes 76 characters."""
    encoded = binascii.b2a_qp(text.encode("utf-8"), istext=True).decode("ascii")
    if max(map(len, encoded.split("\n"))) > MAX_QP_LINE:
        return None
    return encoded


def _addr_spec(address: Address) -> str:
    """Write ``local@domain``, the local part quoted when it is not a dot-atom."""
    local = address.username
    if not _DOT_ATOM.match(local):
        local = _quoted_string(local)
    return f"{local}@{address.domain}"


def _address(name: str, address: Address) -> str:
    """Write an address header value: ``phrase <local@domain>``, or the bare address."""
    spec = _addr_spec(address)
    if not address.display_name:
        return spec
    return f"{_phrase(name, address.display_name)} <{spec}>"


def _phrase(name: str, text: str) -> str:
    """Write a display name: atoms as they are, quoted if it has specials, else RFC 2047."""
    words = text.split(" ")
    if all(_ATOM.match(word) and len(word) < MAX_LINE for word in words):
        return _fold(name, words)
    quoted = _quoted_string(text)
    if _PRINTABLE_ASCII.match(text) and len(quoted) <= _EW_MAX:
        return quoted
    return _fold(name, list(_encoded_words(text, _first_room(name))))


def _quoted_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unstructured(name: str, text: str) -> str:
    """Write free text (Subject): ASCII words as they are, runs of other words RFC 2047."""
    tokens: list[str] = []
    run: list[str] = []
    for word in text.split(" "):
        # A word that looks like an encoded word is encoded too, so that a reader's
        # decoder shows it literally.
        if word.isascii() and "=?" not in word and len(word) < MAX_LINE:
            if run:
                tokens.extend(_encoded_words(" ".join(run), _first_room(name, tokens)))
                run = []
            tokens.append(word)
        else:
            run.append(word)
    if run:
        tokens.extend(_encoded_words(" ".join(run), _first_room(name, tokens)))
    return _fold(name, tokens)


def _first_room(name: str, tokens: list[str] | None = None) -> int:
    # An encoded word that opens the header shares its line with "Name: "; any later
    # one can start a line of its own.
    if tokens:
        return _EW_MAX
    room = MAX_LINE - len(name) - 2
    return room if room >= 20 else _EW_MAX


def _bracketed_url(url: str) -> str:
    """Write ``<url>`` (List-Unsubscribe) on one line, however long the URL is."""
    # Not folded, and never RFC 2047-encoded (the stdlib did both past 78 characters):
    # a structured field may not hold encoded words, and receivers that act on the
    # header read the URL verbatim.
    if not url.isascii():
        # A base URL with a raw international host: not ours to guess its encoding;
        # keep the header 7-bit as the stdlib did.
        return _unstructured("List-Unsubscribe", f"<{url}>")
    if len(url) > 900:
        # RFC 2369 2: whitespace inside the brackets is ignored, so a URL longer than a
        # line may be folded anywhere.
        return "<" + f"{CRLF} ".join(url[i : i + 900] for i in range(0, len(url), 900)) + ">"
    return f"<{url}>"


def _fold(name: str, tokens: list[str]) -> str:
    """Join tokens with spaces, starting a new line before one that would pass 78 chars."""
    out: list[str] = []
    width = len(name) + 2  # "Name: "
    for token in tokens:
        if not out:
            out.append(token)
            width += len(token)
        elif width + 1 + len(token) > MAX_LINE:
            out.append(f"{CRLF} {token}")
            width = 1 + len(token)
        else:
            out.append(f" {token}")
            width += 1 + len(token)
    return "".join(out)


def _encoded_words(text: str, first_room: int = _EW_MAX) -> Iterator[str]:
    """Encode text as RFC 2047 UTF-8 words of at most 75 characters, never splitting a char.

    The first word is at most ``first_room`` characters long.
    """
    data = text.encode("utf-8")
    q_length = sum(len(_Q_CHAR[b]) for b in data)
    b_length = (len(data) + 2) // 3 * 4
    use_q = q_length - b_length < 5  # prefer the readable Q, as the stdlib does
    overhead = len(_EW_PREFIX) + len("q??=")

    def limit(room: int) -> int:
        # Q: the encoded length counts; B: the raw bytes, 3 for every 4 characters.
        return room - overhead if use_q else (room - overhead) // 4 * 3

    chunk: list[bytes] = []
    size = 0
    most = limit(first_room)
    for char in text:
        raw = char.encode("utf-8")
        cost = sum(len(_Q_CHAR[b]) for b in raw) if use_q else len(raw)
        if chunk and size + cost > most:
            yield _encoded_word(b"".join(chunk), use_q)
            chunk, size, most = [], 0, limit(_EW_MAX)
        chunk.append(raw)
        size += cost
    if chunk:
        yield _encoded_word(b"".join(chunk), use_q)


def _encoded_word(data: bytes, use_q: bool) -> str:
    if use_q:
        return f"{_EW_PREFIX}q?{''.join(_Q_CHAR[b] for b in data)}?="
    return f"{_EW_PREFIX}b?{base64.b64encode(data).decode('ascii')}?="
