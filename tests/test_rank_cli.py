"""`digest rank`: files in, one JSON line per profile out."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from digest.cli import ranking  # noqa: F401  (registers the commands)
from digest.cli.base import main
from tests.fixtures.corpus import write_mini_day


def test_rank_prints_one_json_line_per_profile_with_bare_ids(tmp_path: Path) -> None:
    batch_path, history_path, history = write_mini_day(tmp_path)
    seed = str(history[0]["id"])
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        json.dumps({"id": "vision", "interests": "image segmentation and object detection"})
        + "\n"
        + json.dumps({"id": "seeded", "seeds": [seed], "exclude": ["survey"]})
        + "\n",
        encoding="utf-8",
    )
    result = CliRunner().invoke(
        main,
        ["rank", "--papers", str(batch_path), "--profiles", str(profiles),
         "--history", str(history_path), "--top", "5"],
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["profile"] for line in lines] == ["vision", "seeded"]
    batch_ids = {json.loads(x)["id"] for x in batch_path.read_text().splitlines()}
    for line in lines:
        assert 0 < len(line["papers"]) <= 5
        for paper in line["papers"]:
            assert paper["id"] in batch_ids  # bare arXiv ids, as in the input
            assert isinstance(paper["score"], float)
            assert paper["reason"]
        scores = [p["score"] for p in line["papers"]]
        assert scores == sorted(scores, reverse=True) or len(scores) > 1


def test_rank_without_history_and_a_profile_without_id_is_a_usage_error(
    tmp_path: Path,
) -> None:
    batch_path, _, _ = write_mini_day(tmp_path)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(json.dumps({"interests": "robots"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["rank", "--papers", str(batch_path), "--profiles", str(profiles)]
    )
    assert result.exit_code == 2
    assert "no 'id'" in result.output


def test_rank_takes_the_number_of_scoring_processes_its_failure_hint_names(
    tmp_path: Path,
) -> None:
    # When a scoring process died, the hint said to set DIGEST_RANK_PROCESSES=1, which
    # `digest rank` never read (it reads no configuration): nothing the caller could do.
    from digest.rank.scoring import _scorer_died

    batch_path, history_path, _ = write_mini_day(tmp_path)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text("".join(
        json.dumps({"id": f"p{i}", "interests": topic}) + "\n"
        for i, topic in enumerate(("image segmentation", "language models", "robot grasping"))),
        encoding="utf-8")
    outputs = []
    for processes in ("1", "2"):
        result = CliRunner().invoke(main, [
            "rank", "--papers", str(batch_path), "--profiles", str(profiles),
            "--history", str(history_path), "--processes", processes])
        assert result.exit_code == 0, result.output
        outputs.append(result.output)
    assert outputs[0] == outputs[1] and outputs[0].count("\n") == 3
    assert "--processes 1" in _scorer_died().hint


def test_rank_all_lists_papers_below_the_bar_and_still_says_nothing_reached_it(
    tmp_path: Path,
) -> None:
    # --all lists a profile's best papers whatever their scores; nothing_relevant still
    # gives the bar's verdict. A profile of a category no paper of the day is in had
    # "nothing_relevant": false beside ten papers none of which it wanted.
    batch_path, history_path, _ = write_mini_day(tmp_path)
    batch = [json.loads(x) for x in batch_path.read_text().splitlines()]
    listed = {c for record in batch for c in record["categories"]}
    absent = next(c for c in ("astro-ph.GA", "q-bio.NC", "math.AG", "econ.TH")
                  if c not in listed)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        json.dumps({"id": "elsewhere", "categories": [absent]}) + "\n"
        + json.dumps({"id": "vision", "interests": "image segmentation and object detection"})
        + "\n",
        encoding="utf-8",
    )

    def run(*extra: str) -> dict[str, dict[str, object]]:
        result = CliRunner().invoke(
            main, ["rank", "--papers", str(batch_path), "--profiles", str(profiles),
                   "--history", str(history_path), "--top", "5", *extra])
        assert result.exit_code == 0, result.output
        return {line["profile"]: line for line in map(json.loads, result.output.splitlines())}

    barred, everything = run(), run("--all")
    assert barred["elsewhere"]["papers"] == [] and barred["elsewhere"]["nothing_relevant"]
    assert len(everything["elsewhere"]["papers"]) == 5
    assert everything["elsewhere"]["nothing_relevant"] is True
    assert barred["vision"]["papers"] and barred["vision"]["nothing_relevant"] is False
    assert everything["vision"]["nothing_relevant"] is False


def test_a_top_beyond_the_batch_lists_what_the_batch_holds_without_allocating_for_it(
    tmp_path: Path,
) -> None:
    # "--top 1000000000" (every paper, ranked) allocated a profiles x top array in the
    # MMR selection: 298 GiB for 40 profiles, a MemoryError traceback.
    batch_path, history_path, _ = write_mini_day(tmp_path)
    papers = len(batch_path.read_text(encoding="utf-8").splitlines())
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        "".join(json.dumps({"id": f"p{n}", "interests": "image segmentation"}) + "\n"
                for n in range(40)),
        encoding="utf-8",
    )

    def ranked(top: int) -> str:
        result = CliRunner().invoke(main, [
            "rank", "--papers", str(batch_path), "--profiles", str(profiles),
            "--history", str(history_path), "--top", str(top), "--all"])
        assert result.exit_code == 0, (result.output, result.exception)
        return result.output

    everything = ranked(papers)
    assert len(json.loads(everything.splitlines()[0])["papers"]) == papers
    assert ranked(10**9) == everything
    assert ranked(10**30) == everything  # beyond any machine integer
