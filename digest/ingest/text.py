"""Text clean-up for titles, abstracts and author lists, without mangling LaTeX."""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata
from dataclasses import fields, replace
from typing import Any

from digest.models import PAPER_DOI_MAX, PAPER_KEY_MAX, PAPER_SOURCE_MAX, Paper, without_nul

# Only real HTML tags count as markup: "$a<b$ and $c > d$" must never look like a tag, so a
# tag name has to be followed by ">", "/>" or whitespace plus attributes.
_TAG_NAMES = (
    "a|abbr|b|big|blockquote|br|caption|cite|code|dd|div|dl|dt|em|font|h[1-6]|hr|i|img|li|"
    "ol|p|pre|q|s|small|span|strike|strong|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul|"
    "jats:[a-z-]+|mml:[a-z]+|math|sc|scp|"
    # MathML without a prefix, as physics publishers' feeds put formulas in titles.
    "mrow|mi|mn|mo|mtext|mspace|msub|msup|msubsup|mfrac|msqrt|mroot|mstyle|mover|"
    "munder|munderover|mtable|mtr|mtd|mpadded|mphantom|menclose|mfenced|mmultiscripts|"
    "mprescripts|semantics|annotation|annotation-xml"
)
# A formula's TeX or content markup beside its MathML: the same formula a second time.
_ANNOTATION_OPEN = re.compile(r"<(?:mml:)?annotation(?:-xml)?(?:\s[^<>]*)?>", re.IGNORECASE)
_ANNOTATION_CLOSE = re.compile(r"</(?:mml:)?annotation(?:-xml)?>", re.IGNORECASE)
_TAG = re.compile(rf"</?(?:{_TAG_NAMES})(?:\s[^<>]*)?/?>", re.IGNORECASE)
# A character reference with its semicolon. Text without tags is decoded only of these:
# html.unescape also reads the legacy names without one ("&not", "&copy"), which would
# turn a bare "&" of plain text ("A&notation") into another character.
_ENTITY = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BLOCK_TAG = re.compile(r"</?(?:p|div|br|li|h[1-6]|tr|blockquote)(?:\s[^<>]*)?/?>", re.I)
_ARXIV_PREFIX = re.compile(
    r"^\s*arXiv:\S+\s+Announce\s+Type:\s*[\w-]+\s*(?:Abstract:\s*)?", re.IGNORECASE
)
# A <div> holding only text, then whether its attributes name the class boxTitle: one
# expression for both tried every class attribute of an unclosed tag against every
# other, quadratic in a hostile description.
_TEXT_DIV = re.compile(r"<div\s([^<>]*)>([^<>]*)</div>", re.IGNORECASE)
_BOX_CLASS = re.compile(r"class=\"[^\"]*boxTitle[^\"]*\"", re.IGNORECASE)
# "Abstract" (and OUP's "Summary" section) only say that the abstract starts here.
_ABSTRACT_LABELS = re.compile(r"(?:Abstract(?:\s*:\s*|\s+(?=[A-Z]))|Summary\s*:\s*)+")
# bioRxiv's initials, each with its dot ("N.", "E. A.", "P.-C."): without the dots, the
# given names of "Guanglin Niu, Bo Li" read as initials of the surname before them.
_INITIALS = re.compile(r"^(?:[A-Z][a-z]?\.\s?-?)+$")


def fitting_key(key: str) -> str:
    """Return ``key``, or when it is longer than the store keeps, its head and a hash.

    A paper with neither arXiv id nor DOI is keyed ``<source name>:<entry id>``, and a
    long feed URL plus a long entry id pass PAPER_KEY_MAX. The hash of the whole key
    keeps it the same paper each time it is read, and apart from its neighbours.
    """
    if len(key) <= PAPER_KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{key[: PAPER_KEY_MAX - len(digest) - 1]}#{digest}"


# No paper's title is this long (arXiv's longest run to ~300 characters); a feed whose
# title element holds more (a whole abstract, a page's text) would put all of it in
# every digest listing the paper, and on the web pages naming it.
PAPER_TITLE_MAX = 1000


def short_title(title: str) -> str:
    """Return a title cut to PAPER_TITLE_MAX characters at a word, with an ellipsis."""
    if len(title) <= PAPER_TITLE_MAX:
        return title
    cut = title[: PAPER_TITLE_MAX - 1]
    space = cut.rfind(" ")
    if space > PAPER_TITLE_MAX // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def storable(paper: Paper) -> Paper:
    """Return the paper as the store can keep it on any database.

    NUL characters are dropped from every text field: JSON may carry one (``"\\u0000"``
    in a Hugging Face answer or a JSON-lines file); XML cannot. An over-long key is
    shortened (fitting_key), an over-long source name cut (it is only a label), and a
    DOI longer than any DOI left out. On PostgreSQL, which enforces what SQLite does
    not, one such paper failed the save of its source's whole batch. A title longer than
    any title is cut (short_title): all of it went into every digest listing the paper.
    """
    changed: dict[str, Any] = {}
    for item in fields(paper):
        value = getattr(paper, item.name)
        if isinstance(value, str) and "\x00" in value:
            changed[item.name] = without_nul(value)
        elif isinstance(value, tuple) and any("\x00" in v for v in value if isinstance(v, str)):
            changed[item.name] = tuple(
                without_nul(v) if isinstance(v, str) else v for v in value
            )
    key = fitting_key(changed.get("key", paper.key))
    if key != paper.key:
        changed["key"] = key
    title = changed.get("title", paper.title)
    if len(title) > PAPER_TITLE_MAX:
        changed["title"] = short_title(title)
    source = changed.get("source", paper.source)
    if len(source) > PAPER_SOURCE_MAX:
        changed["source"] = source[:PAPER_SOURCE_MAX]
    doi = changed.get("doi", paper.doi)
    if doi is not None and len(doi) > PAPER_DOI_MAX:
        changed["doi"] = None
    return replace(paper, **changed) if changed else paper


def _windows_1252(code: int) -> str:
    try:
        return bytes([code]).decode("cp1252")
    except UnicodeDecodeError:
        # 0x81, 0x8D, 0x8F, 0x90, 0x9D: no character in Windows-1252 either; kept, as
        # they may be the second byte of UTF-8 read as Latin-1 ("Ã\x81" is "Á").
        return chr(code)


# The C1 control characters (U+0080-U+009F) never belong in a paper's text: they are
# Windows-1252 bytes (curly quotes, dashes, "…", "™", "€") read as Latin-1, by a feed
# declared ISO-8859-1 or served as charset=iso-8859-1 that was saved on Windows, which
# browsers read as Windows-1252 (the WHATWG Encoding Standard makes the labels one).
_C1_AS_WINDOWS_1252 = {code: _windows_1252(code) for code in range(0x80, 0xA0)}
_BYTE_OF = {char: code for code, char in _C1_AS_WINDOWS_1252.items()}
_BYTE_OF.update({chr(code): code for code in range(0xA0, 0x100)})
# Characters no reader sees that split or hide inside words: a soft hyphen
# ("un\u00adlearning" was two words to the ranker), zero-width spaces, a word joiner, a
# byte order mark inside the text, and control characters (JSON may carry any).
_UNSEEN = "\u200b\u2060\ufeff\x7f" + "".join(
    chr(code) for code in range(0x01, 0x20) if not chr(code).isspace())
_AS_READ: dict[int, str | None] = {
    **_C1_AS_WINDOWS_1252, **{ord(char): None for char in _UNSEEN}}
_TRANSLATED = re.compile(f"[\x80-\x9f{_UNSEEN}]")
# A soft hyphen after a lead byte's character may be UTF-8 read as Latin-1 ("Ã\u00ad" is
# "í"): readable() repairs it, then drops the rest.
_SOFT_HYPHEN = re.compile("(?<![\u00c2-\u00f4])\u00ad")


# UTF-8 read as Latin-1 or Windows-1252 ("BÃ¤ckstrÃ¶m", "â€™"): a lead byte's
# character (U+00C2-U+00F4) followed by as many continuation bytes' characters
# (U+00A0-U+00BF, or what Windows-1252 reads 0x80-0x9F as) as it announces.
_CONTINUATION = "".join(re.escape(c) for c, code in _BYTE_OF.items() if code < 0xC0)
_MOJIBAKE = re.compile(
    f"[\u00c2-\u00df][{_CONTINUATION}]|[\u00e0-\u00ef][{_CONTINUATION}]{{2}}"
    f"|[\u00f0-\u00f4][{_CONTINUATION}]{{3}}"
)


def _unmangled(found: re.Match[str]) -> str:
    """Return the character whose UTF-8 bytes the match spells; the match when none is."""
    try:
        char = bytes(_BYTE_OF[c] for c in found.group()).decode("utf-8")
    except UnicodeDecodeError:
        return found.group()
    # A letter, digit, punctuation, symbol or space: "Ö" before a no-break space spells
    # U+05A0, a Hebrew accent, which no such text means.
    if unicodedata.category(char)[0] not in "LNPSZ":
        return found.group()
    return char


# LaTeX's accents in text (arXiv's metadata is its authors' TeX: "R\'{e}nyi",
# "Fr\'echet", "G\"odel", "{\"o}", "\c{c}"): the mark each command puts on its letter.
_ACCENT_MARKS = {"'": "\u0301", "`": "\u0300", '"': "\u0308", "^": "\u0302", "~": "\u0303",
                 "=": "\u0304", ".": "\u0307", "c": "\u0327", "v": "\u030c", "u": "\u0306",
                 "H": "\u030b", "k": "\u0328", "r": "\u030a"}
# A symbol accent takes its letter braced or not (\'e, \'{e}); a letter accent (\c, \v)
# only braced, as "\cdot" or "\vec" are other commands. The whole may be braced once
# more ({\"o}); \i and \j are the dotless letters an accent goes on.
_ACCENT = re.compile(
    r"(?P<open>\{)?\\(?:(?P<symbol>['`\"^~=.])(?:\{(?P<braced>[A-Za-z]|\\[ij])\}|"
    r"(?P<bare>[A-Za-z]|\\[ij](?![A-Za-z]) ?))|(?P<letter>[cvuHkr])\{(?P<lettered>[A-Za-z]|"
    r"\\[ij])\})(?(open)\})"
)


def _accented(found: re.Match[str]) -> str:
    base = found.group("braced") or found.group("bare") or found.group("lettered")
    mark = _ACCENT_MARKS[found.group("symbol") or found.group("letter")]
    letter = {"\\i": "i", "\\j": "j"}.get(base.rstrip(), base)
    return unicodedata.normalize("NFC", letter + mark)


def without_tex_accents(text: str) -> str:
    """Return text with LaTeX's accent commands on single letters written as accented
    letters ("R\\'{e}nyi" is "Rényi"); math ("$a<b$", "$\\hat{x}$") has none and stays.
    """
    if "\\" not in text:
        return text
    return _ACCENT.sub(_accented, text)


def readable(paper: Paper) -> Paper:
    """Return the paper with its title, abstract and authors as a reader reads them.

    LaTeX's accents become accented letters: arXiv hands out its authors' TeX, so an
    abstract said "R\\'{e}nyi entropy" and "Fr\\'echet distance", which no subscriber's
    "Rényi" or "Fréchet" matched (without_tex_accents). UTF-8 read as Latin-1 is
    repaired: "Karl BÃ¤ckstrÃ¶m" is "Karl Bäckström" (a feed written from text its
    producer had decoded with the wrong charset; arXiv's API answers as recorded by
    clients that took it for Latin-1). Only sequences that spell a character in UTF-8
    are replaced: "Ã" or "â" before anything else stays.
    """
    changed: dict[str, Any] = {}
    for name in ("title", "abstract"):
        value = getattr(paper, name)
        repaired = _repaired(value)
        if repaired != value:
            changed[name] = repaired
    authors = tuple(_repaired(a) for a in paper.authors)
    if authors != paper.authors:
        changed["authors"] = authors
    return replace(paper, **changed) if changed else paper


def _repaired(text: str) -> str:
    text = without_tex_accents(text)
    if not _MOJIBAKE.search(text):
        return text
    return squash(_MOJIBAKE.sub(_unmangled, text).replace("\u00ad", ""))


def squash(text: str | None) -> str:
    """Collapse every run of whitespace to one space and trim the ends.

    C1 control characters are read as the Windows-1252 characters they were first:
    before the split, which took U+0085 (Windows-1252's "…") for a line break. Soft
    hyphens, zero-width spaces, word joiners, byte order marks and other control
    characters are dropped.
    """
    text = text or ""
    if _TRANSLATED.search(text):
        text = text.translate(_AS_READ)
    if "\u00ad" in text:
        text = _SOFT_HYPHEN.sub("", text)
    return " ".join(text.split())


def looks_like_html(text: str) -> bool:
    """Return True when the text holds real HTML tags (not LaTeX comparisons)."""
    return _TAG.search(text) is not None


def html_to_text(text: str) -> str:
    """Drop HTML tags and decode entities once.

    A feed's text is HTML even without a tag in it: an RSS title escaped twice
    ("Gene &amp;amp; protein", "&amp;#8217;", as WordPress and publishers send them) or a
    CDATA abstract ("&alpha;-helix", "a &lt; b") holds references and no tag. They were
    decoded only beside a tag, so readers saw "&amp;" and "&alpha;" as they came. LaTeX
    is not touched: "$a<b$" holds no reference.
    """
    if not looks_like_html(text):
        return squash(decode_entities(text))
    # Structured-abstract headings (Silverchair/OUP) read as "Results: ..." once tags go.
    text = _TEXT_DIV.sub(_box_title, text)
    if "annotation" in text:
        text = _without_annotations(text)
    text = _BLOCK_TAG.sub(" ", text)
    text = _TAG.sub("", text)
    return squash(html.unescape(text))


def _without_annotations(text: str) -> str:
    """Drop each MathML annotation with its content, in one pass: once an opening tag has
    no closing one after it, no later one has."""
    kept: list[str] = []
    pos = 0
    while (opened := _ANNOTATION_OPEN.search(text, pos)) is not None:
        closed = _ANNOTATION_CLOSE.search(text, opened.end())
        if closed is None:
            break
        kept.append(text[pos : opened.start()])
        pos = closed.end()
    kept.append(text[pos:])
    return "".join(kept)


def decode_entities(text: str) -> str:
    """Decode the character references that end in ";" ("&amp;", "&#8217;", "&alpha;")."""
    if "&" not in text:
        return text
    return _ENTITY.sub(lambda ref: html.unescape(ref.group()), text)


def _box_title(div: re.Match[str]) -> str:
    """Return a structured-abstract heading as "Heading: "; any other div as it is."""
    if _BOX_CLASS.search(div.group(1)) is None:
        return div.group()
    return f" {div.group(2).strip()}: "


# The headings of a structured abstract (bioRxiv, medRxiv, BMC, OUP). bioRxiv's feed
# drops the markup around them and runs each into its text: "BackgroundBacterial
# exotoxins ... sequences. ResultsWe introduce ...". Words that also begin model names
# ("ContextNet", "DesignBench", "SettingX") are not among them.
_HEADING_WORDS = (
    "Background|Motivation|Objectives?|Aims?|Methods|Methodology|Materials and [Mm]ethods|"
    "Methods (?:and|&) [Rr]esults|Results|Results and [Dd]iscussion|Findings|"
    "Conclusions?|Interpretation|Availability and [Ii]mplementation|"
    "Supplementary [Ii]nformation"
)
# A heading at the start or after a sentence's end, glued to a word that begins a
# sentence: a capital and a lower-case letter ("We"), an acronym ("RNA-seq"), or "A"/"I".
_GLUED_HEADING = re.compile(
    rf"(?:^|(?<=[.!?] ))({_HEADING_WORDS})(?=[A-Z][a-z]|[A-Z]{{2,}}\b|[AI] )"
)


def separate_headings(text: str) -> str:
    """Return an abstract with each structured-abstract heading that runs into its text
    written as "Heading: text" ("ResultsWe introduce" reads "Results: We introduce").
    """
    return _GLUED_HEADING.sub(r"\1: ", text)


def strip_arxiv_prefix(text: str) -> str:
    """Remove rss.arxiv.org's "arXiv:XXXX Announce Type: new Abstract:" lead-in."""
    return _ARXIV_PREFIX.sub("", text, count=1)


def strip_abstract_label(text: str) -> str:
    """Remove leading "Abstract" / "Summary:" labels that publishers put before the text."""
    text = squash(text)
    # All leading labels in one match: cutting them off one by one copied the rest of
    # the text each time, quadratic in a hostile feed's description of labels.
    found = _ABSTRACT_LABELS.match(text)
    return text[found.end() :] if found else text


def split_authors(text: str | None) -> tuple[str, ...]:
    """Split "A, B and C" or bioRxiv's "Hou, N., Wu, Z." into names ("N. Hou", "Z. Wu")."""
    text = squash(text)
    if not text:
        return ()
    surnames_first = _surnames_first(text)
    if surnames_first is not None:
        return surnames_first
    return tuple(p.strip() for p in re.split(r",|;|\band\b|&", text) if p.strip())


def _surnames_first(text: str) -> tuple[str, ...] | None:
    """Read bioRxiv's "Surname, I., Surname, I." as names; None for any other shape.

    A name without initials (a group, a one-word name) is closed by a second comma:
    "Trull, A., nf-core community,, Worthey, E. A." is three authors. Dropping the
    empty piece, as a plain split does, paired nothing and listed "Trull" and "A." as
    two authors.
    """
    pieces = [p.strip() for p in re.split(r"[,;]", text)]
    if pieces[-1] == "":
        pieces.pop()  # a trailing comma
    names: list[str] = []
    paired = False
    i = 0
    while i < len(pieces):
        name = pieces[i]
        after = pieces[i + 1] if i + 1 < len(pieces) else None
        if not name or after is None:
            return None
        if after and _INITIALS.match(after):
            names.append(f"{after} {name}")
            paired = True
        elif after:
            return None
        else:
            names.append(name)
        i += 2
    return tuple(names) if paired else None
