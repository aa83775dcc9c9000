"""A form sent back with a mistake keeps what the user gave, the uploaded BibTeX included."""

from __future__ import annotations

import html
import re
from io import BytesIO

import pytest

from digest import tokens
from tests.fixtures.config import SECRET
from tests.test_web_support import Site, make_site

BIB = (b"@article{a, title={X}, eprint={2401.01234}, archivePrefix={arXiv}}\n"
       b"@misc{b, url = \"https://arxiv.org/abs/hep-th/9901001v2\"}\n")


@pytest.fixture
def site(config) -> Site:  # type: ignore[no-untyped-def]
    return make_site(config)


def seeds_field(response) -> str:  # type: ignore[no-untyped-def]
    page = response.get_data(as_text=True)
    match = re.search(r'<textarea id="seeds"[^>]*>(.*?)</textarea>', page, re.DOTALL)
    assert match, "no seeds field on the page"
    return html.unescape(match.group(1))


def test_a_signup_sent_back_for_another_field_keeps_the_uploaded_bibtex_ids(site: Site) -> None:
    # A browser never fills a file field again: the ids the upload held were lost.
    response = site.signup("not an address", seeds="2312.00001",
                           bibtex=(BytesIO(BIB), "refs.bib"))
    assert response.status_code == 400
    assert seeds_field(response).split() == ["2312.00001", "2401.01234", "hep-th/9901001"]
    # Sent again as it came back (no file), the subscription has every seed.
    again = site.signup("a@example.org", seeds=seeds_field(response))
    assert again.status_code == 200
    sub = site.db.find_subscriber("a@example.org")
    assert sub is not None
    assert sub.profile.seeds == ("arxiv:2312.00001", "arxiv:2401.01234", "arxiv:hep-th/9901001")


def test_preferences_sent_back_for_another_field_keep_the_uploaded_bibtex_ids(
    site: Site,
) -> None:
    sub = site.add("a@example.org")
    path = tokens.preferences_url("", SECRET, sub.id)
    response = site.client.post(path, data={
        "csrf_token": site.csrf(path), "interests": "robot learning", "seeds": "",
        "send_hour": "25", "bibtex": (BytesIO(BIB), "refs.bib"),
    })
    assert response.status_code == 400
    assert seeds_field(response).split() == ["2401.01234", "hep-th/9901001"]


def test_an_upload_with_no_arxiv_id_adds_nothing_to_the_seeds(site: Site) -> None:
    response = site.signup("a@example.org", seeds="2312.00001",
                           bibtex=(BytesIO(b"@article{x, journal={Nature}}"), "refs.bib"))
    assert response.status_code == 400
    assert seeds_field(response).split() == ["2312.00001"]
