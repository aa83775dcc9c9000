"""The thumbs up/down loop as a subscriber lives it: a click in a digest, the next digests,
and the preferences page that lists the thumbs."""

from __future__ import annotations

import json
import mailbox
import re
import tracemalloc
from dataclasses import replace
from datetime import UTC, date, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import numpy as np

from digest import pipeline, tokens
from digest.config import SAMPLE_BATCH, Config, parse_sources
from digest.models import Profile
from digest.rank.lsa import ridge_lsa
from tests.fixtures.config import SECRET, make_config
from tests.test_web_support import Site, make_site

DAY1, DAY2 = date(2026, 5, 25), date(2026, 5, 26)
NOW1 = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
NOW2 = datetime(2026, 5, 26, 9, 0, tzinfo=UTC)
AGENTS = Profile(interests="LLM agents that use tools, plan and reflect; agent memory and skills",
                 keywords=("agent", "tool"))


def body(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def post(site: Site, path: str, data: dict[str, str] | None = None,
         csrf_from: str | None = None):  # type: ignore[no-untyped-def]
    token = site.csrf(csrf_from or path)
    return site.client.post(path, data={"csrf_token": token, **(data or {})})


def prefs(sub_id: int) -> str:
    return tokens.preferences_url("", SECRET, sub_id)


def two_days(folder: Path) -> tuple[Path, Path]:
    """Split the shipped sample batch into two "days" of real papers."""
    lines = SAMPLE_BATCH.read_text(encoding="utf-8").splitlines()
    first, second = folder / "day1.jsonl", folder / "day2.jsonl"
    first.write_text("\n".join(lines[::2]) + "\n", encoding="utf-8")
    second.write_text("\n".join(lines[1::2]) + "\n", encoding="utf-8")
    return first, second


def digests(config: Config) -> dict[str, list[EmailMessage]]:
    """Return every digest in the Maildir by recipient, oldest first."""
    box = mailbox.Maildir(str(config.maildir), create=False)
    found: dict[str, list[EmailMessage]] = {}
    for key in box.keys():  # noqa: SIM118 (Maildir is not a dict)
        message = BytesParser(policy=policy.default).parsebytes(box.get_bytes(key))
        assert isinstance(message, EmailMessage)
        found.setdefault(message["To"].addresses[0].addr_spec, []).append(message)
    for messages in found.values():
        messages.sort(key=lambda m: str(m["Date"]))
    return found


def text(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def titles(message: EmailMessage) -> list[str]:
    """Return the numbered papers' first title lines, in order."""
    return re.findall(r"^\d+\. (.+)$", text(message), flags=re.M)


def more_links(message: EmailMessage) -> list[str]:
    """Return the site-relative "more like this" links of a digest, in order."""
    return re.findall(r"More like this: https://digest\.example\.org(/feedback/\S+)",
                      text(message))


# -- forgetting a thumb --------------------------------------------------------------------


def test_each_thumb_on_the_preferences_page_can_be_forgotten(config: Config) -> None:
    # The page listed the papers liked and disliked, but offered no way to drop one: a
    # thumb given by mistake, or one from before the interests changed, steered every
    # digest after it for good.
    site = make_site(config)
    liked = site.paper("arxiv:2605.00001", "Agents that plan")
    disliked = site.paper("arxiv:2605.00002", "Robots that grasp")
    imported = site.paper("arxiv:2605.00003", "A paper liked on the old instance")
    sub = site.add("a@example.org")
    # As `subscribers import` keeps the thumbs of `export --csv`: in the profile.
    site.db.update_subscriber(sub.id, now=site.clock(),
                              profile=replace(sub.profile, liked=(imported.key,)))
    post(site, tokens.feedback_url("", SECRET, sub.id, liked.key, 1))
    post(site, tokens.feedback_url("", SECRET, sub.id, disliked.key, -1))
    page = body(site.client.get(prefs(sub.id)))
    for paper in (liked, disliked, imported):
        assert f'name="paper" value="{paper.key}"' in page
    assert "Forget all my thumbs" in page

    done = post(site, prefs(sub.id) + "/forget", {"paper": liked.key}, csrf_from=prefs(sub.id))
    assert done.status_code == 200 and "Forgotten" in body(done)
    assert site.db.votes([sub.id]) == {sub.id: {disliked.key: -1}}
    assert "Agents that plan" not in body(done) and "Robots that grasp" in body(done)

    post(site, prefs(sub.id) + "/forget", {"paper": imported.key}, csrf_from=prefs(sub.id))
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None and fresh.profile.liked == ()
    assert fresh.profile.interests == sub.profile.interests  # the rest stays

    done = post(site, prefs(sub.id) + "/forget", {"all": "yes"}, csrf_from=prefs(sub.id))
    assert "Forgotten" in body(done) and site.db.votes([sub.id]) == {}
    assert "Forget all my thumbs" not in body(done)
    again = post(site, prefs(sub.id) + "/forget", {"all": "yes"}, csrf_from=prefs(sub.id))
    assert "Nothing changed" in body(again)
    # Without the page's CSRF token nothing is forgotten, and a later click counts again.
    post(site, tokens.feedback_url("", SECRET, sub.id, liked.key, 1))
    refused = site.client.post(prefs(sub.id) + "/forget", data={"all": "yes"})
    assert refused.status_code == 400
    assert site.db.votes([sub.id]) == {sub.id: {liked.key: 1}}


def test_forgotten_thumbs_no_longer_steer_the_next_digest(tmp_path: Path) -> None:
    # Three subscribers with the same interests get the same first digest. One likes
    # three of its papers and keeps the thumbs, one likes them and then forgets them
    # (after changing her mind): her next digest is the one of who never clicked.
    day1, day2 = two_days(tmp_path)
    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{day1}"))
    site = make_site(config)
    ids = {email: site.db.add_subscriber(email, AGENTS, now=NOW1, send_hour=7,
                                         max_papers=5).id
           for email in ("keeps@example.org", "forgets@example.org", "never@example.org")}
    assert pipeline.run(config, now=NOW1, day=DAY1).sent == 3
    first = {email: found[0] for email, found in digests(config).items()}
    assert len({tuple(titles(m)) for m in first.values()}) == 1
    for email in ("keeps@example.org", "forgets@example.org"):
        for link in more_links(first[email])[2:5]:
            assert "Thanks" in body(post(site, link))
    forgets = ids["forgets@example.org"]
    done = post(site, prefs(forgets) + "/forget", {"all": "yes"}, csrf_from=prefs(forgets))
    assert "your thumbs on 3 papers" in body(done)

    config2 = replace(config, sources=parse_sources(f"jsonl:{day2}"))
    assert pipeline.run(config2, now=NOW2, day=DAY2).sent == 3
    second = {email: found[1] for email, found in digests(config).items()}
    assert "papers you liked" in text(second["keeps@example.org"])  # the thumbs counted
    assert "you liked" not in text(second["forgets@example.org"])
    assert titles(second["forgets@example.org"]) == titles(second["never@example.org"])


# -- many thumbs ---------------------------------------------------------------------------


def _ridge_case(sizes: list[int], k: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Return background rows, example rows, owners and labels for profiles of these sizes."""
    rng = np.random.default_rng(seed)
    background = rng.normal(size=(300, k))
    background /= np.linalg.norm(background, axis=1, keepdims=True)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    owner = owner[rng.permutation(owner.size)]  # examples arrive in no particular order
    examples = rng.normal(size=(owner.size, k))
    examples /= np.linalg.norm(examples, axis=1, keepdims=True)
    labels = np.where(rng.random(owner.size) < 0.6, 1.0, -1.0)
    return background, examples, owner, labels


def test_a_profile_with_many_thumbs_costs_its_own_solve_not_its_neighbours() -> None:
    # Every profile of a chunk (500 in the daily job) was solved as a system padded to
    # the largest number of examples among them: one subscriber with 1,000 thumbs beside
    # 499 with three took the ranking process from ~440 MB to ~6.2 GB and 40 s (the
    # corpus's 2026-05-29, 256 dimensions). Here 200 profiles, one with 400 examples,
    # 32 dimensions: ~300 MB before, a few MB now.
    k = 32
    sizes = [3] * 199 + [400]
    background, examples, owner, labels = _ridge_case(sizes, k)
    tracemalloc.start()
    try:
        weights = ridge_lsa(background, examples, owner, labels, len(sizes), alpha=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000
    # Each profile's model is its own ridge regression, whatever its neighbours: the
    # closed form (B^T B + alpha I + c E^T E) w = c E^T y, c balancing the classes.
    gram = background.T @ background + np.eye(k)
    for p in (0, 57, 199):
        mine = np.flatnonzero(owner == p)
        e, y = examples[mine], labels[mine]
        c = background.shape[0] / max(1, int((y > 0).sum()))
        expected = np.linalg.solve(gram + c * e.T @ e, c * e.T @ y)
        np.testing.assert_allclose(weights[p], expected, rtol=1e-9, atol=1e-12)


# -- the days with nothing relevant ----------------------------------------------------------


def test_a_digest_after_days_with_nothing_relevant_says_since_when_its_papers_are(
    tmp_path: Path,
) -> None:
    # A subscriber who chose no email on a day with nothing relevant gets the papers of
    # those days in the next digest's pool (nothing falls through a gap), but it said
    # "picked for you from 1357 new today" on a day arXiv sent 422 (the corpus's
    # 2026-05-28, category cs.SC, after two empty days). One who chose the short note
    # was sent that day's pool only.
    records = [json.loads(line) for line in SAMPLE_BATCH.read_text("utf-8").splitlines()]
    days = [records[0::3], records[1::3], records[2::3]]
    for day in (days[0], days[2]):  # math.AG: on one paper of the first and last day
        day[0] = {**day[0], "categories": ["math.AG", *day[0]["categories"]]}
    files = []
    for number, day in enumerate(days, 1):
        path = tmp_path / f"day{number}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in day), encoding="utf-8")
        files.append(path)
    config = make_config(tmp_path / "var")
    site = make_site(config)
    for email, empty in (("skip@example.org", "skip"), ("note@example.org", "note")):
        site.db.add_subscriber(email, Profile(categories=("math.AG",)), now=NOW1,
                               send_hour=7, empty_digest=empty)
    dates = [DAY1, DAY2, date(2026, 5, 27)]
    for path, day in zip(files, dates, strict=True):
        run = replace(config, sources=parse_sources(f"jsonl:{path}"))
        pipeline.run(run, now=datetime.combine(day, NOW1.timetz()), day=day)
    got = {email: [" ".join(text(m).split()) for m in found]
           for email, found in digests(config).items()}
    assert len(got["skip@example.org"]) == 2 and len(got["note@example.org"]) == 3
    first, last = got["skip@example.org"]
    assert f"Here is 1 paper picked for you from {len(days[0])} new today." in first
    both = len(days[1]) + len(days[2])
    assert (f"Here is 1 paper picked for you from {both} new since Tue 26 May 2026."
            in last)
    html = digests(config)["skip@example.org"][1].get_body(("html",))
    assert html is not None and f"from {both} new since Tue 26 May 2026." in str(
        html.get_content())  # type: ignore[attr-defined]
    note = got["note@example.org"]
    assert "Nothing in today's papers matched your interests" in note[1]
    assert f"picked for you from {len(days[2])} new today." in note[2]
