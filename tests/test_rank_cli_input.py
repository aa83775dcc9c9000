"""`digest rank`: what a profiles file may hold, and what it is told when it holds the wrong thing.

Interests as a list of lines, seed ids in every form people paste them (PDF and abstract
links, ``arXiv:`` ids, versions, arXiv DOIs), lines that are not JSON objects and fields
of the wrong type (a usage error, exit 2, naming the file, line and field).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest.cli import ranking  # noqa: F401  (registers the commands)
from digest.cli.base import main
from digest.models import Profile
from tests.fixtures.corpus import MINI, write_mini_day


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Write the sample's last day (batch) and the days before it (history)."""
    return write_mini_day(tmp_path_factory.mktemp("rank-input"))


def _refused(result: Result, profiles: Path, line: int) -> None:
    """Assert a usage error (exit 2) that names the profiles file and the line."""
    assert result.exit_code == 2, (result.output, result.stderr)
    assert f"{profiles}:{line}" in result.stderr


def _write(path: Path, *lines: Any) -> Path:
    path.write_text(
        "".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines),
        encoding="utf-8",
    )
    return path


def _rank(day: tuple[Path, Path, list[dict[str, Any]]], profiles: Path) -> Result:
    batch_path, history_path, _ = day
    return CliRunner().invoke(
        main,
        ["rank", "--papers", str(batch_path), "--profiles", str(profiles),
         "--history", str(history_path), "--top", "5"],
    )


def _lines(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, (result.output, result.stderr)
    return [json.loads(line) for line in result.stdout.splitlines()]


# 1. Interests as a list of lines.


def test_profile_from_dict_joins_a_list_of_interests_with_new_lines() -> None:
    profile = Profile.from_dict({"interests": ["Title one", "Title two"]})
    assert profile.interests == "Title one\nTitle two"
    assert Profile.from_dict({"interests": "a; b\nc"}).interests == "a; b\nc"
    assert Profile.from_dict({}).interests == ""


def test_interests_as_a_list_rank_as_the_same_lines_typed_one_per_line(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    history = day[2]
    named = [history[3], history[40]]
    titles = [str(p["title"]) for p in named]
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "list", "interests": titles},
        {"id": "lines", "interests": "\n".join(titles)},
        {"id": "seeded", "interests": "\n".join(titles), "seeds": [p["id"] for p in named]},
    )
    as_list, as_lines, seeded = _lines(_rank(day, profiles))
    assert as_list["papers"], as_list
    assert as_list["papers"] == as_lines["papers"]
    # Each title on its own line names its paper as a seed (tests/test_rank_named.py):
    # the list ranks as the same lines with those papers given as seeds.
    assert as_list["papers"] == seeded["papers"]


@pytest.mark.parametrize("value", [5, {"text": "robots"}, True, ["robots", 3]])
def test_interests_of_another_type_is_a_usage_error_naming_line_and_field(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], value: object
) -> None:
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "ok", "interests": "robot learning"},
        {"id": "bad", "interests": value},
    )
    result = _rank(day, profiles)
    _refused(result, profiles, 2)
    assert "'interests'" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


# 2. Seed ids in every form.

SEED_FORMS = [
    "https://arxiv.org/pdf/{id}.pdf",
    "https://arxiv.org/pdf/{id}v2",
    "http://arxiv.org/abs/{id}v3",
    "arXiv:{id}",
    "{id}v2",
    "{id}",
    "arxiv:{id}",
    "10.48550/arXiv.{id}",
    "https://doi.org/10.48550/arXiv.{id}",
    "https://doi.org/10.48550/ARXIV.{id}",
]


@pytest.mark.parametrize("form", SEED_FORMS)
def test_read_profiles_resolves_every_form_of_a_known_arxiv_id(tmp_path: Path, form: str) -> None:
    from digest.cli.ranking import read_profiles
    from digest.ingest.jsonl import load_jsonl

    known = {p.key: p for p in load_jsonl(MINI)}
    arxiv_id = "2602.23438"
    assert f"arxiv:{arxiv_id}" in known
    raw = form.format(id=arxiv_id)
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "p", "seeds": [raw], "liked": [raw], "disliked": raw},
    )
    [(profile_id, profile)] = read_profiles(profiles, known)
    assert profile_id == "p"
    key = f"arxiv:{arxiv_id}"
    assert (profile.seeds, profile.liked, profile.disliked) == ((key,), (key,), (key,))


@pytest.mark.parametrize("form", ["https://arxiv.org/pdf/{id}.pdf", "10.48550/arXiv.{id}",
                                  "https://doi.org/10.48550/arXiv.{id}"])
def test_a_seed_given_as_a_pdf_link_or_arxiv_doi_ranks_like_the_bare_id(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], form: str
) -> None:
    seed = str(day[2][3]["id"])
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "form", "seeds": [form.format(id=seed)]},
        {"id": "bare", "seeds": [seed]},
    )
    result = _rank(day, profiles)
    by_form, bare = _lines(result)
    assert bare["papers"]
    assert by_form["papers"] == bare["papers"]
    assert result.stderr == ""


def test_seed_ids_not_found_are_named_in_one_warning_per_profile(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    seed = str(day[2][3]["id"])
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "p1", "seeds": [seed, "9999.99999", "https://arxiv.org/abs/9999.88888"],
         "liked": ["not-a-paper"]},
        {"id": "p2", "seeds": [seed]},
    )
    clean = _write(tmp_path / "clean.jsonl", {"id": "p1", "seeds": [seed]},
                   {"id": "p2", "seeds": [seed]})
    result = _rank(day, profiles)
    # stdout is what it was: unknown ids are left out of the ranking.
    assert result.stdout == _rank(day, clean).stdout
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith('warning: profile "p1": 2 seed ids')
    assert "1 liked id" in warnings[0]
    assert "not found in --papers or --history" in warnings[0]
    for raw in ("9999.99999", "https://arxiv.org/abs/9999.88888", "not-a-paper"):
        assert raw in warnings[0]
    assert seed not in warnings[0]


def test_a_field_that_is_no_profile_field_is_named_once_with_the_likely_one(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # {"interest": ...} or "negative_keywords" ranked as if absent, silently: the
    # profile got papers it had excluded, or none at all.
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "p1", "interest": "robot grasping", "keywords": ["robots"]},
        {"id": "p2", "interest": "language models", "negative_keywords": ["survey"]},
        {"id": "p3", "interests": "robots", "label": "cs.RO"},
    )
    result = _rank(day, profiles)
    assert result.exit_code == 0, result.output
    assert len(_lines(result)) == 3  # still ranked: a warning, not an error
    warnings = result.stderr.splitlines()
    assert len(warnings) == 3, warnings
    interest = next(w for w in warnings if "'interest'" in w)
    assert f"{profiles}:1" in interest and "2 lines" in interest
    assert "did you mean 'interests'" in interest
    assert any("'negative_keywords'" in w and f"{profiles}:2" in w for w in warnings)
    assert any("'label'" in w for w in warnings)


def test_a_seed_in_the_batch_is_found_and_not_warned_about(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    batch_id = json.loads(day[0].read_text(encoding="utf-8").splitlines()[0])["id"]
    profiles = _write(tmp_path / "profiles.jsonl",
                      {"id": "p", "interests": "robots", "seeds": [f"arXiv:{batch_id}"]})
    result = _rank(day, profiles)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


# 3. Lines that are not JSON objects.


@pytest.mark.parametrize(
    ("line", "what"),
    [("[1, 2]", "a list"), ('"x"', "a string"), ("42", "a number"), ("null", "null"),
     ('{"id": "p", "interests": "robots"', "not valid JSON"), ("{id: p}", "not valid JSON")],
)
def test_a_line_that_is_not_a_json_object_is_a_usage_error_naming_file_and_line(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], line: str, what: str
) -> None:
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "ok", "interests": "robots"}, "",
                      line)
    result = _rank(day, profiles)
    _refused(result, profiles, 3)
    assert what in result.stderr
    assert "hint:" in result.stderr and '{"id":' in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_a_profiles_file_that_is_not_utf8_is_a_usage_error(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_bytes(b'{"id": "ok", "interests": "robots"}\n{"id": "caf\xe9"}\n')
    result = _rank(day, profiles)
    _refused(result, profiles, 2)
    assert "UTF-8" in result.stderr


def test_a_gzipped_profiles_file_is_read(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    plain = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "robot learning"})
    packed = tmp_path / "profiles.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert _rank(day, packed).stdout == _rank(day, plain).stdout


def test_a_gzipped_file_is_read_whatever_its_name(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # Gzip was told by the name alone: a gzipped batch.jsonl was "not UTF-8 text" with
    # the hint "save the file as UTF-8", which it was, packed; a plain .jsonl.gz was
    # "Not a gzipped file".
    batch_path, history_path, _ = day
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "robot learning"})
    packed_batch = tmp_path / "batch.jsonl"
    packed_batch.write_bytes(gzip.compress(batch_path.read_bytes()))
    plain_history = tmp_path / "history.jsonl.gz"
    plain_history.write_bytes(history_path.read_bytes())
    assert _lines(_rank((packed_batch, plain_history, []), profiles)) == _lines(
        _rank(day, profiles))


def test_a_truncated_or_corrupt_gzip_file_is_a_usage_error_naming_it(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # A .jsonl.gz cut short (a download that stopped) raised EOFError, which click
    # reports as "Aborted!" (exit 1, no file named); a damaged one raised zlib.error,
    # a traceback.
    batch_path, history_path, _ = day
    packed = gzip.compress(history_path.read_bytes())
    truncated = tmp_path / "truncated.jsonl.gz"
    truncated.write_bytes(packed[: len(packed) * 2 // 3])
    damaged = bytearray(packed)
    damaged[10] = 0b111  # the first deflate block's header: final, of the reserved type
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(bytes(damaged))
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "robot learning"})
    for broken in (truncated, corrupt):
        for option, other in (("--history", "--papers"), ("--papers", "--history")):
            given = {option: broken, other: history_path if other == "--history" else batch_path}
            result = CliRunner().invoke(main, [
                "rank", "--profiles", str(profiles),
                *(str(x) for pair in given.items() for x in pair)])
            assert result.exit_code == 2, (broken, option, result.output, result.exception)
            assert str(broken) in result.stderr and "gzip" in result.stderr
            assert "Traceback" not in result.output


# 4. Fields of the wrong type.


def test_a_single_string_for_a_list_field_is_a_one_element_list(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    seed = str(day[2][3]["id"])
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "one", "seeds": seed, "keywords": "language model", "exclude": "survey",
         "categories": "cs.CL", "authors": "Ada Lovelace"},
        {"id": "list", "seeds": [seed], "keywords": ["language model"], "exclude": ["survey"],
         "categories": ["cs.CL"], "authors": ["Ada Lovelace"]},
    )
    one, as_list = _lines(_rank(day, profiles))
    assert one["papers"] and one["papers"] == as_list["papers"]


@pytest.mark.parametrize("field", ["keywords", "exclude", "categories", "authors", "seeds",
                                   "liked", "disliked"])
@pytest.mark.parametrize("value", [5, 2602.23438, {"a": "b"}, False, ["ok", 7], [None]])
def test_a_list_field_of_another_type_is_a_usage_error_naming_line_and_field(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], field: str, value: object
) -> None:
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "ok", "interests": "robots"},
                      {"id": "bad", "interests": "robots", field: value})
    result = _rank(day, profiles)
    _refused(result, profiles, 2)
    assert '"bad"' in result.stderr
    assert f"'{field}'" in result.stderr
    assert "hint:" in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.mark.parametrize("value", [None, {"a": 1}, ["p"], True])
def test_an_id_that_is_not_a_string_or_number_is_a_usage_error(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], value: object
) -> None:
    profiles = _write(tmp_path / "profiles.jsonl", {"id": value, "interests": "robots"})
    result = _rank(day, profiles)
    _refused(result, profiles, 1)
    assert "'id'" in result.stderr


def test_each_line_names_its_profile_by_the_id_exactly_as_the_profiles_file_gave_it(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # An evaluator matches the output against its own ids: {"id": 7} came back as "7",
    # which equals no profile of a caller that numbered them, so none of them scored.
    ids: list[Any] = [7, "7", 0, "p1", 12345678901234567890]
    profiles = _write(tmp_path / "profiles.jsonl",
                      *({"id": value, "interests": "robot learning"} for value in ids))
    lines = _lines(_rank(day, profiles))
    assert [line["profile"] for line in lines] == ids
    assert [type(line["profile"]) for line in lines] == [type(value) for value in ids]


def test_null_and_empty_fields_are_empty(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": 7, "interests": "robot learning", "keywords": None, "seeds": [], "liked": "",
         "authors": None, "unknown_field": {"ignored": True}},
        {"id": "plain", "interests": "robot learning"},
    )
    nulls, plain = _lines(_rank(day, profiles))
    assert nulls["profile"] == 7
    assert nulls["papers"] == plain["papers"]


def test_profile_from_dict_stays_lenient_unless_strict() -> None:
    # Stored profiles (the database) are read leniently, as before.
    assert Profile.from_dict({"keywords": "robots", "seeds": ["a", " "]}).keywords == ("robots",)
    assert Profile.from_dict({"interests": 5}).interests == "5"
    with pytest.raises(ValueError, match="'keywords'"):
        Profile.from_dict({"keywords": 5}, strict=True)
    with pytest.raises(ValueError, match="'interests'"):
        Profile.from_dict({"interests": {"a": 1}}, strict=True)
    with pytest.raises(ValueError, match="'seeds'"):
        Profile.from_dict({"seeds": ["2401.01234", 2401.01234]}, strict=True)
    assert Profile.from_dict(
        {"interests": ["a", "b"], "seeds": "2401.01234", "keywords": None}, strict=True
    ) == Profile(interests="a\nb", seeds=("2401.01234",))


# 5. The papers and history files (hand-made lines beside the real sample day).


@pytest.mark.parametrize("option", ["--papers", "--history"])
@pytest.mark.parametrize("bad", [{"title": "A paper with no id"}, {"id": "2601.00001"},
                                 "not json", [1, 2]])
def test_a_bad_line_in_the_papers_or_history_is_a_usage_error_naming_file_and_line(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]], option: str, bad: object,
) -> None:
    batch_path, history_path, _ = day
    source = batch_path if option == "--papers" else history_path
    lines = source.read_text(encoding="utf-8").splitlines()
    broken = tmp_path / "broken.jsonl"
    _write(broken, lines[0], bad, *lines[1:])
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "robots"})
    paths = {"--papers": batch_path, "--history": history_path, option: broken}
    result = CliRunner().invoke(main, [
        "rank", "--papers", str(paths["--papers"]), "--profiles", str(profiles),
        "--history", str(paths["--history"])])
    assert result.exit_code == 2, (result.output, result.stderr)
    assert f"{broken}:2" in result.stderr
    assert "Traceback" not in result.output


def test_papers_are_named_by_their_id_exactly_as_the_papers_file_gave_it(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # An evaluator matches the output against its own ids: "arXiv:2603.06893" came back
    # as "2603.06893", "2603.06893v2" without its version, "paper-7" as "jsonl:paper-7"
    # and a DOI as "doi:10.1145/...": none of them scored.
    batch_path, history_path, _ = day
    records = [json.loads(x) for x in batch_path.read_text(encoding="utf-8").splitlines()]
    forms = ["arXiv:{id}", "{id}v2", "paper-{n}", "10.1145/3.{n}", "{id}",
             "https://arxiv.org/abs/{id}"]
    for n, record in enumerate(records):
        record["id"] = forms[n % len(forms)].format(id=record["id"], n=n)
    batch = _write(tmp_path / "batch.jsonl", *records)
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "language models"},
                      {"id": "c", "categories": "cs.CV"})
    result = CliRunner().invoke(main, [
        "rank", "--papers", str(batch), "--profiles", str(profiles), "--history",
        str(history_path), "--top", str(len(records)), "--all"])
    given = [r["id"] for r in records]
    everything, cv = _lines(result)
    assert sorted(p["id"] for p in everything["papers"]) == sorted(given)
    assert cv["papers"] and {p["id"] for p in cv["papers"]} <= set(given)


def test_authors_and_categories_written_as_one_string_rank_as_the_lists(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # arXiv's metadata (the arXiv dataset on Kaggle) writes "A, B and C" and "cs.CL cs.AI":
    # a split on commas made "B and C" one author, so a profile following C got nothing.
    batch_path, history_path, _ = day
    records = [json.loads(x) for x in batch_path.read_text(encoding="utf-8").splitlines()]
    followed = next(r for r in records if len(r["authors"]) >= 3)
    as_text = []
    for n, record in enumerate(records):
        names, codes = record["authors"], record["categories"]
        joined = ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else names[0]
        listed = n % 3 == 0 and record is not followed  # a list with a null item
        as_text.append({**record, "authors": [*names, None] if listed else joined,
                        "categories": (" " if n % 2 else ", ").join(codes)})
    texts = _write(tmp_path / "texts.jsonl", *as_text)
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "follower", "authors": [followed["authors"][-1]]},
        {"id": "field", "categories": [followed["categories"][-1]]},
        {"id": "words", "interests": "language models", "authors": followed["authors"][1]},
    )

    def ranked(batch: Path) -> list[dict[str, Any]]:
        return _lines(CliRunner().invoke(main, [
            "rank", "--papers", str(batch), "--profiles", str(profiles), "--history",
            str(history_path), "--top", "5"]))

    follower, *rest = ranked(texts)
    assert [p["id"] for p in follower["papers"]] == [followed["id"]]
    assert follower["papers"][0]["reason"] == f"by {followed['authors'][-1]}"
    assert [follower, *rest] == ranked(batch_path)


def test_a_paper_field_of_a_stray_type_is_read_not_a_crash(tmp_path: Path) -> None:
    # "authors": 5 raised TypeError out of the reader: a traceback from digest rank, and
    # the daily job's jsonl source lost every paper of its file, not the one line.
    from digest.ingest.jsonl import paper_from_record, read_jsonl

    record = {"id": "2601.00001", "title": "A paper", "authors": 5, "categories": True,
              "ai_keywords": "robots"}
    paper = paper_from_record(record)
    assert (paper.authors, paper.ai_keywords) == (("5",), ("robots",))
    source = _write(tmp_path / "papers.jsonl", record, {"id": "2601.00002", "title": "Two"})
    papers, problems = read_jsonl(source)
    assert [p.key for p in papers] == ["arxiv:2601.00001", "arxiv:2601.00002"]
    assert problems == []


def test_upvotes_that_are_no_count_are_none_not_a_crash(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # json.dumps writes a missing float (pandas' NaN) as NaN, which json.loads reads:
    # int(nan) raised ValueError out of the reader, a traceback from digest rank (exit
    # 1), and the daily job's jsonl source lost its whole file. A negative count made
    # the popularity blend's log1p NaN.
    from digest.ingest.jsonl import paper_from_record

    for value in (float("nan"), float("inf"), float("-inf"), -5):
        assert paper_from_record({"id": "2601.00001", "title": "A", "upvotes": value}).upvotes \
            is None
    assert paper_from_record({"id": "2601.00001", "title": "A", "upvotes": 12.0}).upvotes == 12
    batch_path, history_path, _ = day
    lines = batch_path.read_text(encoding="utf-8").splitlines()
    lines[0] = lines[0].replace("{", '{"upvotes": NaN, ', 1)
    lines[1] = lines[1].replace("{", '{"upvotes": Infinity, ', 1)
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p", "interests": "language models"})
    plain = _lines(_rank(day, profiles))
    assert _lines(_rank((batch, history_path, []), profiles)) == plain


def test_a_lone_surrogate_in_an_id_or_an_author_prints_escaped_not_a_crash(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # JSON may escape half of a UTF-16 pair ("\\ud835", text cut inside one): json.loads
    # reads it, but no UTF-8 writes it, and printing the line raised UnicodeEncodeError
    # after the lines before it had gone out (a traceback, exit 1, the rest lost).
    batch_path, history_path, _ = day
    records = [json.loads(x) for x in batch_path.read_text(encoding="utf-8").splitlines()]
    author = "Jos\u00e9 \ud835Garc\u00eda"
    records[0]["authors"] = [author]
    records[1]["id"] = f"{records[1]['id']}\udc00"
    batch = _write(tmp_path / "batch.jsonl", *records)
    profiles = _write(tmp_path / "profiles.jsonl", {"id": "p\ud800", "authors": [author]},
                      {"id": "all", "categories": records[1]["categories"]})
    result = CliRunner().invoke(main, [
        "rank", "--papers", str(batch), "--profiles", str(profiles), "--history",
        str(history_path), "--top", str(len(records)), "--all"])
    follower, everyone = _lines(result)
    assert follower["profile"] == "p\ud800"
    assert follower["papers"][0]["id"] == records[0]["id"]
    assert author in follower["papers"][0]["reason"]
    assert records[1]["id"] in [p["id"] for p in everyone["papers"]]


def test_categories_as_one_string_or_in_another_case_are_the_codes(
    tmp_path: Path, day: tuple[Path, Path, list[dict[str, Any]]]
) -> None:
    # {"categories": "cs.CL cs.CV"} (as a paper's are written) was one category of that
    # name, and "cs.cl" another: neither matched a paper, and the profile got nothing,
    # without a word. A code nobody knows is now named on stderr.
    profiles = _write(
        tmp_path / "profiles.jsonl",
        {"id": "string", "categories": "cs.CL cs.CV"},
        {"id": "commas", "categories": ["cs.cl, CS.CV"]},
        {"id": "codes", "categories": ["cs.CL", "cs.CV"]},
        {"id": "typo", "categories": ["cs.CL", "cs.XX"]},
    )
    result = _rank(day, profiles)
    string, commas, codes, typo = _lines(result)
    assert codes["papers"]
    assert string["papers"] == commas["papers"] == codes["papers"]
    assert result.stderr.splitlines() == [
        'warning: profile "typo": 1 category neither arXiv nor any paper has, matching '
        "nothing: cs.XX (codes look like cs.CL, math.PR)"]
    assert typo["papers"]  # cs.CL still serves it
