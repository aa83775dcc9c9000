"""Parse and validate the profile form (sign-up and preferences): no Flask, plain values."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from zoneinfo import available_timezones

from digest.ingest.keys import arxiv_doi_key, arxiv_key
from digest.models import Paper, Profile, Subscriber
from digest.taxonomy import Category, categories, category_codes

# Size limits on every field: what a person could reasonably type, and no more.
MAX_INTERESTS = 2000
MAX_ITEM = 120  # one keyword, author name or category code
MAX_ITEMS = 50  # keywords, negative keywords, authors
MAX_CATEGORIES = 40
MAX_SEEDS = 100
MAX_SEEDS_TEXT = 10_000
MAX_BIBTEX = 512 * 1024
MAX_PAPERS = 50
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# A field name ("eprint =") is the first ASCII letter of a run of word characters and
# its rest. Searched from each character of a run, as a plain "[A-Za-z][\w-]*" is, a long
# word with no "=" after it was rescanned from every position: quadratic in an upload
# anyone can send (40 KB of one word took 24 s). Starting only where a run starts, it
# finds the same fields in one pass.
_BIB_FIELD = re.compile(r"(?<![\w-])(?:[^\WA-Za-z]|-)*([A-Za-z][\w-]*)\s*=\s*")
_WORD = re.compile(r"[a-z][a-z0-9-]{2,}")
# SIM905 is off for this one: a word list reads better as prose than as 120 literals.
_STOPWORDS = frozenset(
    """about above after again against also among an and any are based been before being
    between both but can could does doing during each few for from further had has have
    having here how into its itself just more most new not novel now off once only other
    our out over own paper propose proposed same should show some such than that the their
    them then there these they this those through too under until using very via was
    were what when where which while who why will with within without would yet you your
    approach method methods results model models we our use used""".split()  # noqa: SIM905
)


@dataclass(frozen=True)
class Schedule:
    """When and how much a subscriber receives."""

    send_hour: int = 7
    timezone: str = "UTC"
    cadence: str = "daily"
    weekday: int = 0
    max_papers: int = 10
    # A day with nothing relevant: no email ("skip") or a short note ("note").
    empty_digest: str = "skip"
    # 0..1: how much Hugging Face upvotes lift a paper (0: not at all).
    popularity: float = 0.0

    def as_fields(self) -> dict[str, int | str | float]:
        """Return the subscriber columns this schedule sets."""
        return {
            "send_hour": self.send_hour,
            "timezone": self.timezone,
            "cadence": self.cadence,
            "weekday": self.weekday,
            "max_papers": self.max_papers,
            "empty_digest": self.empty_digest,
            "popularity": self.popularity,
        }


EMPTY_DIGEST = ("skip", "note")
# The popularity choices the form offers (any value from 0 to 1 is valid elsewhere).
POPULARITY_CHOICES = ((0.0, "Not at all"), (0.25, "A little"), (0.5, "Half"),
                      (0.75, "Mostly"))


def parse_popularity(raw: str) -> float | None:
    """Return a popularity share from 0 to 1, or None when ``raw`` is not one."""
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None


@dataclass
class FormErrors(Exception):
    """The form has mistakes: {field name: what to fix}."""

    errors: dict[str, str] = field(default_factory=dict)


def category_groups() -> list[tuple[str, list[Category]]]:
    """Return the taxonomy grouped by archive group, in file order."""
    groups: dict[str, list[Category]] = {}
    for cat in categories():
        groups.setdefault(cat.group, []).append(cat)
    return list(groups.items())


@cache
def timezones() -> tuple[str, ...]:
    """Return the IANA time zone names offered in the form, sorted."""
    return tuple(sorted(name for name in available_timezones() if "/" in name or name == "UTC"))


def timezones_with(*names: str) -> tuple[str, ...]:
    """Return the form's time zones with these among them (the operator's default, the
    subscriber's own).

    A zone such as "CET" (valid, and accepted by DIGEST_TIMEZONE and the CLI) is not one
    of the Region/City names the form offers; without it there, nothing was preselected
    and a form sent without script got the first zone of the list.
    """
    offered = timezones()
    extra = {name for name in names if name not in offered}
    return tuple(sorted((*offered, *extra))) if extra else offered


_ETC_GMT = re.compile(r"Etc/GMT([+-])(\d{1,2})")


def zone_label(name: str) -> str:
    """Return how the form lists a time zone: Etc/GMT+5 with its real offset, UTC−05:00.

    The Etc/GMT zones have POSIX signs, the opposite of what they seem to say: listed
    bare, someone five hours ahead of UTC could pick Etc/GMT+5, five hours behind.
    """
    match = _ETC_GMT.fullmatch(name)
    if match is None or int(match.group(2)) == 0:
        return name
    sign = "−" if match.group(1) == "+" else "+"
    return f"{name} (UTC{sign}{int(match.group(2)):02d}:00)"


def known_timezone(name: str) -> bool:
    """Return True for any IANA time zone name (the form offers the Region/City ones)."""
    return name in _all_timezones()


@cache
def _all_timezones() -> frozenset[str]:
    return frozenset(available_timezones())


def split_items(
    text: str, *, commas: bool = True, whole: Iterable[str] = ()
) -> list[str]:
    """Split a textarea into items on new lines and semicolons (and commas if allowed).

    A line that is one of ``whole`` stays one item: the preferences form shows each
    stored keyword on a line of its own, and one with a comma or semicolon (set from the
    CLI or an import) must survive saving the form unchanged.
    """
    pattern = r"[;,]" if commas else r"[;]"
    kept = {" ".join(item.split()) for item in whole}
    items: list[str] = []
    for line in text.split("\n"):
        tidy = " ".join(line.split())
        parts = [tidy] if tidy in kept else re.split(pattern, line)
        items.extend(" ".join(part.split()) for part in parts)
    return list(dict.fromkeys(item for item in items if item))


def tidy_interests(text: str) -> str:
    """Return interests with each line's spacing collapsed and blank lines dropped.

    The lines stay: each may be a paper's title (which names that paper as a seed) or
    a topic of its own, and the ranker weighs each line alike (rank.profiles).
    """
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


_PDF_SUFFIX = re.compile(r"\.pdf\b", re.IGNORECASE)


def seed_key(text: str) -> str | None:
    """Return the arXiv key of one seed: an id, an abs or PDF link, or an arXiv DOI."""
    # arxiv.org/pdf/2310.06825.pdf: the id pattern will not match with ".pdf" glued on.
    value = _PDF_SUFFIX.sub("", text)
    return arxiv_doi_key(value) or (arxiv_key(value) if value else None)


def seed_keys(text: str) -> tuple[list[str], list[str]]:
    """Return (arXiv keys, entries that hold no arXiv id) from a seeds textarea."""
    keys: list[str] = []
    bad: list[str] = []
    for entry in re.split(r"[\s,;]+", text):
        if not entry:
            continue
        key = seed_key(entry)
        if key:
            keys.append(key)
        else:
            bad.append(entry)
    return list(dict.fromkeys(keys)), bad


# What Semantic Scholar ("ArXiv") and DBLP ("CoRR") write as the journal of an arXiv
# paper, whose id they give only as the volume: volume = {abs/2205.00363}.
_ARXIV_JOURNALS = frozenset({"arxiv", "corr"})


def bibtex_arxiv_keys(text: str) -> list[str]:
    """Return the arXiv keys cited by a BibTeX file (eprint, arxiv, doi, url, journal fields)."""
    keys: list[str] = []
    for fields in _bibtex_entries(text):
        journal = fields.get("journal", "").strip().lower()
        for name in ("eprint", "arxiv", "arxivid", "doi", "url", "journal", "note", "howpublished",
                     "volume"):
            value = fields.get(name, "")
            key = seed_key(value)
            if name == "journal" and "arxiv" not in value.lower():
                continue
            if name == "volume" and journal not in _ARXIV_JOURNALS:
                continue
            if key:
                keys.append(key)
                break
    return list(dict.fromkeys(keys))


_BIB_ENTRY = re.compile(r"@\s*([A-Za-z]+)\s*([{(])")
_BIB_DELIMITER = re.compile(r"[{}()]")
_BIB_WORD = re.compile(r"[^,}\s]*")
_BIB_COMMENT = re.compile(r"^[^\S\n]*%.*$", re.MULTILINE)


def _bibtex_entries(text: str) -> Iterable[dict[str, str]]:
    """Yield each entry's fields (lower-case names), reading braces and quotes properly.

    An entry runs from ``@kind{`` to its matching closing brace (or parenthesis), so an
    "@" inside a field (an e-mail address in an abstract) starts no entry.
    """
    # Drop whole-line % comments (they may contain "@"); a % inside a field is a URL's.
    # The indent is matched within its line: "\s*" ran on over every following blank
    # line from each line start, quadratic in a file of blank lines (an upload anyone
    # can send: 512 KiB of them held a server thread for ~20 minutes).
    text = _BIB_COMMENT.sub("", text)
    pos = 0
    while (start := _BIB_ENTRY.search(text, pos)) is not None:
        kind, closer = start.group(1).lower(), "}" if start.group(2) == "{" else ")"
        end, depth = len(text), 0
        for mark in _BIB_DELIMITER.finditer(text, start.end()):
            char = mark.group()
            if char == "{":
                depth += 1
            elif depth == 0 and char == closer:
                end = mark.start()
                break
            elif char == "}":
                depth -= 1
        pos = end + 1
        if kind in ("comment", "preamble", "string"):
            continue
        body = text[start.end() : end]
        fields: dict[str, str] = {}
        at = 0
        while (match := _BIB_FIELD.search(body, at)) is not None:
            value, at = _bibtex_value(body, match.end())
            fields.setdefault(match.group(1).lower(), value)
        yield fields


def _bibtex_value(body: str, start: int) -> tuple[str, int]:
    """Read one field value starting at ``start``: {braced}, "quoted" or a bare word."""
    if start >= len(body):
        return "", start
    opener = body[start]
    if opener == "{":
        depth, pos = 0, start
        while pos < len(body):
            if body[pos] == "{":
                depth += 1
            elif body[pos] == "}":
                depth -= 1
                if depth == 0:
                    return body[start + 1 : pos].replace("{", "").replace("}", ""), pos + 1
            pos += 1
        return body[start + 1 :], len(body)
    if opener == '"':
        end = body.find('"', start + 1)
        end = len(body) if end < 0 else end
        return body[start + 1 : end], end + 1
    # Matched in place: slicing the rest of the body for each bare value was quadratic.
    match = _BIB_WORD.match(body, start)
    word = match.group(0) if match else ""
    return word, start + len(word)


def seeds_with_upload(seeds_text: str, bibtex: bytes | None) -> str:
    """Return the seeds field with the arXiv ids of a BibTeX upload added on new lines.

    A form sent back with a mistake cannot fill its file field again (browsers never
    do), so the ids the upload held go into the seeds field instead of being lost.
    """
    if not bibtex or len(bibtex) > MAX_BIBTEX:
        return seeds_text
    typed, _ = seed_keys(seeds_text)
    found = bibtex_arxiv_keys(bibtex.decode("utf-8", "replace"))
    added = [key.removeprefix("arxiv:") for key in found if key not in typed]
    if not added:
        return seeds_text
    kept = seeds_text.rstrip()
    return "\n".join([kept, *added] if kept else added)


def parse_profile_form(
    values: Mapping[str, str],
    chosen_categories: Sequence[str],
    *,
    bibtex: bytes | None = None,
    require_signal: bool = True,
    stored: Profile | None = None,
) -> tuple[Profile, Schedule]:
    """Validate the submitted profile and schedule; raise FormErrors naming each bad field.

    ``stored`` is the profile the form was filled from (preferences): its entries stay
    whole even when they hold a separator.
    """
    errors: dict[str, str] = {}
    before = stored or Profile()

    def items(
        name: str, label: str, stored_items: tuple[str, ...], *, commas: bool = True
    ) -> tuple[str, ...]:
        found = split_items(values.get(name, ""), commas=commas, whole=stored_items)
        if len(found) > MAX_ITEMS:
            errors[name] = f"at most {MAX_ITEMS} {label}, please"
        elif any(len(item) > MAX_ITEM for item in found):
            errors[name] = f"each entry may have at most {MAX_ITEM} characters"
        return tuple(found[:MAX_ITEMS])

    interests = tidy_interests(values.get("interests", ""))
    if len(interests) > MAX_INTERESTS:
        errors["interests"] = f"at most {MAX_INTERESTS} characters, please"
    keywords = items("keywords", "keywords", before.keywords)
    exclude = items("exclude", "negative keywords", before.exclude)
    authors = items("authors", "authors", before.authors, commas=False)

    known = category_codes()
    picked = list(dict.fromkeys(c.strip() for c in chosen_categories if c.strip()))
    unknown = [c for c in picked if c not in known]
    if unknown:
        errors["categories"] = f"unknown arXiv category: {', '.join(unknown[:3])[:200]}"
    elif len(picked) > MAX_CATEGORIES:
        errors["categories"] = f"at most {MAX_CATEGORIES} categories, please"

    seeds_text = values.get("seeds", "")
    seeds: list[str] = []
    if len(seeds_text) > MAX_SEEDS_TEXT:
        errors["seeds"] = f"at most {MAX_SEEDS_TEXT} characters, please"
    else:
        seeds, bad = seed_keys(seeds_text)
        if bad:
            errors["seeds"] = f"no arXiv id in {bad[0][:80]!r}; give ids like 2401.01234 or URLs"
    if bibtex:
        if len(bibtex) > MAX_BIBTEX:
            errors["bibtex"] = f"the BibTeX file may be at most {MAX_BIBTEX // 1024} KiB"
        else:
            found = bibtex_arxiv_keys(bibtex.decode("utf-8", "replace"))
            if not found:
                errors["bibtex"] = "the BibTeX file cites no arXiv paper (no eprint or arXiv URL)"
            seeds = list(dict.fromkeys([*seeds, *found]))
    if len(seeds) > MAX_SEEDS:
        errors["seeds"] = f"at most {MAX_SEEDS} seed papers, please"

    schedule = _parse_schedule(values, errors)
    profile = Profile(
        interests=interests,
        keywords=keywords,
        exclude=exclude,
        categories=tuple(picked[:MAX_CATEGORIES]),
        authors=authors,
        seeds=tuple(seeds[:MAX_SEEDS]),
    )
    if require_signal and not errors and profile.is_empty():
        errors["interests"] = (
            "tell us what you want to read: interests, keywords, categories, authors or papers"
        )
    if errors:
        raise FormErrors(errors)
    return profile, schedule


def _parse_schedule(values: Mapping[str, str], errors: dict[str, str]) -> Schedule:
    def number(name: str, low: int, high: int, default: int) -> int:
        raw = values.get(name, "").strip()
        if not raw:
            return default
        # ASCII digits only: str.isdigit() is true of "²", which int() refuses.
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            errors[name] = f"choose a number from {low} to {high}"
            return default
        return int(raw)

    tz = values.get("timezone", "").strip() or "UTC"
    if not known_timezone(tz):
        errors["timezone"] = "choose a time zone from the list"
        tz = "UTC"
    cadence = values.get("cadence", "daily").strip() or "daily"
    if cadence not in ("daily", "weekly"):
        errors["cadence"] = "choose daily or weekly"
        cadence = "daily"
    empty = values.get("empty_digest", "").strip() or "skip"
    if empty not in EMPTY_DIGEST:
        errors["empty_digest"] = "choose nothing or a short note"
        empty = "skip"
    popularity = parse_popularity(values.get("popularity", "").strip() or "0")
    if popularity is None:
        errors["popularity"] = "choose a share from 0 to 1"
        popularity = 0.0
    return Schedule(
        send_hour=number("send_hour", 0, 23, 7),
        timezone=tz,
        cadence=cadence,
        weekday=number("weekday", 0, 6, 0),
        max_papers=number("max_papers", 1, MAX_PAPERS, 10),
        empty_digest=empty,
        popularity=popularity,
    )


def form_values(subscriber: Subscriber) -> dict[str, str]:
    """Return the form fields that show a subscriber's current profile and schedule."""
    profile = subscriber.profile
    return {
        "email": subscriber.email,
        "interests": profile.interests,
        "keywords": "\n".join(profile.keywords),
        "exclude": "\n".join(profile.exclude),
        "authors": "\n".join(profile.authors),
        "seeds": "\n".join(key.removeprefix("arxiv:") for key in profile.seeds),
        "send_hour": str(subscriber.send_hour),
        "timezone": subscriber.timezone,
        "cadence": subscriber.cadence,
        "weekday": str(subscriber.weekday),
        "max_papers": str(subscriber.max_papers),
        "empty_digest": subscriber.empty_digest,
        "popularity": str(subscriber.popularity),
    }


def top_terms(
    profile: Profile, liked: Iterable[Paper], disliked: Iterable[Paper], n: int = 15
) -> list[str]:
    """Return the words that weigh most in what a subscriber likes, minus what they dislike."""
    # A plain word count, not the ranker's tf-idf space: the page must not import the
    # ranker's numeric stack, and the words a person wrote or liked explain it well enough.
    counts: Counter[str] = Counter()
    for text in (profile.interests, *profile.keywords, *profile.keywords):
        counts.update(_words(text))
    for paper in liked:
        counts.update(_words(f"{paper.title} {paper.title} {paper.abstract}"))
    for paper in disliked:
        counts.subtract(_words(f"{paper.title} {paper.abstract}"))
    return [word for word, count in counts.most_common() if count > 0][:n]


def _words(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]
