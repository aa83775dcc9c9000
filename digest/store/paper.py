"""Papers: store each day's batch and read batches and history back."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError

from digest.models import REPLACEMENTS, Paper
from digest.store.base import StoreBase
from digest.store.rows import _merge_stored, _paper_from_row, _paper_values, _utc, in_chunks
from digest.store.tables import feedback, lookups, papers, subscribers

# An id arXiv did not know is asked again after this long (a paper on hold appears
# later); one it knew and the store dropped since (retention), after this long.
LOOKUP_AGAIN = timedelta(days=7)

# A racing save is retried: each retry reads the racer's committed papers as known.
_SAVE_ATTEMPTS = 3

# A title this short ("Editorial", "Reply to Smith") may name several papers: only a
# longer one makes two records under different keys one paper.
SAME_TITLE_WORDS = 4


def same_title(title: str) -> str | None:
    """Return the title as two records of one paper share it (case, spacing and a final
    period aside), or None when it is too short to tell one paper from another."""
    text = " ".join(title.split()).casefold().rstrip(".").rstrip()
    return text if len(text.split()) >= SAME_TITLE_WORDS else None


def _surnames(authors: Sequence[str]) -> set[str]:
    """Return the authors' surnames, folded ("Trull, A." and "A. Trull" alike)."""
    names = set()
    for name in authors:
        last = name.split(",")[0] if "," in name else (name.split() or [""])[-1]
        names.add(last.strip(" .-").casefold())
    names.discard("")
    return names


def _same_paper(a: Paper, b: Paper) -> bool:
    """Tell whether two records under different keys with the same title are one paper:
    no author in common, when both list authors, makes them two."""
    ours, theirs = _surnames(a.authors), _surnames(b.authors)
    return not ours or not theirs or bool(ours & theirs)


def _both_arxiv(a: str, b: str) -> bool:
    """Tell whether both keys are arXiv ids: arXiv numbers each paper once, so two ids
    are two papers whatever their titles (a seed paper asked for by its id must be
    stored under it, or the profile's id names nothing)."""
    return a.startswith("arxiv:") and b.startswith("arxiv:")


def _ascii_lower(text: str) -> str:
    """Lower ASCII letters only, as SQLite's lower() does."""
    return "".join(c.lower() if c.isascii() else c for c in text)


class PaperMixin(StoreBase):
    """Papers and their batch days."""

    # -- papers -------------------------------------------------------------------------

    def save_papers(
        self, items: Iterable[Paper], *, batch_day: date, now: datetime
    ) -> tuple[int, int]:
        """Insert new papers into ``batch_day``'s batch and update known ones.

        Return (new, updated). A known paper keeps its batch day, so it is never mailed
        again as new (but a "named" one, never in a digest, that a source lists as new
        moves to this batch and counts as new); its metadata is refreshed (a
        replacement's new version, merged categories, the latest upvotes) when that
        changes anything: ``updated`` counts those. A paper given twice is merged as if saved twice,
        and so is one given under another key with a stored or given paper's title
        (``_same_titled``).

        Known papers are read with one query per 500 keys and the writes go in one
        statement each for the new and the changed papers: a row at a time (a SELECT,
        then an INSERT or an UPDATE, for every paper of a feed that an hourly run reads
        again) was ~0.1 s a small batch on SQLite and ~0.2 s on PostgreSQL.
        """
        given = list(items)
        keys = list(dict.fromkeys(paper.key for paper in given))
        for attempt in range(_SAVE_ATTEMPTS):
            try:
                with self.begin() as conn:
                    return self._save_papers(conn, given, keys, batch_day, now)
            except IntegrityError:
                # Another process (a manual `digest ingest` beside a cron run, on
                # PostgreSQL) filed one of these new papers between this one's read
                # and its insert. Nothing was written; read again: that paper is known
                # now, and the feed's copy is merged into it like any known paper's.
                if attempt == _SAVE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def _save_papers(
        self, conn: Connection, given: list[Paper], keys: list[str], batch_day: date,
        now: datetime,
    ) -> tuple[int, int]:
        """One attempt of save_papers in the transaction ``conn``."""
        stored: dict[str, Paper] = {}
        stored_days: dict[str, date] = {}
        stored_at: dict[str, datetime] = {}

        def keep(row: Row[Any]) -> None:
            stored[row.key] = _paper_from_row(row)
            stored_days[row.key] = row.batch_day
            stored_at[row.key] = row.stored_at

        for chunk in in_chunks(keys):
            for row in conn.execute(select(papers).where(papers.c.key.in_(chunk))):
                keep(row)
        aliases, titled_rows = self._same_titled(conn, [p for p in given if p.key not in stored])
        for key in aliases.values():
            if key not in stored and key in titled_rows:  # else given earlier in this save
                keep(titled_rows[key])
        fresh: dict[str, Paper] = {}  # new keys, in the order given
        known: dict[str, Paper] = {}  # known keys, merged
        for paper in given:
            if paper.key in aliases:
                paper = replace(paper, key=aliases[paper.key])
            if paper.key in fresh:
                fresh[paper.key] = _merge_stored(fresh[paper.key], paper)
            elif paper.key in stored:
                earlier = known.get(paper.key) or stored[paper.key]
                known[paper.key] = _merge_stored(earlier, paper)
            else:
                fresh[paper.key] = paper
        # A paper filed only because a profile names it ("named": in no digest, its
        # batch day the day it was asked for) that a source now lists as new moves to
        # this batch: left in its own, whose digests went out without it, it reached
        # no one, where without the profile naming it every digest could hold it.
        moved = {key for key, merged in known.items()
                 if stored[key].announce_type == "named"
                 and merged.announce_type not in REPLACEMENTS}
        # A moved paper is filed now, as if never named: a digest of this day planned
        # before now finds it among the papers filed after it (filed_after), or no
        # digest of its subscriber would hold it.
        changed = [
            {"known_key": key, "updated_at": now,
             "batch_day": batch_day if key in moved else stored_days[key],
             "stored_at": now if key in moved else stored_at[key], **values}
            for key, merged in known.items()
            if (values := _paper_values(merged)) != _paper_values(stored[key])
        ]
        # Rows are written in key order: two saves of overlapping feeds lock their
        # rows in the same order, so on PostgreSQL one waits for the other instead of
        # the two deadlocking.
        if fresh:
            conn.execute(insert(papers), [
                {"key": paper.key, "batch_day": batch_day, "stored_at": now,
                 "updated_at": now, **_paper_values(paper)}
                for _, paper in sorted(fresh.items())
            ])
        if changed:
            changed.sort(key=lambda row: str(row["known_key"]))
            conn.execute(
                update(papers).where(papers.c.key == bindparam("known_key")), changed
            )
        return len(fresh) + len(moved), len(changed) - len(moved)

    def _same_titled(
        self, conn: Connection, unknown: list[Paper]
    ) -> tuple[dict[str, str], dict[str, Row[Any]]]:
        """Map the key of each unknown paper that is a paper already stored, or given
        before it, under another key to that key; and return the stored rows read, by key.

        A source keys a paper by arXiv id, else DOI, else its own entry id: a bioRxiv
        preprint and its journal version, or one article in two of a publisher's feeds
        that give no DOI, came as two papers and were mailed twice. The same title (four
        words or more, case and spacing aside) with an author in common when both list
        authors makes them one. Stored titles are found by the index on ``lower(title)``.
        """
        # A paper fetched by its id because a profile names it ("named") is stored under
        # that id whatever else holds its title: otherwise the profile's id names nothing.
        titled = [(p, t) for p in unknown
                  if p.announce_type != "named" and (t := same_title(p.title)) is not None]
        if not titled:
            return {}, {}
        # As the database lowers its titles (SQLite: ASCII letters only), with and
        # without a final period whichever way it was typed (PubMed's titles end with
        # one, bioRxiv's do not).
        bare = [p.title.rstrip(".").rstrip() for p, _ in titled]
        lowered = sorted({variant for title in bare for typed in (title, f"{title}.")
                          for variant in (typed.lower(), _ascii_lower(typed))})
        candidates: dict[str, list[Paper]] = {}
        read: dict[str, Row[Any]] = {}
        for chunk in in_chunks(lowered):
            query = (select(papers).where(func.lower(papers.c.title).in_(chunk))
                     .order_by(papers.c.stored_at, papers.c.key))
            for row in conn.execute(query):
                read[row.key] = row
                found = _paper_from_row(row)
                title = same_title(found.title)
                if title is not None:
                    candidates.setdefault(title, []).append(found)
        for found_list in candidates.values():
            # A named paper (stored under its id beside its journal version) is the
            # paper only when nothing else of that title is: the other was mailed.
            found_list.sort(key=lambda c: c.announce_type == "named")
        aliases: dict[str, str] = {}
        for paper, title in titled:
            same = next((c for c in candidates.get(title, ())
                         if c.key != paper.key and _same_paper(c, paper)
                         and not _both_arxiv(c.key, paper.key)), None)
            if same is not None:
                aliases[paper.key] = same.key
            else:
                # The first of this run's records with the title stands for the later ones.
                candidates.setdefault(title, []).append(paper)
        return aliases, read

    def get_papers(self, keys: Iterable[str]) -> dict[str, Paper]:
        """Return the stored papers with these keys (missing keys are left out)."""
        wanted = sorted(set(keys))
        found: dict[str, Paper] = {}
        with self.read() as conn:
            for chunk in in_chunks(wanted):
                for row in conn.execute(select(papers).where(papers.c.key.in_(chunk))):
                    found[row.key] = _paper_from_row(row)
        return found

    def keys_titled(self, titles: Iterable[str]) -> set[str]:
        """Return the keys of the stored papers whose lowered title is one of ``titles``.

        ``titles`` are lowered; ``lower`` is the database's: SQLite folds ASCII letters
        only, so a title with other capitals is found only as stored. Uses the index on
        ``lower(title)``; reads keys only (the caller fetches the papers it lacks).
        """
        wanted = sorted({t for t in titles if t})
        found: set[str] = set()
        with self.begin() as conn:
            for chunk in in_chunks(wanted):
                query = select(papers.c.key).where(func.lower(papers.c.title).in_(chunk))
                found.update(conn.execute(query).scalars())
        return found

    def batch(self, first: date, last: date) -> list[tuple[Paper, date]]:
        """Return (paper, batch day) for every paper first stored between two days."""
        with self.begin() as conn:
            rows = conn.execute(
                select(papers)
                .where(papers.c.batch_day >= first, papers.c.batch_day <= last)
                .order_by(papers.c.batch_day, papers.c.key)
            )
            return [(_paper_from_row(row), row.batch_day) for row in rows]

    def filed_after(
        self, first: date, last: date, after: datetime
    ) -> list[tuple[Paper, date, datetime]]:
        """Return (paper, batch day, stored at) for the papers of the batch days from
        ``first`` to ``last`` first stored after ``after``: those a day's batch took in
        after a digest holding that day was planned (a source that publishes later in
        the day, a list that grows during it)."""
        with self.begin() as conn:
            rows = conn.execute(
                select(papers)
                .where(papers.c.batch_day >= first, papers.c.batch_day <= last,
                       papers.c.stored_at > after)
                .order_by(papers.c.batch_day, papers.c.key)
            )
            return [(_paper_from_row(row), row.batch_day, _utc(row.stored_at) or after)
                    for row in rows]

    def latest_batch_day(self, on_or_before: date) -> date | None:
        """Return the most recent batch day not after the given day."""
        with self.begin() as conn:
            value = conn.execute(
                select(func.max(papers.c.batch_day)).where(papers.c.batch_day <= on_or_before)
            ).scalar()
        return value if isinstance(value, date) else None

    def history(self, before: date, limit: int = 5000) -> list[Paper]:
        """Return up to ``limit`` papers from batches before a day, newest first."""
        with self.begin() as conn:
            rows = conn.execute(
                select(papers)
                # Papers fetched because a profile names them (older ones) are not the
                # recent papers the history stands for; rank reads them as named ones.
                .where(papers.c.batch_day < before, papers.c.announce_type != "named")
                .order_by(papers.c.batch_day.desc(), papers.c.key)
                .limit(limit)
            )
            return [_paper_from_row(row) for row in rows]

    def count_batch(self, day: date) -> int:
        """Return how many papers are filed under one batch day."""
        with self.begin() as conn:
            return int(conn.execute(
                select(func.count()).select_from(papers).where(papers.c.batch_day == day)
            ).scalar() or 0)

    def count_papers(self) -> int:
        """Return how many papers are stored."""
        with self.begin() as conn:
            return int(conn.execute(select(func.count()).select_from(papers)).scalar() or 0)

    # -- papers profiles name by id -------------------------------------------------------

    def named_keys(self) -> set[str]:
        """Return the paper keys that active and paused subscribers' profiles name (seed,
        liked and disliked papers) or voted on.
        """
        keys: set[str] = set()
        alive = subscribers.c.status.in_(("active", "paused"))
        # Only the three lists are read out of each profile (the database extracts
        # them): parsing 100,000 whole profiles was ~5 s of every run.
        named = [subscribers.c.profile[field] for field in ("seeds", "liked", "disliked")]
        with self.read() as conn:
            for row in conn.execute(select(*named).where(alive)):
                for value in row:
                    if isinstance(value, list):
                        keys.update(str(key) for key in value if key)
            voted = (select(feedback.c.paper_key).distinct()
                     .join(subscribers, subscribers.c.id == feedback.c.subscriber_id)
                     .where(alive))
            keys.update(str(key) for key in conn.execute(voted).scalars())
        return keys

    def to_look_up(self, keys: Iterable[str], *, now: datetime) -> list[str]:
        """Return which of these keys the store lacks and nobody asked about lately."""
        wanted = sorted(set(keys))
        missing: list[str] = []
        with self.read() as conn:
            for chunk in in_chunks(wanted):
                held = set(conn.execute(
                    select(papers.c.key).where(papers.c.key.in_(chunk))).scalars())
                asked = {
                    row.key for row in conn.execute(
                        select(lookups.c.key, lookups.c.asked_at)
                        .where(lookups.c.key.in_(chunk)))
                    if (_utc(row.asked_at) or now) > now - LOOKUP_AGAIN
                }
                missing.extend(k for k in chunk if k not in held and k not in asked)
        return missing

    def record_lookups(self, keys: Iterable[str], found: Iterable[str], *,
                       now: datetime) -> None:
        """Note that these keys were asked for, and which of them were found."""
        known = set(found)
        with self.begin() as conn:
            for key in sorted(set(keys)):
                conn.execute(self._upsert(
                    lookups, {"key": key, "asked_at": now, "found": key in known},
                    key=("key",)))
