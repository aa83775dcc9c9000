"""The links a mail carries, followed by someone or something other than the subscriber
at the right moment: an old mail's links after the subscription changed, a mail scanner.
"""

from __future__ import annotations

import pytest

from digest import tokens
from tests.fixtures.config import SECRET
from tests.test_web_support import Site, link_in, make_site


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
