"""The pure form helpers behind the pages: parsing, limits, BibTeX, taxonomy, terms."""

from __future__ import annotations

import json

import pytest

from digest import taxonomy
from digest.models import Paper, Profile
from digest.web import forms


def test_the_taxonomy_is_the_real_one() -> None:
    cats = taxonomy.categories()
    codes = [c.code for c in cats]
    assert len(codes) == len(set(codes)) > 150
    named = {c.code: c.name for c in cats}
    assert named["cs.CL"] == "Computation and Language"
    assert named["hep-th"] == "High Energy Physics - Theory"
    assert named["stat.ML"] == "Machine Learning"
    groups = [g for g, _ in forms.category_groups()]
    assert "Computer Science" in groups and "Physics" in groups
    assert json.loads(taxonomy.CATEGORIES_FILE.read_text())["source"].startswith("arXiv")


BIBTEX = r"""
% a comment with @ sign and eprint = {9999.99999}
@article{vaswani2017,
  title = {Attention Is {All} You Need},
  author = {Vaswani, Ashish and others},
  journal = {arXiv preprint arXiv:1706.03762},
  year = 2017,
}
@misc{brown2020,
  title="Language Models are Few-Shot Learners",
  eprint="2005.14165v4", archivePrefix="arXiv",
}
@inproceedings{doi,
  doi = {10.48550/arXiv.2203.02155},
}
@article{old, eprint = {hep-th/9711200}}
@article{journal, journal = {Nature}, volume = {2401.01234}}
@string{foo = "bar"}
@article{url, url = {https://arxiv.org/pdf/2310.06825.pdf}}
"""


def test_bibtex_yields_arxiv_keys_from_every_usual_field() -> None:
    assert forms.bibtex_arxiv_keys(BIBTEX) == [
        "arxiv:1706.03762",
        "arxiv:2005.14165",
        "arxiv:2203.02155",
        "arxiv:hep-th/9711200",
        "arxiv:2310.06825",
    ]


def test_bibtex_from_semantic_scholar_and_dblp_names_the_paper_in_its_volume() -> None:
    # Semantic Scholar writes an arXiv paper as journal={ArXiv}, volume={abs/<id>}, older
    # DBLP entries as journal={CoRR}, volume={abs/<id>}, neither with an eprint or arXiv
    # URL: such entries were skipped, and a file of only those was refused.
    text = """@article{Liu2022VisualSR,
      title={Visual Spatial Reasoning}, author={Fangyu Liu and Nigel Collier},
      journal={ArXiv}, year={2022}, volume={abs/2205.00363},
      url={https://api.semanticscholar.org/CorpusID:248496506}
    }
    @article{DBLP:journals/corr/VaswaniSPUJGKP17,
      author = {Ashish Vaswani}, title = {Attention Is All You Need},
      journal = {CoRR}, volume = {abs/1706.03762}, year = {2017}
    }
    @article{nature, journal = {Nature}, volume = {abs/2401.01234}}"""
    assert forms.bibtex_arxiv_keys(text) == ["arxiv:2205.00363", "arxiv:1706.03762"]


def test_an_at_sign_inside_a_field_starts_no_entry() -> None:
    # A Mendeley export's abstract with an e-mail address, before the eprint field: the
    # "@" once cut the entry there, and its arXiv id was lost.
    text = """@article{x, abstract = {Write to {me}@lab.org (or @handle)},
                  eprint = {2401.01234}}
              @misc(y, title = "Mail a@b.c", eprint = "2402.00001")
              @comment{@article{z, eprint = {2403.00001}}}
              @article{w, eprint = 2404.00001}"""
    assert forms.bibtex_arxiv_keys(text) == ["arxiv:2401.01234", "arxiv:2402.00001",
                                             "arxiv:2404.00001"]
    # A file cut off inside an entry still yields what it holds.
    assert forms.bibtex_arxiv_keys("@article{q, eprint={2405.00001}, title={Half") == [
        "arxiv:2405.00001"]


def test_bibtex_survives_garbage() -> None:
    assert forms.bibtex_arxiv_keys("@@@{{{ = ,,, }") == []
    assert forms.bibtex_arxiv_keys("@article{x, eprint = {2401.01234") == ["arxiv:2401.01234"]
    assert forms.bibtex_arxiv_keys("") == []


def test_split_items_and_seed_keys() -> None:
    assert forms.split_items("a, b\n c ;a\n\n") == ["a", "b", "c"]
    assert forms.split_items("Hinton, Geoffrey\nLeCun, Yann", commas=False) == [
        "Hinton, Geoffrey", "LeCun, Yann"]
    keys, bad = forms.seed_keys("2401.01234 https://arxiv.org/abs/2312.00001v2, nonsense")
    assert keys == ["arxiv:2401.01234", "arxiv:2312.00001"] and bad == ["nonsense"]


def test_seed_links_to_an_arxiv_pdf_are_read() -> None:
    # The link a reader has at hand is often the PDF's: "2401.01234.pdf" once matched
    # no id ("." after the number), and the form refused the link as holding none.
    keys, bad = forms.seed_keys(
        "https://arxiv.org/pdf/2401.01234.pdf\nhttps://arxiv.org/pdf/2312.00001v2.PDF\n"
        "arxiv.org/pdf/hep-th/9711200.pdf")
    assert keys == ["arxiv:2401.01234", "arxiv:2312.00001", "arxiv:hep-th/9711200"]
    assert bad == []
    profile, _ = forms.parse_profile_form(
        values(seeds="https://arxiv.org/pdf/2401.01234v1.pdf"), [])
    assert profile.seeds == ("arxiv:2401.01234",)


def values(**overrides: str) -> dict[str, str]:
    base = {"interests": "robots", "send_hour": "7", "timezone": "UTC", "cadence": "daily",
            "weekday": "0", "max_papers": "10"}
    base.update(overrides)
    return base


def test_parse_profile_form_builds_profile_and_schedule() -> None:
    profile, schedule = forms.parse_profile_form(
        values(keywords="a\nb", exclude="survey", authors="X Y", seeds="2401.01234",
               timezone="America/New_York", cadence="weekly", weekday="6", max_papers="50"),
        ["cs.RO", "cs.RO"],
    )
    assert profile == Profile(interests="robots", keywords=("a", "b"), exclude=("survey",),
                              categories=("cs.RO",), authors=("X Y",),
                              seeds=("arxiv:2401.01234",))
    assert schedule == forms.Schedule(7, "America/New_York", "weekly", 6, 50)


def test_the_quiet_day_note_and_the_popularity_blend_are_parsed() -> None:
    _, schedule = forms.parse_profile_form(values(empty_digest="note", popularity="0.5"), [])
    assert (schedule.empty_digest, schedule.popularity) == ("note", 0.5)
    assert schedule.as_fields()["empty_digest"] == "note"
    _, default = forms.parse_profile_form(values(), [])
    assert (default.empty_digest, default.popularity) == ("skip", 0.0)
    for name, bad in (("empty_digest", "sometimes"), ("popularity", "2"),
                      ("popularity", "lots")):
        with pytest.raises(forms.FormErrors) as caught:
            forms.parse_profile_form(values(**{name: bad}), [])
        assert name in caught.value.errors


def test_interests_keep_their_lines() -> None:
    # Titles (or topics) one per line, as the form's help asks: each line stays a line,
    # for the ranker to name known titles as seed papers and to weigh each line alike.
    # They were once joined into one line, so no typed title was ever found.
    typed = ("  Attention Is   All You Need \r\n\r\n\tgraph neural\tnetworks\n"
             "   \nDeep residual learning  ")
    profile, _ = forms.parse_profile_form(values(interests=typed), [])
    assert profile.interests == ("Attention Is All You Need\ngraph neural networks\n"
                                 "Deep residual learning")
    assert forms.tidy_interests(" one  line ") == "one line"
    assert forms.tidy_interests(" \n \r\n") == ""


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("interests", "x" * (forms.MAX_INTERESTS + 1)),
        ("keywords", "\n".join(str(i) for i in range(forms.MAX_ITEMS + 1))),
        ("authors", "y" * (forms.MAX_ITEM + 1)),
        ("seeds", "not-an-id"),
        ("seeds", "1" * (forms.MAX_SEEDS_TEXT + 1)),
        ("send_hour", "24"),
        ("send_hour", "-1"),
        ("weekday", "7"),
        ("max_papers", "0"),
        ("timezone", "Nowhere/Special"),
        ("cadence", "hourly"),
    ],
)
def test_parse_profile_form_names_the_bad_field(field: str, value: str) -> None:
    with pytest.raises(forms.FormErrors) as info:
        forms.parse_profile_form(values(**{field: value}), [])
    assert field in info.value.errors


def test_too_many_or_unknown_categories_and_bibtex_limits() -> None:
    with pytest.raises(forms.FormErrors) as info:
        forms.parse_profile_form(values(), ["cs.CL", "cs.NOPE"])
    assert "cs.NOPE" in info.value.errors["categories"]
    many = [c.code for c in taxonomy.categories()][: forms.MAX_CATEGORIES + 1]
    with pytest.raises(forms.FormErrors):
        forms.parse_profile_form(values(), many)
    with pytest.raises(forms.FormErrors) as info:
        forms.parse_profile_form(values(), [], bibtex=b"x" * (forms.MAX_BIBTEX + 1))
    assert "bibtex" in info.value.errors
    with pytest.raises(forms.FormErrors) as info:
        forms.parse_profile_form(values(), [], bibtex=b"@article{a, title={no ids}}")
    assert "bibtex" in info.value.errors


def test_top_terms_favour_liked_and_drop_disliked_words() -> None:
    liked = Paper(key="arxiv:1", title="Diffusion policies for robot manipulation")
    disliked = Paper(key="arxiv:2", title="A survey of manipulation benchmarks")
    terms = forms.top_terms(Profile(interests="robot learning"), [liked], [disliked])
    assert terms[0] == "robot"
    assert "diffusion" in terms and "the" not in terms and "survey" not in terms


def test_bibtex_keeps_percent_signs_inside_fields() -> None:
    bib = "@misc{a, url = {https://arxiv.org/abs/2401.01234?x=%20}}"
    assert forms.bibtex_arxiv_keys(bib) == ["arxiv:2401.01234"]


# Anyone can upload a BibTeX file on the sign-up form (the per-client cap is checked
# after the form is read). Blank lines made the comment stripping quadratic: 40 KB of
# them took 8 s, the 512 KiB allowed ~20 min of one server thread. The timeout is a
# guard with a wide margin (the file reads in well under a second), not a benchmark.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("filler", ["\n", " \n", "\t\r\n", "\n%"])
def test_bibtex_of_the_largest_size_made_of_blank_lines_reads_quickly(filler: str) -> None:
    entry = "@misc{a, eprint = {2401.01234}}\n"
    padding = filler * ((forms.MAX_BIBTEX - len(entry)) // len(filler))
    assert forms.bibtex_arxiv_keys(padding + "\n" + entry) == ["arxiv:2401.01234"]


# The search for a field name ("eprint =") started again at every character of a long
# word with no "=" after it, rescanning the rest of the word each time: 40 KB of one
# word took 24 s, the 512 KiB allowed over an hour of one server thread. As above, the
# timeout is a guard with a wide margin, not a benchmark.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("filler", ["a", "a-", "é1_"])
def test_bibtex_of_the_largest_size_made_of_one_long_word_reads_quickly(filler: str) -> None:
    entry = "@misc{a, eprint = {2401.01234}}\n"
    word = filler * ((forms.MAX_BIBTEX - len(entry) - 10) // len(filler))
    assert forms.bibtex_arxiv_keys(entry + "@misc{b, " + word + "}") == ["arxiv:2401.01234"]
