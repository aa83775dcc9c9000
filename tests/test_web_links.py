"""The links a mail carries, followed by someone or something other than the subscriber
at the right moment: an old mail's links after the subscription changed, a mail scanner.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from itsdangerous import URLSafeTimedSerializer

from digest import pipeline, tokens
from digest.config import Config, config_from_values
from digest.errors import ConfigError, TokenError
from tests.fixtures.config import SECRET, make_config
from tests.test_web_support import Site, link_in, make_site

NEW_SECRET = "the-new-secret-key-after-a-leak-0123"


@pytest.fixture
def site(config) -> Site:  # type: ignore[no-untyped-def]
    return make_site(config)


def body(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def signed_up_again(site: Site, email: str) -> int:
    """Sign ``email`` up on the form and confirm it; return the new subscriber's id."""
    site.clock.advance(hours=2)  # past the hour between two confirmation mails
    site.signup(email)
    confirm = link_in(site.outbox[-1], "confirm")
    site.client.post(confirm, data={"csrf_token": site.csrf(confirm)})
    sub = site.db.find_subscriber(email)
    assert sub is not None and sub.status == "active"
    return sub.id


def test_an_unsubscribe_link_from_before_a_deletion_does_not_claim_to_stop_the_new_digest(
    site: Site,
) -> None:
    # Deleted, then signed up again (a new subscriber): the old mail's unsubscribe link
    # said "You are unsubscribed. No more digests will be sent to this address", on the
    # page and to the mail client's one-click POST, while the new digest kept coming.
    old = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, old.id)
    site.db.remove_subscriber(old.id, now=site.clock(), reason="deleted by subscriber")
    new_id = signed_up_again(site, "a@example.org")
    bare = site.app.test_client(use_cookies=False)
    for response in (bare.get(path),
                     bare.post(path, data={"List-Unsubscribe": "One-Click"})):
        html = body(response)
        assert response.status_code == 404
        assert "You are unsubscribed" not in html and "No more digests" not in html
        assert "no longer exists" in html and "use the links in the latest digest" in html
        assert "<button" not in html
    assert site.db.get_subscriber(new_id).status == "active"  # type: ignore[union-attr]


def test_a_preferences_link_of_a_deleted_subscriber_says_the_subscription_is_gone(
    site: Site,
) -> None:
    # It answered "Sorry. There is nothing here.", as for a mistyped address.
    sub = site.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    site.db.remove_subscriber(sub.id, now=site.clock(), reason="deleted by subscriber")
    for page in (site.client.get(path), site.client.get(path + "/export")):
        assert page.status_code == 404
        assert "no longer exists" in body(page) and "There is nothing here" not in body(page)
        assert "use the links in the latest digest" in body(page)


# -- the secret key changes --------------------------------------------------------------


def test_links_of_mails_sent_before_the_key_changed_keep_working_with_the_old_key_kept(
    config: Config,
) -> None:
    # Changing DIGEST_SECRET_KEY (a leaked key, a copied var/secret.key) made every link
    # in every mail already sent "not valid": the mail client's one-click unsubscribe got
    # a 400 and the reader stayed subscribed, with nothing to keep the old key for.
    before = make_site(config)
    sub = before.add("a@example.org")
    paper = before.paper()
    before.signup("b@example.org")  # a pending sign-up with its confirmation mailed
    confirm = link_in(before.outbox[-1], "confirm")
    unsubscribe = tokens.unsubscribe_url("", SECRET, sub.id)
    preferences = tokens.preferences_url("", SECRET, sub.id)
    more, less = tokens.feedback_urls("", SECRET, sub.id, [paper.key])
    older_format = "/feedback/" + URLSafeTimedSerializer(SECRET, salt="digest.feedback").dumps(
        [sub.id, paper.key, 1])

    rotated = replace(config, secret_key=NEW_SECRET, secret_key_fallbacks=(SECRET,))
    without = make_site(replace(config, secret_key=NEW_SECRET))
    after = make_site(rotated)
    bare = after.app.test_client(use_cookies=False)
    for path in (preferences, more[paper.key], less[paper.key], older_format, confirm,
                 unsubscribe):
        assert without.client.get(path).status_code == 400, path  # the key alone: broken
        assert after.client.get(path).status_code == 200, path

    vote = after.client.post(older_format, data={"csrf_token": after.csrf(older_format)})
    assert vote.status_code == 200
    assert after.db.votes([sub.id]) == {sub.id: {paper.key: 1}}
    confirmed = after.client.post(confirm, data={"csrf_token": after.csrf(confirm)})
    assert confirmed.status_code == 200 and "You are subscribed" in body(confirmed)
    done = bare.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200
    assert after.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]

    # New links are signed with the new key alone.
    fresh = tokens.unsubscribe_url("", NEW_SECRET, sub.id)
    assert tokens.verify(NEW_SECRET, "unsubscribe", fresh.rpartition("/")[2]) == sub.id
    with pytest.raises(TokenError, match="not valid"):
        tokens.verify(SECRET, "unsubscribe", fresh.rpartition("/")[2])


def test_a_form_opened_before_the_key_changed_can_still_be_sent(config: Config) -> None:
    before = make_site(config)
    sub = before.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    csrf = before.csrf(path)  # the page is open in the subscriber's browser
    cookie = before.client.get_cookie("digest_session")
    assert cookie is not None
    after = make_site(replace(config, secret_key=NEW_SECRET, secret_key_fallbacks=(SECRET,)))
    after.client.set_cookie("digest_session", cookie.value)
    paused = after.client.post(path + "/pause", data={"csrf_token": csrf})
    assert paused.status_code == 200
    assert after.db.get_subscriber(sub.id).status == "paused"  # type: ignore[union-attr]


def test_the_earlier_keys_are_read_from_the_environment(tmp_path: Path) -> None:
    values = {"DIGEST_VAR_DIR": str(tmp_path), "DIGEST_SECRET_KEY": NEW_SECRET}
    assert config_from_values(values).secret_key_fallbacks == ()
    config = config_from_values({**values,
                                 "DIGEST_SECRET_KEY_FALLBACKS": f" {SECRET} , {'k' * 16},"})
    assert config.secret_key_fallbacks == (SECRET, "k" * 16)
    assert SECRET not in repr(config)
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY_FALLBACKS"):
        config_from_values({**values, "DIGEST_SECRET_KEY_FALLBACKS": "short"})


# -- what a client or a copy adds to a link ----------------------------------------------

# A sentence's full stop, a closing bracket, quote or angle bracket (an autolinker taking
# "<https://...>" or "(https://...)" whole), a slash, a space: werkzeug decodes %xx.
AFTER_LINK = [".", ")", ">", '"', "'", ",", ".)", "%3E", "/", "%20", "%E2%80%9D"]


@pytest.mark.parametrize("after", AFTER_LINK)
def test_a_link_with_what_followed_it_in_the_text_still_opens_its_page(
    site: Site, after: str
) -> None:
    # Every such link answered "This link is not valid. Use the link exactly as it
    # appears in the email" (or "There is nothing here" for the slash).
    sub = site.add("a@example.org")
    paper = site.paper()
    site.signup("b@example.org")
    pages = {
        tokens.unsubscribe_url("", SECRET, sub.id): "Stop sending the research digest",
        tokens.preferences_url("", SECRET, sub.id): "Your preferences",
        tokens.feedback_url("", SECRET, sub.id, paper.key, 1): "More like this?",
        tokens.feedback_url("", SECRET, sub.id, paper.key, -1): "Less like this?",
        link_in(site.outbox[-1], "confirm"): "Start sending the research digest",
    }
    for path, shown in pages.items():
        page = site.client.get(path + after)
        assert page.status_code == 200, path + after
        assert shown in body(page), path + after


def test_the_button_on_a_page_opened_with_a_full_stop_after_the_link_works(
    site: Site,
) -> None:
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id) + "."
    done = site.client.post(path, data={"csrf_token": site.csrf(path)})
    assert done.status_code == 200 and "You are unsubscribed" in body(done)
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    # The preferences page's forms carry the token as it was signed, not the full stop.
    prefs = tokens.preferences_url("", SECRET, sub.id)
    html = body(site.client.get(prefs + ")"))
    assert f'action="{prefs}/resume"' in html and "%29" not in html
    resumed = site.client.post(prefs + "/resume", data={"csrf_token": site.csrf(prefs)})
    assert resumed.status_code == 200
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]


def test_a_token_with_a_changed_character_is_still_refused(site: Site) -> None:
    # Only what follows the token is dropped: its own characters are all checked.
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id)
    # The second last character: the last one's low bits are base64 padding (a 20-byte
    # signature in 27 characters), so changing it alone may decode to the same bytes.
    changed = path[:-2] + ("A" if path[-2] != "A" else "B") + path[-1]
    for broken in (changed, path[:-1], path + "x"):
        response = site.client.post(broken, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, broken
        assert "not valid" in body(response)
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]


# -- DIGEST_BASE_URL with a path -----------------------------------------------------------


def test_links_under_a_base_url_with_a_path_open_their_pages_and_stay_under_it(
    tmp_path: Path,
) -> None:
    # DIGEST_BASE_URL=https://host/digest was accepted, and every mailed link began with
    # /digest: served as it is, each was "There is nothing here" (404); behind a proxy
    # that takes the path off, the pages' styles, forms and links left it out, so saving,
    # pausing or deleting went to an address outside the site.
    site = make_site(make_config(tmp_path / "var", base_url="http://localhost:8000/digest"))
    sub = site.add("a@example.org")
    mailed = pipeline.digest_links(site.config, sub.id, [])
    unsubscribe = mailed.unsubscribe.removeprefix("http://localhost:8000")
    preferences = mailed.preferences.removeprefix("http://localhost:8000")
    assert unsubscribe.startswith("/digest/unsubscribe/")

    for path in (preferences, preferences.removeprefix("/digest")):  # as mailed; stripped
        page = site.client.get(path)
        assert page.status_code == 200 and "Your preferences" in body(page), path
        targets = re.findall(r'(?:href|action|src)="(/[^"]*)"', body(page))
        assert targets and all(t.startswith("/digest/") for t in targets), targets
    pause = re.search(r'action="(/digest/preferences/[^"]+/pause)"', body(page))
    assert pause is not None
    paused = site.client.post(pause.group(1), data={"csrf_token": site.csrf(preferences)})
    assert paused.status_code == 200
    assert site.db.get_subscriber(sub.id).status == "paused"  # type: ignore[union-attr]

    done = site.client.post(unsubscribe, data={"csrf_token": site.csrf(unsubscribe)})
    assert done.status_code == 200
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    assert 'href="/digest/preferences/' in body(done)
    assert site.client.get("/digest/static/style.css").status_code == 200
    assert site.client.get("/digest").status_code == 200  # the sign-up form


def test_links_under_a_base_url_with_a_non_ascii_path_open_their_pages(tmp_path: Path) -> None:
    # The configuration %-encodes a non-ASCII path ("/dïgest" -> "/d%C3%AFgest"), and a
    # mailed link arrives at the app decoded ("/dïgest/..."): the two never matched, so
    # every mailed link was "There is nothing here".
    values = {"DIGEST_VAR_DIR": str(tmp_path / "var"), "DIGEST_SECRET_KEY": SECRET,
              "DIGEST_BASE_URL": "http://localhost:8000/dïgest"}
    base_url = config_from_values(values).base_url
    assert base_url == "http://localhost:8000/d%C3%AFgest"
    site = make_site(make_config(tmp_path / "var", base_url=base_url))
    sub = site.add("a@example.org")
    mailed = pipeline.digest_links(site.config, sub.id, [])
    preferences = mailed.preferences.removeprefix("http://localhost:8000")
    unsubscribe = mailed.unsubscribe.removeprefix("http://localhost:8000")
    page = site.client.get(preferences)
    assert page.status_code == 200 and "Your preferences" in body(page)
    done = site.client.post(unsubscribe, data={"csrf_token": site.csrf(unsubscribe)})
    assert done.status_code == 200
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
