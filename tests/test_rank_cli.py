"""`digest rank`: files in, one JSON line per profile out."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from digest.cli import ranking  # noqa: F401  (registers the commands)
from digest.cli.base import main

DATA = Path(__file__).resolve().parent / "data" / "rank"
MINI = DATA / "corpus_mini.jsonl"


def _split(tmp_path: Path) -> tuple[Path, Path, list[dict[str, object]]]:
    records = [json.loads(line) for line in MINI.read_text(encoding="utf-8").splitlines()]
    last = max(str(r["first_seen"]) for r in records)
    batch = [r for r in records if r["first_seen"] == last]
    history = [r for r in records if r["first_seen"] != last]
    batch_path, history_path = tmp_path / "batch.jsonl", tmp_path / "history.jsonl"
    batch_path.write_text("".join(json.dumps(r) + "\n" for r in batch), encoding="utf-8")
    history_path.write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    return batch_path, history_path, history


def test_rank_prints_one_json_line_per_profile_with_bare_ids(tmp_path: Path) -> None:
    batch_path, history_path, history = _split(tmp_path)
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
    batch_path, _, _ = _split(tmp_path)
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(json.dumps({"interests": "robots"}) + "\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["rank", "--papers", str(batch_path), "--profiles", str(profiles)]
    )
    assert result.exit_code == 2
    assert "no 'id'" in result.output
