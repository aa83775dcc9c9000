"""The sign-up form against scripts: a hidden field, and hourly caps on its mails.

Anyone may type anyone's address into the form, so a script posting thousands of
strangers' addresses would make our relay mail them all (and get it blocklisted).
Through Flask's test client, with the client's address set per request.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import text

from digest.config import Config, config_from_values
from digest.store import Store
from tests.test_web_support import make_site


def subscribers(db: Store) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM subscribers")).scalar_one())


def test_the_hidden_field_is_on_the_form_off_screen_and_not_in_the_tab_order(
    config: Config,
) -> None:
    site = make_site(config)
    html = site.client.get("/").get_data(as_text=True)
    assert '<div class="hp" aria-hidden="true">' in html
    assert 'name="homepage" value="" tabindex="-1" autocomplete="off"' in html
    css = site.client.get("/static/style.css").get_data(as_text=True)
    assert ".hp { position: absolute; left: -10000px;" in css


def test_a_sign_up_with_the_hidden_field_filled_in_stores_and_mails_nothing(
    config: Config,
) -> None:
    site = make_site(config)
    bot = site.signup("victim@example.org", homepage="http://spam.example")
    person = site.signup("person@example.org")
    # The same answer as a person's (a script learns nothing), but nothing behind it.
    assert bot.status_code == person.status_code == 200
    assert "Check your email" in bot.get_data(as_text=True)
    assert site.db.find_subscriber("victim@example.org") is None
    assert [m["To"] for m in site.outbox] == ["person@example.org"]


def test_one_client_gets_so_many_sign_ups_an_hour_then_a_429(config: Config) -> None:
    site = make_site(replace(config, signup_per_client=3, signup_per_hour=0))
    for n in range(3):
        assert site.signup(f"a{n}@example.org", remote="203.0.113.7").status_code == 200
    refused = site.signup("a3@example.org", remote="203.0.113.7")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "3600"
    page = refused.get_data(as_text=True)
    assert "too many sign-ups from your network" in page and "try again in an hour" in page
    assert site.db.find_subscriber("a3@example.org") is None and len(site.outbox) == 3
    # Another client is not held up; the same one is again after the hour.
    assert site.signup("b@example.org", remote="198.51.100.1").status_code == 200
    site.clock.advance(minutes=61)
    assert site.signup("a3@example.org", remote="203.0.113.7").status_code == 200
    assert len(site.outbox) == 5 and subscribers(site.db) == 5


def test_an_ipv6_client_is_its_slash_64(config: Config) -> None:
    # One machine has a whole /64 to pick addresses from: counted as one client.
    site = make_site(replace(config, signup_per_client=2, signup_per_hour=0))
    assert site.signup("a@example.org", remote="2001:db8:1:2::1").status_code == 200
    assert site.signup("b@example.org", remote="2001:db8:1:2:ffff::9").status_code == 200
    assert site.signup("c@example.org", remote="2001:db8:1:2::abcd").status_code == 429
    assert site.signup("d@example.org", remote="2001:db8:1:3::1").status_code == 200


def test_an_ipv4_client_seen_through_a_dual_stack_socket_is_its_own_client(
    config: Config,
) -> None:
    # A server or proxy listening on IPv6 for both families sees an IPv4 client as
    # ::ffff:a.b.c.d. Cut to its /64, every IPv4 client in the world was one client, and
    # the first few sign-ups of the hour spent everyone's share.
    site = make_site(replace(config, signup_per_client=1, signup_per_hour=0))
    assert site.signup("a@example.org", remote="::ffff:192.0.2.1").status_code == 200
    assert site.signup("b@example.org", remote="::ffff:198.51.100.7").status_code == 200
    # The same IPv4 client, however its address arrives, is still one client.
    assert site.signup("c@example.org", remote="192.0.2.1").status_code == 429
    assert site.signup("d@example.org", remote="::ffff:198.51.100.7").status_code == 429
    assert len(site.outbox) == 2


def test_the_site_gets_so_many_sign_ups_an_hour_from_everyone(config: Config) -> None:
    site = make_site(replace(config, signup_per_client=0, signup_per_hour=4))
    for n in range(4):
        assert site.signup(f"a{n}@example.org", remote=f"192.0.2.{n}").status_code == 200
    refused = site.signup("late@example.org", remote="192.0.2.99")
    assert refused.status_code == 429
    assert "too many sign-ups in the last hour" in refused.get_data(as_text=True)
    assert len(site.outbox) == 4
    site.clock.advance(minutes=61)
    assert site.signup("late@example.org", remote="192.0.2.99").status_code == 200


def test_a_form_with_errors_counts_toward_no_cap(config: Config) -> None:
    site = make_site(replace(config, signup_per_client=1, signup_per_hour=0))
    for _ in range(3):
        assert site.signup("not an address", remote="203.0.113.7").status_code == 400
    assert site.signup("a@example.org", remote="203.0.113.7").status_code == 200


def test_forwarded_for_is_believed_only_behind_a_trusted_proxy(config: Config) -> None:
    proxy = "10.0.0.2"
    # No proxy configured: the header is the client's to forge, so it changes nothing.
    direct = make_site(replace(config, signup_per_client=1, signup_per_hour=0))
    assert direct.signup("a@example.org", remote=proxy,
                         headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert direct.signup("b@example.org", remote=proxy,
                         headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 429
    # Behind one proxy: each client is counted by the address the proxy saw.
    behind = make_site(replace(config, signup_per_client=1, signup_per_hour=0,
                               trusted_proxies=1))
    for n in (11, 12):
        assert behind.signup(f"c{n}@example.org", remote=proxy,
                             headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code == 200
    assert behind.signup("c13@example.org", remote=proxy,
                         headers={"X-Forwarded-For": "203.0.113.11"}).status_code == 429


def test_the_caps_are_settings(tmp_path: Path) -> None:
    values = {"DIGEST_VAR_DIR": str(tmp_path), "DIGEST_SIGNUP_PER_CLIENT": "5",
              "DIGEST_SIGNUP_PER_HOUR": "0", "DIGEST_TRUSTED_PROXIES": "2"}
    config = config_from_values(values)
    assert (config.signup_per_client, config.signup_per_hour, config.trusted_proxies) == (
        5, 0, 2)
    defaults = config_from_values({"DIGEST_VAR_DIR": str(tmp_path)})
    assert (defaults.signup_per_client, defaults.signup_per_hour,
            defaults.trusted_proxies) == (20, 300, 0)
