"""The web app through Flask's test client: every route, every token failure, CSRF, headers."""

from __future__ import annotations

import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from digest import mail, pipeline, tokens
from digest.config import Config, parse_sources
from digest.models import Profile
from tests.fixtures.config import SECRET
from tests.test_web_support import Site, link_in, make_site


@pytest.fixture
def site(config) -> Site:  # type: ignore[no-untyped-def]
    return make_site(config)


def body(response) -> str:  # type: ignore[no-untyped-def]
    return response.get_data(as_text=True)


def post(site: Site, path: str, data: dict[str, str] | None = None, csrf_from: str | None = None):  # type: ignore[no-untyped-def]
    token = site.csrf(csrf_from or path)
    return site.client.post(path, data={"csrf_token": token, **(data or {})})


# -- sign-up -----------------------------------------------------------------------------


def test_signup_form_has_labels_for_every_field_and_the_taxonomy(site: Site) -> None:
    html = body(site.client.get("/"))
    for name in ("email", "interests", "keywords", "exclude", "authors", "seeds", "bibtex",
                 "send_hour", "timezone", "weekday", "max_papers"):
        assert f'<label for="{name}"' in html or f'for="{name}"' in html, name
        assert f'id="{name}"' in html
    assert 'value="cs.CL"' in html and "Computation and Language" in html
    assert 'value="astro-ph.CO"' in html
    assert "<option selected>UTC</option>" in html  # the default until tz.js runs
    assert re.search(r'<script src="/static/tz\.js"', html)
    assert "<script>" not in html  # no inline script


def test_pages_carry_security_headers(site: Site) -> None:
    for path in ("/", "/subscribe", "/nope", "/unsubscribe/forged"):
        headers = site.client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "unsafe-inline" not in csp and "default-src 'none'" in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
        assert headers["X-Robots-Tag"] == "noindex, nofollow"


def test_static_files_are_served(site: Site) -> None:
    assert site.client.get("/static/style.css").status_code == 200
    js = site.client.get("/static/tz.js")
    assert js.status_code == 200 and b"resolvedOptions().timeZone" in js.data


def test_signup_creates_a_pending_subscriber_and_mails_a_confirmation(site: Site) -> None:
    response = site.signup("Alice@Example.org")
    assert response.status_code == 200
    assert "Check your email" in body(response)
    sub = site.db.find_subscriber("alice@example.org")
    assert sub is not None and sub.status == "pending"
    assert sub.profile.categories == ("cs.LG",)
    assert sub.profile.keywords == ("GNN", "message passing")
    assert (sub.send_hour, sub.timezone, sub.max_papers) == (8, "Europe/Berlin", 7)
    [message] = site.outbox
    assert message["To"] == "alice@example.org"
    assert "List-Unsubscribe" not in message
    assert link_in(message, "confirm").startswith("/confirm/")
    # Pending means no digest: the pipeline only plans active subscribers.
    plans, _ = pipeline.plan_due(site.config, site.db, now=site.clock(), day=None, only=None,
                                 force=True)
    assert plans == []


def test_signup_mails_a_confirmation_when_the_from_domain_is_international(config) -> None:  # type: ignore[no-untyped-def]
    # DIGEST_FROM on an international domain: the confirmation's Message-ID was made on
    # the raw "bücher.example", writing the message failed on the non-ASCII byte, and
    # every sign-up was a 500 (its hourly mail spent, so a second try mailed nothing).
    site = make_site(replace(config, from_addr="digest@bücher.example"))
    response = site.signup("alice@example.org")
    assert response.status_code == 200
    assert "Check your email" in body(response)
    [message] = site.outbox
    wire = mail.message_to_bytes(message)
    assert wire.isascii()
    assert re.search(rb"^Message-ID: <[^<>@\s]+@xn--bcher-kva\.example>\r$", wire, re.M)
    assert message["From"].addresses[0].addr_spec == "digest@xn--bcher-kva.example"
    assert link_in(message, "confirm").startswith("/confirm/")
    # A digest's Message-ID had the "ü" dropped: bcher.example, someone else's domain.
    digest_id = pipeline.composing.message_id(site.config, 1, site.clock().date())
    assert digest_id.endswith("@xn--bcher-kva.example>")


def test_signup_without_csrf_token_is_refused(site: Site) -> None:
    site.csrf()  # a session exists, but the form does not carry its token
    response = site.client.post("/subscribe", data={"email": "a@example.org",
                                                    "interests": "x"})
    assert response.status_code == 400
    response = site.client.post("/subscribe", data={"email": "a@example.org",
                                                    "interests": "x", "csrf_token": "forged"})
    assert response.status_code == 400
    assert site.db.find_subscriber("a@example.org") is None and site.outbox == []


def test_a_non_ascii_csrf_token_is_refused_like_any_wrong_one(site: Site, caplog) -> None:  # type: ignore[no-untyped-def]
    # hmac.compare_digest raises TypeError on non-ASCII text: such a token was a 500
    # with a logged traceback, which anyone could repeat to flood the error log.
    site.csrf()
    with caplog.at_level("ERROR", logger="digest.web"):
        for path in ("/subscribe", tokens.preferences_url("", SECRET, 1) + "/pause"):
            response = site.client.post(path, data={"csrf_token": "é" * 43,
                                                    "email": "a@example.org"})
            assert response.status_code == 400, path
            assert "This form has expired" in body(response)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_signup_rejects_a_bad_address_and_an_empty_profile(site: Site) -> None:
    response = site.signup("not an address")
    assert response.status_code == 400 and "enter one email address" in body(response)
    response = site.signup("b@example.org", interests="", keywords="", categories=[])
    assert response.status_code == 400 and "tell us what you want to read" in body(response)
    response = site.signup("c@example.org", categories=["cs.XX"])
    assert response.status_code == 400 and "unknown arXiv category" in body(response)
    assert site.outbox == [] and site.db.list_subscribers() == []


def test_signup_enforces_field_size_limits(site: Site) -> None:
    response = site.signup("a@example.org", interests="x" * 2001)
    assert response.status_code == 400 and "at most 2000 characters" in body(response)
    response = site.signup("a@example.org", keywords="\n".join(f"k{i}" for i in range(51)))
    assert response.status_code == 400
    response = site.signup("a@example.org", max_papers="500")
    assert response.status_code == 400
    response = site.signup("a@example.org", timezone="Mars/Olympus")
    assert response.status_code == 400
    big = site.client.post("/subscribe", data={"csrf_token": site.csrf(),
                                               "interests": "x" * (2 * 1024 * 1024)})
    assert big.status_code == 413 and "too much data" in body(big)
    assert site.db.list_subscribers() == []


def test_signup_reads_seed_ids_and_a_bibtex_upload(site: Site) -> None:
    from io import BytesIO

    bib = (b"@article{a, title={X}, eprint={2401.01234}, archivePrefix={arXiv}}\n"
           b"@misc{b, url = \"https://arxiv.org/abs/hep-th/9901001v2\"}\n")
    response = site.signup("a@example.org", seeds="https://arxiv.org/abs/2312.00001v3",
                           bibtex=(BytesIO(bib), "refs.bib"))
    assert response.status_code == 200
    sub = site.db.find_subscriber("a@example.org")
    assert sub is not None
    assert sub.profile.seeds == ("arxiv:2312.00001", "arxiv:2401.01234", "arxiv:hep-th/9901001")


def test_asking_again_answers_the_same_for_new_and_existing_addresses(site: Site) -> None:
    site.add("old@example.org", keywords=("kept",))
    new = site.signup("new@example.org")
    old = site.signup("old@example.org", keywords="overwritten")
    assert new.status_code == old.status_code == 200
    assert body(new).replace("new@example.org", "X") == body(old).replace("old@example.org", "X")
    kept = site.db.find_subscriber("old@example.org")
    assert kept is not None and kept.status == "active" and kept.profile.keywords == ("kept",)


def test_at_most_one_confirmation_mail_per_address_per_hour(site: Site) -> None:
    site.signup("a@example.org")
    site.clock.advance(minutes=30)
    site.signup("a@example.org", keywords="changed")
    assert len(site.outbox) == 1
    sub = site.db.find_subscriber("a@example.org")
    # Unchanged until the owner confirms: the second sign-up got no link to confirm it.
    assert sub is not None and sub.profile.keywords == ("GNN", "message passing")
    site.clock.advance(minutes=31)
    site.signup("a@example.org")
    assert len(site.outbox) == 2


def test_a_failed_confirmation_mail_can_be_retried_at_once(config) -> None:  # type: ignore[no-untyped-def]
    from digest.errors import DeliveryError

    sent = []

    def flaky(message):  # type: ignore[no-untyped-def]
        if not sent:
            sent.append(None)
            raise DeliveryError("connection refused", "later")
        sent.append(message)

    from digest.web import create_app

    site = make_site(config)
    site.app = create_app(config, now=site.clock, send=flaky)
    site.client = site.app.test_client()
    assert site.signup("a@example.org").status_code == 503  # says the mail did not go
    assert site.signup("a@example.org").status_code == 200
    assert len(sent) == 2 and sent[1] is not None


def test_a_sign_up_whose_mail_our_server_refuses_says_so_and_keeps_the_form(config, smtp_server) -> None:  # type: ignore[no-untyped-def]  # noqa: E501
    from digest.web import create_app
    from tests.test_web_support import Clock

    # The production sender, to a real SMTP server that is restarting (421 at MAIL).
    cfg = replace(config, smtp=smtp_server.settings())
    app = create_app(cfg, now=Clock())
    site = Site(config=cfg, app=app, client=app.test_client(), clock=Clock())
    smtp_server.fail("mail", "421 4.3.2 Service restarting, try again")
    refused = site.signup("r@example.org", interests="quantum error correction")
    text = " ".join(refused.get_data(as_text=True).split())
    # It said "Check your email ... a message is on its way", and to ask again in an
    # hour: the visitor waited for a mail that was never sent.
    assert refused.status_code == 503
    assert "Check your email" not in text and "on its way" not in text
    assert "could not send the email to r@example.org just now" in text
    assert "quantum error correction" in text  # the form comes back filled in
    assert smtp_server.messages == []
    # Sent again once the server is back, the confirmation goes out at once.
    again = site.signup("r@example.org", interests="quantum error correction")
    assert again.status_code == 200 and "Check your email" in again.get_data(as_text=True)
    [received] = smtp_server.by_recipient("r@example.org")
    assert "Confirm your subscription" in received.message["Subject"]


def test_confirmation_mail_goes_out_over_real_smtp(config, smtp_server) -> None:  # type: ignore[no-untyped-def]
    from digest.web import create_app

    def send(message):  # type: ignore[no-untyped-def]
        with mail.open_transport(smtp_server.settings(), config.maildir) as transport:
            transport.send(message)

    app = create_app(config, send=send)
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True))
    assert token
    client.post("/subscribe", data={"csrf_token": token.group(1), "email": "r@example.org",
                                    "interests": "quantum error correction"})
    [received] = smtp_server.by_recipient("r@example.org")
    assert "Confirm your subscription" in received.message["Subject"]
    assert "/confirm/" in received.data.decode()


# -- confirmation ------------------------------------------------------------------------


def test_confirm_get_shows_a_button_and_only_post_activates(site: Site) -> None:
    site.signup("a@example.org")
    path = link_in(site.outbox[0], "confirm")
    page = site.client.get(path)
    assert page.status_code == 200 and 'method="post"' in body(page)
    assert site.client.head(path).status_code == 200
    assert site.db.find_subscriber("a@example.org").status == "pending"  # type: ignore[union-attr]
    done = post(site, path)
    assert done.status_code == 200 and "You are subscribed" in body(done)
    assert site.db.find_subscriber("a@example.org").status == "active"  # type: ignore[union-attr]
    again = post(site, path)  # replaying the confirmation changes nothing
    assert again.status_code == 200


def test_confirm_post_needs_the_csrf_token(site: Site) -> None:
    site.signup("a@example.org")
    path = link_in(site.outbox[0], "confirm")
    assert site.client.post(path).status_code == 400
    assert site.db.find_subscriber("a@example.org").status == "pending"  # type: ignore[union-attr]


def _old_token(purpose: str, payload: object, age: float) -> str:
    class Old(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age)

    return URLSafeTimedSerializer(SECRET, salt=f"digest.{purpose}", signer=Old).dumps(payload)


@pytest.mark.parametrize("method", ["get", "post"])
def test_forged_tampered_expired_and_wrong_purpose_confirm_tokens_change_nothing(
    site: Site, method: str
) -> None:
    site.signup("a@example.org")
    good = link_in(site.outbox[0], "confirm").removeprefix("/confirm/")
    bad = {
        "forged": tokens.sign("another-secret-key-0123456789", "confirm", "a@example.org"),
        "tampered": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "expired": _old_token("confirm", "a@example.org", 3 * 86400 + 60),
        "wrong purpose": tokens.sign(SECRET, "unsubscribe", "a@example.org"),
        "garbage": "x" * 2000,
    }
    csrf = site.csrf("/confirm/" + good)
    for name, token in bad.items():
        if method == "get":
            response = site.client.get(f"/confirm/{token}")
        else:
            response = site.client.post(f"/confirm/{token}", data={"csrf_token": csrf})
        assert response.status_code in (400, 403), name
        assert "Traceback" not in body(response)
    assert "expired" in body(site.client.get(f"/confirm/{bad['expired']}"))
    assert site.db.find_subscriber("a@example.org").status == "pending"  # type: ignore[union-attr]


def test_confirming_lifts_the_suppression_of_a_deleted_address(site: Site) -> None:
    sub = site.add("gone@example.org")
    site.db.remove_subscriber(sub.id, now=site.clock(), reason="test")
    assert site.db.is_suppressed("gone@example.org")
    site.signup("gone@example.org")
    assert site.db.find_subscriber("gone@example.org").status == "pending"  # type: ignore[union-attr]
    assert site.db.is_suppressed("gone@example.org")  # not until the owner confirms
    post(site, link_in(site.outbox[-1], "confirm"))
    assert site.db.find_subscriber("gone@example.org").status == "active"  # type: ignore[union-attr]
    assert not site.db.is_suppressed("gone@example.org")


def test_a_deleted_subscribers_old_links_never_open_a_new_subscriber(site: Site) -> None:
    first = site.add("first@example.org")
    old_unsub = tokens.sign(SECRET, "unsubscribe", first.id)
    site.db.remove_subscriber(first.id, now=site.clock(), reason="test")
    second = site.add("second@example.org")
    assert second.id != first.id
    site.client.post(f"/unsubscribe/{old_unsub}", data={"List-Unsubscribe": "One-Click"})
    assert site.db.get_subscriber(second.id).status == "active"  # type: ignore[union-attr]


# -- unsubscribe -------------------------------------------------------------------------


def test_unsubscribe_get_shows_a_button_and_changes_nothing(site: Site) -> None:
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id)
    page = site.client.get(path)
    assert page.status_code == 200 and "<button" in body(page) and "a@example.org" in body(page)
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]


def test_one_click_unsubscribe_works_without_cookie_or_csrf_and_is_replay_safe(
    site: Site,
) -> None:
    sub = site.add("a@example.org")
    url = pipeline.digest_links(site.config, sub.id, []).unsubscribe
    path = url.removeprefix(site.config.base_url)
    bare = site.app.test_client(use_cookies=False)
    for _ in range(2):
        response = bare.post(path, data={"List-Unsubscribe": "One-Click"},
                             content_type="application/x-www-form-urlencoded")
        assert response.status_code == 200
        assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    plans, _ = pipeline.plan_due(site.config, site.db, now=site.clock(), day=None, only=None,
                                 force=True)
    assert plans == []


@pytest.mark.parametrize("body_text", ["List-Unsubscribe=One-Click\r\n",
                                       "List-Unsubscribe=One-Click\n",
                                       "List-Unsubscribe=+One-Click+"])
def test_one_click_unsubscribe_takes_the_value_with_spacing_around_it(
    site: Site, body_text: str
) -> None:
    """A provider whose POST body ends in a line break (or pads the value) unsubscribes
    too: a 400 there leaves the reader subscribed, and the next digest reported as spam."""
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id)
    bare = site.app.test_client(use_cookies=False)
    response = bare.post(path, data=body_text, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]


def test_unsubscribe_post_from_the_page_needs_csrf(site: Site) -> None:
    sub = site.add("a@example.org")
    path = tokens.unsubscribe_url("", SECRET, sub.id)
    assert site.client.post(path, data={}).status_code == 400
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]
    assert post(site, path).status_code == 200
    assert site.db.get_subscriber(sub.id).status == "unsubscribed"  # type: ignore[union-attr]
    assert "You are unsubscribed" in body(site.client.get(path))


def test_forged_unsubscribe_tokens_change_nothing(site: Site) -> None:
    sub = site.add("a@example.org")
    good = tokens.sign(SECRET, "unsubscribe", sub.id)
    for token in (
        tokens.sign("another-secret-key-0123456789", "unsubscribe", sub.id),
        good[:-3] + "abc",
        tokens.sign(SECRET, "preferences", sub.id),  # wrong purpose
        tokens.sign(SECRET, "unsubscribe", "a@example.org"),  # wrong payload type
    ):
        response = site.client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code in (400, 403)
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]


# -- feedback ----------------------------------------------------------------------------


def test_feedback_get_shows_the_paper_and_only_post_records_the_vote(site: Site) -> None:
    sub = site.add("a@example.org")
    paper = site.paper()
    path = tokens.feedback_url("", SECRET, sub.id, paper.key, 1)
    page = site.client.get(path)
    assert page.status_code == 200
    assert "Agents &lt;b&gt;that&lt;/b&gt; plan" in body(page)  # escaped
    assert site.db.votes([sub.id]) == {}
    assert site.client.post(path).status_code == 400  # no CSRF token
    assert site.db.votes([sub.id]) == {}
    done = post(site, path)
    assert done.status_code == 200 and "Thanks" in body(done)
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: 1}}
    less = tokens.feedback_url("", SECRET, sub.id, paper.key, -1)
    post(site, less)
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: -1}}


def test_thumbs_on_a_paper_with_a_long_non_latin_key_are_recorded(site: Site) -> None:
    # A feed item whose guid is non-Latin text keys its paper with up to 200 characters
    # of up to 4 bytes each; the link carries the key, and tokens over 512 characters
    # were refused as "not valid" before any check.
    sub = site.add("a@example.org")
    paper = site.paper(key="rss:" + "論文の識別子" * 32 + "🧪" * 4, title="A paper")
    assert len(paper.key) == 200
    done = post(site, tokens.feedback_url("", SECRET, sub.id, paper.key, 1))
    assert done.status_code == 200 and "Thanks" in body(done)
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: 1}}


def test_forged_feedback_tokens_record_nothing(site: Site) -> None:
    sub = site.add("a@example.org")
    csrf = site.csrf()
    for token in (
        tokens.sign("another-secret-key-0123456789", "feedback", [sub.id, "arxiv:1", 1]),
        tokens.sign(SECRET, "feedback", [sub.id, "arxiv:1", 5]),  # not a vote
        tokens.sign(SECRET, "unsubscribe", sub.id),
        _old_token("feedback", [sub.id, "arxiv:1", 1], 400 * 86400),
    ):
        for method in ("get", "post"):
            response = getattr(site.client, method)(f"/feedback/{token}",
                                                    data={"csrf_token": csrf})
            assert response.status_code in (400, 403)
    assert site.db.votes([sub.id]) == {}


def test_feedback_links_in_the_old_format_keep_working(site: Site) -> None:
    # Digests sent before the compact feedback links carry itsdangerous tokens signed
    # with the "digest.feedback" salt; they must keep opening and recording votes.
    sub = site.add("a@example.org")
    paper = site.paper()
    old_more = _old_token("feedback", [sub.id, paper.key, 1], 30 * 86400)
    old_less = _old_token("feedback", [sub.id, paper.key, -1], 30 * 86400)
    assert tokens.feedback_url("", SECRET, sub.id, paper.key, 1) != f"/feedback/{old_more}"
    page = site.client.get(f"/feedback/{old_more}")
    assert page.status_code == 200 and "More like this?" in body(page)
    assert site.db.votes([sub.id]) == {}
    post(site, f"/feedback/{old_more}")
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: 1}}
    post(site, f"/feedback/{old_less}")
    assert site.db.votes([sub.id]) == {sub.id: {paper.key: -1}}


def test_tampered_or_expired_compact_feedback_links_record_nothing(site: Site) -> None:
    sub = site.add("a@example.org")
    other = site.add("b@example.org")
    paper = site.paper()
    token = tokens.feedback_url("", SECRET, sub.id, paper.key, 1).rsplit("/", 1)[1]
    subscriber, direction, key, stamp, mac = token.split(".")
    year_ago = int(time.time()) - 366 * 86400
    csrf = site.csrf()
    for forged in (
        f"{other.id}.{direction}.{key}.{stamp}.{mac}",  # another subscriber
        f"{subscriber}.less.{key}.{stamp}.{mac}",  # the other vote
        f"{subscriber}.{direction}.{key}.{stamp}.{mac[:-1]}{'B' if mac.endswith('A') else 'A'}",
        tokens.feedback_url("", "another-secret-key-0123456789", sub.id, paper.key, 1)
        .rsplit("/", 1)[1],
        tokens.feedback_url("", SECRET, sub.id, paper.key, 1, timestamp=year_ago)
        .rsplit("/", 1)[1],
    ):
        for method in ("get", "post"):
            response = getattr(site.client, method)(f"/feedback/{forged}",
                                                    data={"csrf_token": csrf})
            assert response.status_code in (400, 403), forged
    assert site.db.votes([sub.id, other.id]) == {}
    post(site, f"/feedback/{token}")  # the untouched link still works
    assert site.db.votes([sub.id, other.id]) == {sub.id: {paper.key: 1}}


# -- preferences -------------------------------------------------------------------------


def test_preferences_page_shows_the_profile_and_what_the_ranker_sees(site: Site) -> None:
    sub = site.add("a@example.org", keywords=("planning",), categories=("cs.AI",))
    paper = site.paper()
    site.db.record_vote(sub.id, paper.key, 1, now=site.clock())
    html = body(site.client.get(tokens.preferences_url("", SECRET, sub.id)))
    assert "a@example.org" in html
    assert "What the ranker thinks you like" in html
    assert "Agents &lt;b&gt;that&lt;/b&gt; plan" in html
    assert "Artificial Intelligence" in html
    assert re.search(r"<li>planning</li>", html)
    assert 'value="cs.AI" checked' in html


def test_preferences_post_updates_every_field_and_keeps_votes(site: Site) -> None:
    sub = site.add("a@example.org")
    site.db.update_subscriber(sub.id, now=site.clock(),
                              profile=Profile(interests="x", liked=("arxiv:2605.00001",)))
    path = tokens.preferences_url("", SECRET, sub.id)
    response = post(site, path, {
        "interests": "robot learning", "keywords": "sim2real\nmanipulation",
        "exclude": "survey", "authors": "Sergey Levine", "seeds": "2401.01234",
        "categories": "cs.RO", "send_hour": "6", "timezone": "Asia/Tokyo",
        "cadence": "weekly", "weekday": "4", "max_papers": "3", "empty_digest": "note",
        "popularity": "0.5",
    })
    assert response.status_code == 200 and "saved" in body(response)
    fresh = site.db.get_subscriber(sub.id)
    assert fresh is not None
    assert fresh.profile == Profile(
        interests="robot learning", keywords=("sim2real", "manipulation"), exclude=("survey",),
        categories=("cs.RO",), authors=("Sergey Levine",), seeds=("arxiv:2401.01234",),
        liked=("arxiv:2605.00001",),
    )
    assert (fresh.send_hour, fresh.timezone, fresh.cadence, fresh.weekday, fresh.max_papers) == (
        6, "Asia/Tokyo", "weekly", 4, 3)
    assert (fresh.empty_digest, fresh.popularity) == ("note", 0.5)
    assert fresh.email == "a@example.org"
    # The page shows them back as chosen.
    page = body(site.client.get(path))
    assert re.search(r'name="empty_digest" value="note" checked', page)
    assert re.search(r'<option value="0.5" selected>Half</option>', page)


def test_a_time_zone_outside_the_region_city_list_is_offered_and_kept(config) -> None:  # type: ignore[no-untyped-def]
    # DIGEST_TIMEZONE=CET is valid, but not one of the Region/City names the form lists:
    # nothing was preselected, and a form sent without script chose Africa/Abidjan.
    site = make_site(replace(config, timezone="CET"))
    form = body(site.client.get("/"))
    assert '<option selected>CET</option>' in form
    sub = site.add("a@example.org")
    site.db.update_subscriber(sub.id, now=site.clock(), timezone="EST5EDT")
    page = body(site.client.get(tokens.preferences_url("", SECRET, sub.id)))
    assert '<option selected>EST5EDT</option>' in page


def test_a_popularity_set_elsewhere_shows_on_the_page_as_it_is(site: Site) -> None:
    sub = site.add("a@example.org")
    site.db.update_subscriber(sub.id, now=site.clock(), popularity=0.3)
    page = body(site.client.get(tokens.preferences_url("", SECRET, sub.id)))
    assert '<option value="0.3" selected>0.3 (set for you)</option>' in page
    assert '<option value="0.0">Not at all</option>' in page


def test_the_popularity_blend_says_so_where_no_source_carries_upvotes(config) -> None:  # type: ignore[no-untyped-def]
    # An instance reading arXiv alone offered "Papers trending on Hugging Face" like
    # any other setting: a subscriber who chose "Mostly" was never told it could change
    # nothing. The form says so until a source that carries upvotes is added.
    site = make_site(replace(config, sources=parse_sources("arxiv-rss:cs.LG")))
    note = "reads no Hugging Face list"
    assert note in body(site.client.get("/"))
    sub = site.add("a@example.org")
    site.db.update_subscriber(sub.id, now=site.clock(), popularity=0.75)
    path = tokens.preferences_url("", SECRET, sub.id)
    page = body(site.client.get(path))
    assert note in page and '<option value="0.75" selected>Mostly</option>' in page
    site.db.add_source(parse_sources("hf-daily")[0], now=site.clock())
    assert note not in body(site.client.get(path))
    assert note not in body(make_site(config).client.get("/"))  # JSON lines may carry them


def test_preferences_post_rejects_bad_input_and_missing_csrf(site: Site) -> None:
    sub = site.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    assert site.client.post(path, data={"interests": "changed"}).status_code == 400
    bad = post(site, path, {"interests": "changed", "send_hour": "25"})
    assert bad.status_code == 400
    assert site.db.get_subscriber(sub.id).profile.interests == "language models"  # type: ignore[union-attr]


@pytest.mark.parametrize("field", ["send_hour", "weekday", "max_papers"])
def test_a_number_field_holding_a_superscript_digit_is_refused_not_a_500(
    site: Site, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    # "²".isdigit() is true but int("²") raises: such a value was an unhandled 500 with a
    # logged traceback, on the sign-up form as on the preferences page.
    with caplog.at_level("ERROR", logger="digest.web"):
        response = site.signup("a@example.org", **{field: "²"})
        assert response.status_code == 400
        assert "choose a number from" in body(response)
        sub = site.add("b@example.org")
        path = tokens.preferences_url("", SECRET, sub.id)
        response = post(site, path, {"interests": "changed", field: "³"})
        assert response.status_code == 400
        assert "choose a number from" in body(response)
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
    assert site.outbox == []
    assert site.db.get_subscriber(sub.id).profile.interests == "language models"  # type: ignore[union-attr]


def test_pause_and_resume(site: Site) -> None:
    sub = site.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    assert site.client.post(path + "/pause").status_code == 400  # CSRF
    post(site, path + "/pause", csrf_from=path)
    assert site.db.get_subscriber(sub.id).status == "paused"  # type: ignore[union-attr]
    post(site, path + "/resume", csrf_from=path)
    assert site.db.get_subscriber(sub.id).status == "active"  # type: ignore[union-attr]


def test_a_pending_subscriber_cannot_resume_without_confirming(site: Site) -> None:
    sub = site.add("a@example.org", status="pending")
    path = tokens.preferences_url("", SECRET, sub.id)
    post(site, path + "/resume", csrf_from=path)
    assert site.db.get_subscriber(sub.id).status == "pending"  # type: ignore[union-attr]


def test_export_downloads_everything_as_json(site: Site) -> None:
    sub = site.add("a@example.org")
    paper = site.paper()
    site.db.record_vote(sub.id, paper.key, -1, now=site.clock())
    response = site.client.get(tokens.preferences_url("", SECRET, sub.id) + "/export")
    assert response.status_code == 200 and response.mimetype == "application/json"
    assert "attachment" in response.headers["Content-Disposition"]
    data = response.get_json()
    assert data["email"] == "a@example.org"
    assert data["votes"][0]["paper"] == paper.key and data["votes"][0]["vote"] == -1
    assert data["profile"]["interests"] == "language models"


def test_delete_needs_the_checkbox_then_removes_everything(site: Site) -> None:
    sub = site.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    refused = post(site, path + "/delete", csrf_from=path)
    assert refused.status_code == 400 and site.db.get_subscriber(sub.id) is not None
    done = post(site, path + "/delete", {"confirm_delete": "yes"}, csrf_from=path)
    assert done.status_code == 200
    assert site.db.get_subscriber(sub.id) is None
    assert site.db.is_suppressed("a@example.org")
    assert site.client.get(path).status_code == 404


def test_forged_preferences_tokens_show_nothing(site: Site) -> None:
    sub = site.add("a@example.org")
    for token in (
        tokens.sign("another-secret-key-0123456789", "preferences", sub.id),
        tokens.sign(SECRET, "unsubscribe", sub.id),
        tokens.sign(SECRET, "preferences", [sub.id]),
    ):
        response = site.client.get(f"/preferences/{token}")
        assert response.status_code in (400, 403)
        assert "a@example.org" not in body(response)
        assert site.client.get(f"/preferences/{token}/export").status_code in (400, 403)


# -- errors ------------------------------------------------------------------------------


def test_errors_show_a_page_without_internals(site: Site) -> None:
    def boom() -> str:
        raise RuntimeError("secret internals")

    site.app.add_url_rule("/boom", view_func=boom)
    site.app.testing = False  # production behaviour: the handler, not the exception
    response = site.client.get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in body(response) and "Traceback" not in body(response)
    assert response.headers["Content-Security-Policy"]
    missing = site.client.get("/no/such/page")
    assert missing.status_code == 404 and "There is nothing here" in body(missing)
    assert site.client.put("/subscribe").status_code == 405


def test_healthz(site: Site) -> None:
    assert site.client.get("/healthz").data == b"ok\n"


def test_healthz_fails_when_the_database_does_not_answer(config: Config) -> None:
    # A monitor polling /healthz heard "ok" while every sign-up was a 503.
    site = make_site(config)
    path = Path(config.database_url.removeprefix("sqlite:///"))
    if not path.is_file():
        pytest.skip("an SQLite file is made unreadable here")
    path.unlink()
    path.mkdir()  # where the database was, a folder: SQLite cannot open it
    site.db.engine.dispose()  # the pool's open connections held the deleted file
    answer = site.client.get("/healthz")
    assert answer.status_code == 503 and answer.data == b"database unavailable\n"


def test_digest_links_from_the_pipeline_open_these_pages(site: Site) -> None:
    sub = site.add("a@example.org")
    paper = site.paper()
    from digest.models import ScoredPaper

    links = pipeline.digest_links(site.config, sub.id, [ScoredPaper(paper, 1.0, "")])
    for url in (links.unsubscribe, links.preferences, links.more[paper.key],
                links.less[paper.key]):
        assert url.startswith(site.config.base_url)
        assert site.client.get(url.removeprefix(site.config.base_url)).status_code == 200


def test_create_app_reads_the_environment_when_given_no_config(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # waitress-serve --call digest.web:create_app calls it with no arguments.
    from digest.web import create_app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_VAR_DIR", str(tmp_path / "var"))
    app = create_app()
    assert app.test_client().get("/").status_code == 200
