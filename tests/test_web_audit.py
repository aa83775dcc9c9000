"""What a subscriber meets on the pages and in the sign-up mails, where the audit found lies.

Each test names the behaviour; the audit's finding it guards against is in its comment.
"""

from __future__ import annotations

import re
import time

import pytest

from digest import tokens
from digest.models import Profile
from tests.fixtures.config import SECRET
from tests.test_web_support import Site, link_in, make_site


@pytest.fixture
def site(config) -> Site:  # type: ignore[no-untyped-def]
    return make_site(config)


def body(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def text_of(message) -> str:  # type: ignore[no-untyped-def]
    """Return a mail's text part with its line wrapping undone."""
    part = message.get_body(("plain",))
    assert part is not None
    return " ".join(str(part.get_content()).split())


def post(site: Site, path: str, data: dict[str, str] | None = None, csrf_from: str | None = None):  # type: ignore[no-untyped-def]
    token = site.csrf(csrf_from or path)
    return site.client.post(path, data={"csrf_token": token, **(data or {})})


def prefs(sub_id: int) -> str:
    return tokens.preferences_url("", SECRET, sub_id)


def links_prefs(html: str, sub_id: int) -> bool:
    """Return True when the page links to the subscriber's preferences page.

    Compared by the token's payload, not its text: a token signed a second later than
    prefs()'s differs in its timestamp.
    """
    found = re.findall(r"/preferences/([A-Za-z0-9_\-.]+)", html)
    return any(tokens.verify(SECRET, "preferences", token) == sub_id for token in found)


def unsubscribed_zoe(site: Site):  # type: ignore[no-untyped-def]
    """Store zoe@ with a profile of her own, unsubscribed two hours ago."""
    zoe = site.add("zoe@example.org", keywords=("topology",), categories=("math.GT",))
    site.db.update_subscriber(zoe.id, now=site.clock(), send_hour=6, timezone="Europe/Paris")
    site.db.change_status(zoe.id, "unsubscribed", now=site.clock(), expect=("active",))
    site.clock.advance(hours=2)
    return site.db.get_subscriber(zoe.id)


STRANGER = {"interests": "cryptocurrency trading bots", "keywords": "crypto",
            "categories": ["q-fin.TR"], "send_hour": "3", "timezone": "Asia/Tokyo"}


# -- 2: a sign-up changes nobody's stored profile before the owner confirms --------------


def test_an_unconfirmed_signup_leaves_an_unsubscribed_profile_untouched(site: Site) -> None:
    # A stranger's sign-up replaced zoe's keywords, categories and schedule at once, and
    # "Resume" from her own preferences link then gave her the stranger's profile.
    zoe = unsubscribed_zoe(site)
    assert site.signup("zoe@example.org", **STRANGER).status_code == 200
    assert len(site.outbox) == 1  # a confirmation link, to zoe's own mailbox
    after = site.db.get_subscriber(zoe.id)
    assert after == zoe
    post(site, prefs(zoe.id) + "/resume", csrf_from=prefs(zoe.id))
    resumed = site.db.get_subscriber(zoe.id)
    assert resumed is not None and resumed.status == "active"
    assert resumed.profile.keywords == ("topology",)
    assert resumed.profile.categories == ("math.GT",)
    assert (resumed.send_hour, resumed.timezone) == (6, "Europe/Paris")


def test_confirming_a_returning_signup_applies_what_it_asked_for(site: Site) -> None:
    zoe = unsubscribed_zoe(site)
    site.signup("zoe@example.org", **STRANGER)
    post(site, link_in(site.outbox[-1], "confirm"))
    back = site.db.get_subscriber(zoe.id)
    assert back is not None and back.status == "active"
    assert back.profile.keywords == ("crypto",) and back.profile.categories == ("q-fin.TR",)
    assert (back.send_hour, back.timezone) == (3, "Asia/Tokyo")


def test_each_confirmation_link_applies_its_own_signup(site: Site) -> None:
    # A pending address was refreshed by every later sign-up: whoever typed the address
    # last chose the settings the owner's click confirmed.
    site.signup("new@example.org", keywords="owner's words")
    site.clock.advance(hours=2)
    site.signup("new@example.org", keywords="stranger's words")
    first, second = site.outbox
    pending = site.db.find_subscriber("new@example.org")
    assert pending is not None and pending.profile.keywords == ("owner's words",)
    post(site, link_in(first, "confirm"))
    sub = site.db.find_subscriber("new@example.org")
    assert sub is not None and sub.status == "active"
    assert sub.profile.keywords == ("owner's words",)
    # The other link is spent: confirming drops every other request of the address.
    post(site, link_in(second, "confirm"))
    sub = site.db.find_subscriber("new@example.org")
    assert sub is not None and sub.profile.keywords == ("owner's words",)


def test_deleting_a_subscriber_drops_their_unconfirmed_signups(site: Site) -> None:
    from sqlalchemy import func, select

    from digest.store import signup_requests

    zoe = unsubscribed_zoe(site)
    site.signup("zoe@example.org", **STRANGER)
    site.db.remove_subscriber(zoe.id, now=site.clock(), reason="deleted by subscriber")
    with site.db.begin() as conn:
        assert conn.execute(select(func.count()).select_from(signup_requests)).scalar() == 0


# -- 1: signing up again while subscribed -----------------------------------------------


@pytest.mark.parametrize("status", ["active", "paused"])
def test_signing_up_again_mails_the_preferences_link_and_changes_nothing(
    site: Site, status: str
) -> None:
    # The new settings were silently dropped, and the mail said "Nothing will be sent
    # until you confirm" to someone whose digests already arrive.
    sub = site.add("old@example.org", status=status, keywords=("kept",))
    response = site.signup("old@example.org", **STRANGER)
    assert response.status_code == 200 and "Check your email" in body(response)
    [message] = site.outbox
    assert "already subscribed" in message["Subject"]
    text = text_of(message)
    assert "/confirm/" not in text and "Nothing will be sent until you confirm" not in text
    assert "were not applied" in text
    assert ("paused" in text) == (status == "paused")
    page = site.client.get(link_in(message, "preferences"))
    assert page.status_code == 200 and "old@example.org" in body(page)
    assert site.db.get_subscriber(sub.id) == sub


def test_the_page_after_signing_up_is_the_same_for_known_and_new_addresses(site: Site) -> None:
    site.add("old@example.org")
    new = body(site.signup("new@example.org")).replace("new@example.org", "X")
    old = body(site.signup("old@example.org")).replace("old@example.org", "X")
    assert new == old
    assert "confirmation link is on its way" not in new  # not what an old address gets


# -- 6: an old confirmation link never undoes a later pause or unsubscribe -----------------


@pytest.mark.parametrize("action", ["pause", "unsubscribe"])
def test_an_old_confirmation_link_does_not_undo_a_later_change(site: Site, action: str) -> None:
    # Confirming set any status to active: a link clicked again after a pause or an
    # unsubscribe (it stays valid three days) silently switched the digest back on.
    site.signup("a@example.org")
    confirm = link_in(site.outbox[0], "confirm")
    post(site, confirm)
    sub = site.db.find_subscriber("a@example.org")
    assert sub is not None and sub.status == "active"
    site.clock.advance(minutes=5)
    if action == "pause":
        post(site, prefs(sub.id) + "/pause", csrf_from=prefs(sub.id))
    else:
        site.client.post(tokens.unsubscribe_url("", SECRET, sub.id),
                         data={"List-Unsubscribe": "One-Click"})
    before = site.db.get_subscriber(sub.id)
    assert before is not None and before.status in ("paused", "unsubscribed")
    site.clock.advance(minutes=5)
    page = post(site, confirm)
    assert site.db.get_subscriber(sub.id) == before
    html = body(page)
    assert "out of date" in html and before.status in html
    assert links_prefs(html, sub.id)


def test_a_confirmation_link_clicked_twice_says_it_is_already_confirmed(site: Site) -> None:
    site.signup("a@example.org")
    confirm = link_in(site.outbox[0], "confirm")
    post(site, confirm)
    again = post(site, confirm)
    assert again.status_code == 200 and "Already confirmed" in body(again)
    sub = site.db.find_subscriber("a@example.org")
    assert sub is not None and links_prefs(body(again), sub.id)


def test_a_link_mailed_before_signup_requests_confirms_only_a_pending_address(
    site: Site,
) -> None:
    # Confirmation links mailed by the previous release carry the address alone.
    pending = site.add("p@example.org", status="pending")
    paused = site.add("q@example.org", status="paused")
    for sub, expected in ((pending, "active"), (paused, "paused")):
        post(site, f"/confirm/{tokens.sign(SECRET, 'confirm', sub.email)}")
        fresh = site.db.get_subscriber(sub.id)
        assert fresh is not None and fresh.status == expected


# -- 4: the mails and pages say the cadence, weekday, hour and zone -----------------------


def test_a_weekly_signup_is_described_as_weekly_with_its_day_and_hour(site: Site) -> None:
    # The mail said "a daily research digest" and "starts tomorrow" for a weekly one, and
    # the confirmed page said "once a week" without the day.
    site.signup("w@example.org", cadence="weekly", weekday="3", send_hour="18",
                timezone="Europe/Berlin")
    [message] = site.outbox
    text = text_of(message)
    assert "daily" not in text and "tomorrow" not in text
    assert "weekly research digest" in text
    assert "every Thursday at 18:00 (Europe/Berlin)" in text
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "daily" not in html and "tomorrow" not in html
    done = body(post(site, link_in(message, "confirm")))
    assert "every Thursday at 18:00 (Europe/Berlin)" in done


def test_a_daily_signup_is_described_as_daily(site: Site) -> None:
    site.signup("d@example.org")
    text = text_of(site.outbox[0])
    assert "daily research digest" in text and "every day at 08:00 (Europe/Berlin)" in text
    assert "tomorrow" not in text


def test_a_confirmation_link_of_a_deleted_subscriber_says_so_before_the_click(
    site: Site,
) -> None:
    # The page showed "Yes, start my digest" and only the click said it was gone.
    site.signup("gone@example.org")
    confirm = link_in(site.outbox[0], "confirm")
    sub = site.db.find_subscriber("gone@example.org")
    assert sub is not None
    site.db.remove_subscriber(sub.id, now=site.clock(), reason="deleted by subscriber")
    page = site.client.get(confirm)
    assert page.status_code == 404
    assert "no longer exists" in body(page) and "<button" not in body(page)
    assert re.search(r'href="/subscribe"', body(page))


def test_confirming_a_returning_signup_keeps_the_thumbs_of_earlier_digests(site: Site) -> None:
    zoe = unsubscribed_zoe(site)
    site.db.update_subscriber(zoe.id, now=site.clock(),
                              profile=Profile(interests="x", liked=("arxiv:2605.00001",)))
    site.clock.advance(minutes=1)
    site.signup("zoe@example.org", **STRANGER)
    post(site, link_in(site.outbox[-1], "confirm"))
    back = site.db.get_subscriber(zoe.id)
    assert back is not None and back.status == "active"
    assert back.profile.keywords == ("crypto",)
    assert back.profile.liked == ("arxiv:2605.00001",)


# -- 3: a suppressed address is shown as stopped, and how to lift it ----------------------


def blocked_sub(site: Site, status: str = "active"):  # type: ignore[no-untyped-def]
    """Store a subscriber whose address hard-bounced on the site's day."""
    sub = site.add("bounced@example.org", status=status)
    site.db.suppress(sub.email, reason="hard bounce 5.1.1", now=site.clock())
    site.clock.advance(hours=1)
    return sub


def test_the_preferences_page_says_mail_to_a_suppressed_address_is_stopped(site: Site) -> None:
    # The page said "on, daily at 00:00" while the pipeline skips the address for good.
    sub = blocked_sub(site)
    html = body(site.client.get(prefs(sub.id)))
    assert "stopped" in html and "on, every day" not in html
    assert "since Mon 25 May 2026" in html and "hard bounce 5.1.1" in html
    assert 'href="/subscribe"' in html and "sign up again" in html


def test_resuming_a_suppressed_address_does_not_claim_the_digest_is_on(site: Site) -> None:
    sub = blocked_sub(site, status="paused")
    response = post(site, prefs(sub.id) + "/resume", csrf_from=prefs(sub.id))
    html = body(response)
    assert "Your digest is on again" not in html
    assert "nothing will arrive" in html and "sign up again" in html


def test_signing_up_again_and_confirming_lifts_the_stop(site: Site) -> None:
    # What the page tells a suppressed subscriber to do must work: they are active, so
    # a sign-up gets them a confirmation link, not only their preferences link.
    sub = blocked_sub(site)
    site.signup("bounced@example.org")
    post(site, link_in(site.outbox[-1], "confirm"))
    assert not site.db.is_suppressed(sub.email)
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None and fresh.status == "active"
    assert "stopped" not in body(site.client.get(prefs(sub.id)))


def test_the_confirm_link_lifts_the_stop_after_a_later_preferences_save(site: Site) -> None:
    # Signed up again to lift the stop, then saved the preferences before clicking the
    # link: the link's settings are older than the save and stay unapplied, but the click
    # still proves the mailbox works. It said "already confirmed" and the stop stayed.
    sub = blocked_sub(site)
    site.signup("bounced@example.org")
    link = link_in(site.outbox[-1], "confirm")
    site.clock.advance(minutes=5)
    post(site, prefs(sub.id), {"interests": "saved after the sign-up"})
    site.clock.advance(minutes=5)
    post(site, link)
    assert not site.db.is_suppressed(sub.email)
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None and fresh.status == "active"
    assert fresh.profile.interests == "saved after the sign-up"
    assert "stopped" not in body(site.client.get(prefs(sub.id)))


def test_an_old_confirm_link_does_not_lift_a_stop_set_after_it_was_used(site: Site) -> None:
    # A link already used (its sign-up request gone) proves nothing about the mailbox now.
    sub = site.add("bounced@example.org", status="pending")
    site.signup("bounced@example.org")
    link = link_in(site.outbox[-1], "confirm")
    post(site, link)
    site.clock.advance(hours=1)
    site.db.suppress(sub.email, reason="hard bounce 5.1.1", now=site.clock())
    site.clock.advance(hours=1)
    post(site, link)
    assert site.db.is_suppressed(sub.email)


def test_an_address_without_a_stop_shows_its_schedule(site: Site) -> None:
    sub = site.add("ok@example.org")
    html = body(site.client.get(prefs(sub.id)))
    assert "on, every day at 07:00 (UTC)." in html and "stopped" not in html


# -- 5: wording that was false or left the user stuck ------------------------------------


def test_a_thumbs_link_after_unsubscribing_keeps_the_vote_and_offers_a_way_back(
    site: Site,
) -> None:
    # It said "You will see more papers like ... from your next digest on".
    sub = site.add("a@example.org")
    paper = site.paper()
    site.db.change_status(sub.id, "unsubscribed", now=site.clock(), expect=("active",))
    done = post(site, tokens.feedback_url("", SECRET, sub.id, paper.key, 1))
    html = body(done)
    assert done.status_code == 200 and "next digest" not in html
    assert "is kept" in html and "unsubscribed" in html
    assert links_prefs(html, sub.id) and "Resume" in html
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: 1}}


def test_a_thumbs_link_of_an_active_subscriber_still_promises_the_next_digest(
    site: Site,
) -> None:
    sub = site.add("a@example.org")
    paper = site.paper()
    html = body(post(site, tokens.feedback_url("", SECRET, sub.id, paper.key, -1)))
    assert "fewer papers like" in html and "from your next digest on" in html


def test_an_expired_thumbs_link_points_to_a_newer_digest(site: Site) -> None:
    # It said "Ask for a new one from the sign-up page", which gives no thumbs links.
    sub = site.add("a@example.org")
    paper = site.paper()
    old = int(time.time()) - 366 * 86400
    page = site.client.get(tokens.feedback_url("", SECRET, sub.id, paper.key, 1, timestamp=old))
    html = body(page)
    assert page.status_code == 400 and "expired" in html
    assert "new one from the sign-up page" not in html
    assert "newer digest" in html
    old_format = tokens.sign(SECRET, "feedback", [sub.id, paper.key, 1], timestamp=old)
    assert "newer digest" in body(site.client.get(f"/feedback/{old_format}"))


def test_an_expired_confirmation_link_says_to_sign_up_again(site: Site) -> None:
    old = int(time.time()) - 4 * 86400
    token = tokens.sign(SECRET, "confirm", ["a@example.org", "x"], timestamp=old)
    html = body(site.client.get(f"/confirm/{token}"))
    assert "expired" in html and "Sign up again" in html


def test_opening_the_unsubscribe_link_again_shows_the_way_back(site: Site) -> None:
    # After the POST the page linked to preferences; opened again (GET), it did not.
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id)
    site.client.post(path, data={"List-Unsubscribe": "One-Click"})
    html = body(site.client.get(path))
    assert "You are unsubscribed" in html and links_prefs(html, sub.id)


def test_a_thumbs_link_of_a_deleted_subscriber_says_so_before_the_click(site: Site) -> None:
    # The page showed the button and only the click said the subscription was gone.
    sub = site.add("a@example.org")
    paper = site.paper()
    path = tokens.feedback_url("", SECRET, sub.id, paper.key, 1)
    site.db.remove_subscriber(sub.id, now=site.clock(), reason="deleted by subscriber")
    page = site.client.get(path)
    assert page.status_code == 404
    assert "no longer exists" in body(page) and "<button" not in body(page)


# -- 8b: deleting yourself deletes your digests' HTML previews ---------------------------


def test_deleting_yourself_removes_your_digest_previews(site: Site) -> None:
    # Without SMTP every digest is also written as HTML beside the Maildir, named by
    # the address; "Everything we stored about you is gone" left them behind.
    from datetime import date

    from digest import pipeline

    sub = site.add("a@example.org")
    other = site.add("b@example.org")
    mine = [pipeline.write_preview(site.config, sub, date(2026, 5, day), "<p>x</p>")
            for day in (24, 25)]
    theirs = pipeline.write_preview(site.config, other, date(2026, 5, 25), "<p>y</p>")
    done = post(site, prefs(sub.id) + "/delete", {"confirm_delete": "yes"},
                csrf_from=prefs(sub.id))
    assert done.status_code == 200 and "are deleted" in body(done)
    assert not any(path.exists() for path in mine)
    assert theirs.exists()


# -- 7: the form's default number of papers is one the form accepts ----------------------


def test_a_max_papers_setting_above_the_form_limit_does_not_break_the_form(config) -> None:  # type: ignore[no-untyped-def]
    # DIGEST_MAX_PAPERS=80 pre-filled the field with 80, and the untouched form was
    # refused: "choose a number from 1 to 50".
    from dataclasses import replace

    from digest.web import forms

    site = make_site(replace(config, max_papers=80))
    html = body(site.client.get("/"))
    field = re.search(r'<input type="number" id="max_papers"[^>]*>', html)
    assert field is not None
    assert f'value="{forms.MAX_PAPERS}"' in field.group(0)
    response = site.signup("a@example.org", max_papers=str(forms.MAX_PAPERS))
    assert response.status_code == 200


def test_a_max_papers_setting_within_the_limit_is_the_default(config) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    site = make_site(replace(config, max_papers=12))
    assert 'value="12"' in body(site.client.get("/"))


# -- 8a: a stored keyword with a comma survives an unchanged save ------------------------


def test_saving_the_preferences_unchanged_keeps_a_keyword_with_a_comma(site: Site) -> None:
    # "graph neural networks, GNN" (set from the CLI or an import) became two keywords.
    sub = site.add("a@example.org", keywords=("graph neural networks, GNN", "diffusion"),
                   exclude=("survey; review",), authors=("Smith; J.",))
    page = body(site.client.get(prefs(sub.id)))
    field = re.search(r'<textarea id="keywords"[^>]*>([^<]*)</textarea>', page)
    exclude = re.search(r'<textarea id="exclude"[^>]*>([^<]*)</textarea>', page)
    authors = re.search(r'<textarea id="authors"[^>]*>([^<]*)</textarea>', page)
    assert field and exclude and authors
    response = post(site, prefs(sub.id), {
        "interests": "language models", "keywords": field.group(1),
        "exclude": exclude.group(1), "authors": authors.group(1),
    })
    assert response.status_code == 200
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None
    assert fresh.profile.keywords == ("graph neural networks, GNN", "diffusion")
    assert fresh.profile.exclude == ("survey; review",)
    assert fresh.profile.authors == ("Smith; J.",)


def test_a_new_line_with_commas_is_still_split_into_keywords(site: Site) -> None:
    sub = site.add("a@example.org", keywords=("graph neural networks, GNN",))
    post(site, prefs(sub.id), {"interests": "x",
                               "keywords": "graph neural networks, GNN\nsim2real, robots"})
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None
    assert fresh.profile.keywords == ("graph neural networks, GNN", "sim2real", "robots")


def test_pause_or_resume_that_changes_nothing_does_not_claim_it_did(site: Site) -> None:
    # The preferences page was open while the mail client's one-click unsubscribe went
    # through; "Pause" on it said "Your digest is paused" while it stayed unsubscribed.
    # A pending address's "resume" said "Your digest is on again" while still pending.
    sub = site.add("a@example.org")
    path = prefs(sub.id)
    csrf = site.csrf(path)
    site.app.test_client().post(tokens.unsubscribe_url("", SECRET, sub.id),
                                data={"List-Unsubscribe": "One-Click"})
    paused = site.client.post(path + "/pause", data={"csrf_token": csrf})
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    assert "is paused" not in body(paused)
    assert "Nothing changed: your digest is unsubscribed" in body(paused)
    pending = site.add("p@example.org", status="pending")
    resumed = post(site, prefs(pending.id) + "/resume", csrf_from=prefs(pending.id))
    assert site.db.get_subscriber(pending.id).status == "pending"  # type: ignore[union-attr]
    assert "on again" not in body(resumed)
    assert "Nothing changed: your digest is waiting for you to confirm" in body(resumed)
