"""The time zone list says what the sign-inverted Etc/GMT zones mean."""

from __future__ import annotations

import re

import pytest

from digest import tokens
from tests.fixtures.config import SECRET
from tests.test_web_support import Site, make_site


@pytest.fixture
def site(config) -> Site:  # type: ignore[no-untyped-def]
    return make_site(config)


def test_etc_gmt_zones_name_their_real_offset(site: Site) -> None:
    # POSIX signs: Etc/GMT+5 is five hours behind UTC. Listed bare, someone five hours
    # ahead (Pakistan) who picked it got the digest ten hours off.
    form = site.client.get("/").get_data(as_text=True)
    assert re.search(r'<option value="Etc/GMT\+5">Etc/GMT\+5 \(UTC−05:00\)</option>', form)
    assert re.search(r'<option value="Etc/GMT-14">Etc/GMT-14 \(UTC\+14:00\)</option>', form)
    assert "<option>Asia/Kolkata</option>" in form  # other zones as they were
    assert site.signup("a@example.org", timezone="Etc/GMT-5").status_code == 200
    sub = site.db.find_subscriber("a@example.org")
    assert sub is not None and sub.timezone == "Etc/GMT-5"
    site.db.update_subscriber(sub.id, now=site.clock(), status="active")
    page = site.client.get(tokens.preferences_url("", SECRET, sub.id)).get_data(as_text=True)
    assert '<option selected value="Etc/GMT-5">Etc/GMT-5 (UTC+05:00)</option>' in page
