"""`digest subscribers add|list|show|export|remove|import` and `digest serve` via CliRunner."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from digest import pipeline
from digest.cli import main
from digest.cli.subscribers import profile_summary
from digest.config import Config
from digest.models import Profile
from digest.store import open_store


def run(config: Config, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), obj={"config": config}, input=input)


@pytest.fixture
def added(config: Config) -> Config:
    result = run(config, "subscribers", "add", "Ada@Example.org", "--interests", "LLM agents",
                 "--keyword", "tool use", "--category", "cs.CL", "--hour", "6",
                 "--timezone", "Europe/Berlin", "--seed", "https://arxiv.org/abs/2401.01234v2")
    assert result.exit_code == 0, result.output
    return config


def test_add_activates_at_once_and_prints_a_summary(added: Config) -> None:
    db = open_store(added.database_url)
    sub = db.find_subscriber("ada@example.org")
    assert sub is not None and sub.status == "active"
    assert sub.profile.seeds == ("arxiv:2401.01234",)
    assert (sub.send_hour, sub.timezone) == (6, "Europe/Berlin")


def test_add_reads_a_seed_given_as_a_pdf_link_or_an_arxiv_doi(config: Config) -> None:
    result = run(config, "subscribe", "b@example.org", "--seed",
                 "https://arxiv.org/pdf/2401.01234v2.pdf", "--seed", "10.48550/arXiv.2402.00001")
    assert result.exit_code == 0, result.output
    sub = open_store(config.database_url).find_subscriber("b@example.org")
    assert sub is not None and sub.profile.seeds == ("arxiv:2401.01234", "arxiv:2402.00001")


def test_add_refuses_duplicates_bad_input_and_empty_profiles(added: Config) -> None:
    again = run(added, "subscribers", "add", "ada@example.org", "--interests", "x")
    assert again.exit_code == 2 and "already subscribed" in again.output
    assert run(added, "subscribers", "add", "nope", "--interests", "x").exit_code == 2
    assert run(added, "subscribers", "add", "b@example.org").exit_code == 2
    bad_cat = run(added, "subscribers", "add", "b@example.org", "--category", "cs.ZZ")
    assert bad_cat.exit_code == 2 and "unknown arXiv category" in bad_cat.output
    bad_tz = run(added, "subscribers", "add", "b@example.org", "--interests", "x",
                 "--timezone", "Moon/Base")
    assert bad_tz.exit_code == 2


def test_add_json(config: Config) -> None:
    result = run(config, "subscribers", "add", "b@example.org", "--interests", "optics",
                 "--cadence", "weekly", "--weekday", "2", "--json")
    data = json.loads(result.output)
    assert data["email"] == "b@example.org" and data["cadence"] == "weekly"
    assert data["weekday"] == 2 and data["profile"]["interests"] == "optics"


def test_add_sets_the_quiet_day_note_and_the_popularity_blend(
    config: Config, tmp_path: Path,
) -> None:
    # Both were read by the daily job but nothing could set them.
    result = run(config, "subscribers", "add", "e@example.org", "--keyword", "diffusion",
                 "--empty", "note", "--popularity", "0.3", "--json")
    data = json.loads(result.output)
    assert (data["empty_digest"], data["popularity"]) == ("note", 0.3)
    shown = run(config, "subscribers", "show", "e@example.org").output
    assert "nothing relevant: a short note" in shown and "upvotes weigh 0.3" in shown
    bad = run(config, "subscribers", "add", "f@example.org", "--keyword", "x",
              "--popularity", "1.5")
    assert bad.exit_code == 2
    out = tmp_path / "out.csv"
    run(config, "subscribers", "export", "--csv", "-o", str(out))
    other = replace(config, database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    assert run(other, "subscribers", "import", str(out)).exit_code == 0
    moved = open_store(other.database_url).find_subscriber("e@example.org")
    assert moved is not None and (moved.empty_digest, moved.popularity) == ("note", 0.3)
    typo = run(other, "subscribers", "import",
               write(tmp_path, "email,keywords,popularity\ng@example.org,x,lots\n"))
    assert typo.exit_code == 2 and "popularity must be numbers" in typo.output


def test_the_operators_default_time_zone_is_a_subscribers_default(config: Config) -> None:
    # DIGEST_TIMEZONE=CET is valid (the config accepts any IANA name); subscribing
    # without --timezone once failed with "unknown time zone 'CET'".
    cet = replace(config, timezone="CET")
    result = run(cet, "subscribe", "h@example.org", "--interests", "x", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["timezone"] == "CET"
    other = run(cet, "subscribe", "i@example.org", "--interests", "x", "--timezone", "EST5EDT")
    assert other.exit_code == 0, other.output
    assert run(cet, "subscribe", "j@example.org", "--interests", "x",
               "--timezone", "Mars/Base").exit_code == 2


def test_add_keeps_the_lines_of_the_interests(config: Config) -> None:
    typed = "Attention Is  All You Need\n\n  graph neural networks "
    result = run(config, "subscribers", "add", "d@example.org", "--interests", typed,
                 "--json")
    assert json.loads(result.output)["profile"]["interests"] == (
        "Attention Is All You Need\ngraph neural networks")


def test_add_with_confirm_creates_a_pending_subscriber_and_mails_the_opt_in(
    config: Config,
) -> None:
    result = run(config, "subscribers", "add", "c@example.org", "--interests", "x", "--confirm")
    assert result.exit_code == 0, result.output
    assert "pending" in result.output
    db = open_store(config.database_url)
    assert db.find_subscriber("c@example.org").status == "pending"  # type: ignore[union-attr]
    mails = list((config.maildir / "new").iterdir())  # the Maildir transport by default
    assert len(mails) == 1 and "/confirm/" in mails[0].read_text()


def test_add_with_confirm_says_when_the_opt_in_could_not_be_sent_and_can_send_it_again(
    config: Config, smtp_server: Any,
) -> None:
    # The relay refused the confirmation mail: the command said "confirmation mail
    # sent" and exited 0, and running it again was refused as "already subscribed", so
    # the person never got a link. The name given was dropped as well.
    config = replace(config, smtp=smtp_server.settings())
    args = ("subscribe", "c@example.org", "--interests", "x", "--name", "Cécile Roy",
            "--confirm")
    smtp_server.fail("data", "451 4.3.0 Try again later")
    failed = run(config, *args)
    assert failed.exit_code == 1, failed.output
    assert "could not be sent" in failed.output and "mail sent" not in failed.output
    assert smtp_server.by_recipient("c@example.org") == []
    again = run(config, *args)
    assert again.exit_code == 0, again.output
    assert "confirmation mail sent" in again.output
    [received] = smtp_server.by_recipient("c@example.org")
    assert "/confirm/" in received.data.decode()
    sub = open_store(config.database_url).find_subscriber("c@example.org")
    assert sub is not None and sub.status == "pending" and sub.name == "Cécile Roy"
    # Within the hour no second mail goes out, and the command says so.
    held = run(config, *args)
    assert held.exit_code == 0 and "no mail sent" in held.output
    assert len(smtp_server.by_recipient("c@example.org")) == 1
    # Without --confirm a pending address is not called subscribed.
    plain = run(config, "subscribe", "c@example.org", "--interests", "x")
    assert plain.exit_code == 2 and "not confirmed yet" in plain.output


def test_a_removed_address_is_not_re_added_without_force(added: Config) -> None:
    assert run(added, "subscribers", "remove", "ada@example.org", "--yes").exit_code == 0
    refused = run(added, "subscribers", "add", "ada@example.org", "--interests", "x")
    assert refused.exit_code == 2 and "suppressed" in refused.output
    forced = run(added, "subscribers", "add", "ada@example.org", "--interests", "x", "--force")
    assert forced.exit_code == 0


def test_list_shows_a_table_and_json(added: Config) -> None:
    run(added, "subscribers", "add", "b@example.org", "--interests", "optics",
        "--cadence", "weekly", "--weekday", "4")
    result = run(added, "subscribers", "list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:5] == ["EMAIL", "STATUS", "CADENCE", "HOUR", "TZ"]
    assert "ada@example.org" in lines[1] and "06:00" in lines[1] and "Europe/Berlin" in lines[1]
    assert "cs.CL" in lines[1] and "tool use" in lines[1]
    assert "weekly/Fri" in lines[2]
    data = json.loads(run(added, "subscribers", "list", "--json").output)
    assert [d["email"] for d in data] == ["ada@example.org", "b@example.org"]
    only = json.loads(run(added, "subscribers", "list", "--status", "paused", "--json").output)
    assert only == []


def test_list_when_empty(config: Config) -> None:
    assert run(config, "subscribers", "list").output.strip() == "no subscribers"


def test_show_prints_the_profile_and_json(added: Config) -> None:
    result = run(added, "subscribers", "show", "ada@example.org")
    assert result.exit_code == 0 and "tool use" in result.output and "votes: 0 up" in result.output
    data = json.loads(run(added, "subscribers", "show", "ada@example.org", "--json").output)
    assert data["profile"]["categories"] == ["cs.CL"] and data["votes"] == []
    missing = run(added, "subscribers", "show", "who@example.org")
    assert missing.exit_code == 2 and "no subscriber" in missing.output


def test_export_json_and_csv_round_trip_through_import(added: Config, tmp_path: Path) -> None:
    data = json.loads(run(added, "subscribers", "export").output)
    assert data[0]["email"] == "ada@example.org" and "deliveries" in data[0]
    out = tmp_path / "subs.csv"
    assert run(added, "subscribers", "export", "--csv", "-o", str(out)).exit_code == 0
    assert out.read_text().splitlines()[0].startswith("email,name,interests")
    run(added, "subscribers", "remove", "ada@example.org", "--yes")
    result = run(added, "subscribers", "import", str(out), "--include-suppressed")
    assert result.exit_code == 0 and "added 1" in result.output
    sub = open_store(added.database_url).find_subscriber("ada@example.org")
    assert sub is not None and sub.profile.keywords == ("tool use",)
    assert sub.profile.seeds == ("arxiv:2401.01234",) and sub.timezone == "Europe/Berlin"


def test_export_takes_json_as_every_subscribers_command_does(added: Config) -> None:
    # The README: "digest subscribers add|list|show|export|remove  # --json everywhere";
    # export answered "No such option '--json'" (exit 2).
    result = run(added, "subscribers", "export", "--json")
    assert result.exit_code == 0, result.output
    assert result.output == run(added, "subscribers", "export").output
    assert json.loads(result.output)[0]["email"] == "ada@example.org"
    both = run(added, "subscribers", "export", "--json", "--csv")
    assert both.exit_code == 2 and "exclude each other" in both.output


def test_csv_export_and_import_keep_who_left_paused_or_never_confirmed(
    config: Config, tmp_path: Path,
) -> None:
    # The CSV once had no status: a new instance imported everyone as active, so those
    # who had unsubscribed got mail again and unconfirmed addresses skipped the opt-in.
    run(config, "subscribers", "import", write(tmp_path, CSV))
    db = open_store(config.database_url)
    a, b = db.find_subscriber("a@example.org"), db.find_subscriber("b@example.org")
    assert a is not None and b is not None
    db.update_subscriber(a.id, now=a.created_at, status="unsubscribed")  # type: ignore[arg-type]
    db.update_subscriber(b.id, now=b.created_at, status="paused")  # type: ignore[arg-type]
    run(config, "subscribers", "add", "c@example.org", "--interests", "x", "--confirm")
    out = tmp_path / "out.csv"
    assert run(config, "subscribers", "export", "--csv", "-o", str(out)).exit_code == 0
    assert "status" in out.read_text().splitlines()[0].split(",")
    other = replace(config, database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    result = run(other, "subscribers", "import", str(out), "--json")
    assert json.loads(result.output)["added"] == 3, result.output
    fresh = open_store(other.database_url)
    statuses = {s.email: s.status for s in fresh.list_subscribers()}
    assert statuses == {"a@example.org": "unsubscribed", "b@example.org": "paused",
                        "c@example.org": "pending"}
    # --update sets a row's status, but never brings back someone who unsubscribed here.
    edited = out.read_text().replace(",unsubscribed", ",active").replace(",paused", ",active")
    run(other, "subscribers", "import", write(tmp_path, edited), "--update")
    statuses = {s.email: s.status for s in fresh.list_subscribers()}
    assert statuses["a@example.org"] == "unsubscribed" and statuses["b@example.org"] == "active"
    # A hand-made CSV without the column: active; a status it does not know: refused.
    bad = run(other, "subscribers", "import",
              write(tmp_path, "email,interests,status\nd@example.org,x,gone\n"))
    assert bad.exit_code == 2 and "status must be one of" in bad.output


def test_import_update_changes_only_the_columns_the_file_has(
    config: Config, tmp_path: Path,
) -> None:
    # An update once replaced the whole profile and schedule: a file of two columns
    # wiped the subscriber's interests, seeds and thumbs and reset their hour and zone.
    run(config, "subscribers", "add", "k@example.org", "--interests", "protein design",
        "--seed", "2401.01234", "--timezone", "Asia/Tokyo", "--hour", "6", "--empty", "note")
    db = open_store(config.database_url)
    sub = db.find_subscriber("k@example.org")
    assert sub is not None and sub.created_at is not None
    db.update_subscriber(sub.id, now=sub.created_at,
                         profile=replace(sub.profile, liked=("arxiv:2401.09999",)))
    result = run(config, "subscribers", "import", "--update",
                 write(tmp_path, "email,keywords\nk@example.org,enzymes;folding\n"))
    assert result.exit_code == 0 and "updated 1" in result.output
    fresh = db.find_subscriber("k@example.org")
    assert fresh is not None
    assert fresh.profile.keywords == ("enzymes", "folding")
    assert fresh.profile.interests == "protein design"
    assert fresh.profile.seeds == ("arxiv:2401.01234",)
    assert fresh.profile.liked == ("arxiv:2401.09999",)
    assert (fresh.timezone, fresh.send_hour, fresh.empty_digest) == ("Asia/Tokyo", 6, "note")


def test_a_bounced_subscriber_shows_as_suppressed_until_an_operator_lifts_it(
    added: Config,
) -> None:
    db = open_store(added.database_url)
    sub = db.find_subscriber("ada@example.org")
    assert sub is not None and sub.created_at is not None
    db.suppress("ada@example.org", reason="hard bounce 5.1.1", now=sub.created_at)
    listed = run(added, "subscribers", "list")
    assert "active, suppressed" in listed.output
    assert json.loads(run(added, "subscribers", "list", "--json").output)[0]["suppressed"]
    shown = run(added, "subscribers", "show", "ada@example.org")
    assert "suppressed since" in shown.output and "hard bounce 5.1.1" in shown.output
    # "A suppressed address gets nothing until its owner opts in again (or an operator
    # runs `digest subscribe`)": once refused as "already subscribed", even with --force.
    refused = run(added, "subscribe", "ada@example.org", "--interests", "x")
    assert refused.exit_code == 2 and "suppressed since" in refused.output
    assert db.is_suppressed("ada@example.org")
    lifted = run(added, "subscribe", "ada@example.org", "--interests", "x", "--force")
    assert lifted.exit_code == 0 and "lifted the suppression" in lifted.output
    assert not db.is_suppressed("ada@example.org")
    assert db.find_subscriber("ada@example.org").profile.interests == "LLM agents"  # type: ignore[union-attr]
    assert "suppressed" not in run(added, "subscribers", "list").output
    again = run(added, "subscribe", "ada@example.org", "--interests", "x", "--force")
    assert again.exit_code == 2 and "already subscribed" in again.output


def test_subscribe_force_lifts_a_suppression_with_no_profile_typed(added: Config) -> None:
    # The README, `subscribers show` and the refusal's own hint all say
    # `digest subscribe EMAIL --force`; typed so, it stopped with "the profile of ... is
    # empty" although the lift keeps the stored profile, and the suppression stayed.
    db = open_store(added.database_url)
    sub = db.find_subscriber("ada@example.org")
    assert sub is not None and sub.created_at is not None
    db.suppress("ada@example.org", reason="hard bounce 5.1.1", now=sub.created_at)
    refused = run(added, "subscribe", "ada@example.org")
    assert refused.exit_code == 2 and "suppressed since" in refused.output
    lifted = run(added, "subscribe", "ada@example.org", "--force")
    assert lifted.exit_code == 0, lifted.output
    assert "lifted the suppression" in lifted.output
    assert not db.is_suppressed("ada@example.org")
    assert db.find_subscriber("ada@example.org").profile.interests == "LLM agents"  # type: ignore[union-attr]
    # An address already subscribed is named so; a new one still needs a profile.
    again = run(added, "subscribe", "ada@example.org")
    assert again.exit_code == 2 and "already subscribed" in again.output
    empty = run(added, "subscribe", "new@example.org", "--force")
    assert empty.exit_code == 2 and "profile of new@example.org is empty" in empty.output
    assert db.find_subscriber("new@example.org") is None


def test_remove_asks_and_leaves_a_suppression(added: Config) -> None:
    declined = run(added, "subscribers", "remove", "ada@example.org", input="n\n")
    assert declined.exit_code != 0
    db = open_store(added.database_url)
    assert db.find_subscriber("ada@example.org") is not None
    result = run(added, "subscribers", "remove", "ada@example.org", "--json", input="y\n")
    assert result.exit_code == 0
    assert json.loads(result.output.splitlines()[-1])["removed"] == "ada@example.org"
    assert db.find_subscriber("ada@example.org") is None
    assert db.is_suppressed("ada@example.org")


def test_remove_deletes_the_subscribers_digest_previews(added: Config) -> None:
    # Without SMTP every digest is also written as HTML under var/previews/, named by
    # the address; deleting oneself on the web removed them, the operator's remove left
    # them on disk.
    assert run(added, "subscribers", "add", "b@example.org", "--interests", "x").exit_code == 0
    db = open_store(added.database_url)
    ada, other = db.find_subscriber("ada@example.org"), db.find_subscriber("b@example.org")
    assert ada is not None and other is not None
    hers = [pipeline.write_preview(added, ada, date(2026, 5, day), "<p>x</p>")
            for day in (24, 25)]
    theirs = pipeline.write_preview(added, other, date(2026, 5, 25), "<p>y</p>")
    result = run(added, "subscribers", "remove", "ada@example.org", "--yes")
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in hers)
    assert theirs.exists()


CSV = """email,interests,keywords,categories,authors,seeds,hour,timezone,cadence,weekday,max_papers
a@example.org,protein folding,alphafold;structure,q-bio.BM;cs.LG,J Jumper,2401.01234,6,UTC,daily,,5
b@example.org,,diffusion,cs.CV,,,,,weekly,3,
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "in.csv"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_import_adds_rows_with_semicolon_lists(config: Config, tmp_path: Path) -> None:
    result = run(config, "subscribers", "import", write(tmp_path, CSV), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 2
    db = open_store(config.database_url)
    a = db.find_subscriber("a@example.org")
    assert a is not None and a.profile.keywords == ("alphafold", "structure")
    assert a.profile.categories == ("q-bio.BM", "cs.LG") and a.profile.authors == ("J Jumper",)
    assert (a.send_hour, a.max_papers) == (6, 5)
    b = db.find_subscriber("b@example.org")
    assert b is not None and (b.cadence, b.weekday) == ("weekly", 3)


def test_import_skips_existing_and_suppressed_unless_asked(config: Config, tmp_path: Path) -> None:
    path = write(tmp_path, CSV)
    run(config, "subscribers", "import", path)
    db = open_store(config.database_url)
    db.remove_subscriber(db.find_subscriber("b@example.org").id,  # type: ignore[union-attr]
                         now=db.find_subscriber("a@example.org").created_at,  # type: ignore[union-attr, arg-type]
                         reason="test")
    again = run(config, "subscribers", "import", path)
    assert "added 0" in again.output and "1 existing" in again.output
    assert "1 suppressed" in again.output
    assert db.find_subscriber("b@example.org") is None
    edited = CSV.replace("protein folding", "RNA design")
    updated = run(config, "subscribers", "import", write(tmp_path, edited), "--update")
    assert "updated 1" in updated.output
    assert db.find_subscriber("a@example.org").profile.interests == "RNA design"  # type: ignore[union-attr]


def test_import_rejects_the_whole_file_when_a_row_is_bad(config: Config, tmp_path: Path) -> None:
    bad = CSV + "not-an-address,x,,,,,,,,,\nc@example.org,x,,cs.NOPE,,,,,,,\n"
    result = run(config, "subscribers", "import", write(tmp_path, bad))
    assert result.exit_code == 2
    assert "2 bad rows" in result.output and "line 4" in result.output
    assert open_store(config.database_url).list_subscribers() == []


def test_import_dry_run_and_header_checks(config: Config, tmp_path: Path) -> None:
    dry = run(config, "subscribers", "import", write(tmp_path, CSV), "--dry-run")
    assert dry.exit_code == 0 and "would have added 2" in dry.output
    assert open_store(config.database_url).list_subscribers() == []
    no_email = run(config, "subscribers", "import", write(tmp_path, "name,interests\nx,y\n"))
    assert no_email.exit_code == 2 and "no email column" in no_email.output
    unknown = run(config, "subscribers", "import", write(tmp_path, "email,colour\na@b.org,red\n"))
    assert unknown.exit_code == 2 and "unknown CSV column" in unknown.output


def test_serve_help() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0
    assert "--host" in result.output and "--port" in result.output


def test_import_update_of_a_few_columns_needs_no_profile_columns(
    config: Config, tmp_path: Path,
) -> None:
    # `import --update` "changes only the columns the file has", but a file of
    # email,status (pausing people in bulk) or email,hour was refused whole: "the
    # profile of ... is empty", though the stored profile would stay.
    run(config, "subscribers", "add", "k@example.org", "--interests", "protein design")
    run(config, "subscribers", "add", "m@example.org", "--keyword", "enzymes", "--hour", "6")
    result = run(config, "subscribers", "import", "--update", write(
        tmp_path, "email,status,hour\nk@example.org,paused,9\nm@example.org,,\n"))
    assert result.exit_code == 0, result.output
    assert "updated 2" in result.output
    db = open_store(config.database_url)
    k, m = db.find_subscriber("k@example.org"), db.find_subscriber("m@example.org")
    assert k is not None and m is not None
    assert (k.status, k.send_hour, k.profile.interests) == ("paused", 9, "protein design")
    assert (m.status, m.profile.keywords) == ("active", ("enzymes",))
    # A new address in such a file still needs a profile, and so does an update that
    # empties every profile column the stored profile has: the whole file is refused.
    refused = run(config, "subscribers", "import", "--update", write(
        tmp_path, "email,status,interests\nk@example.org,active,\nn@example.org,active,\n"))
    assert refused.exit_code == 2
    assert "line 2: the profile of k@example.org would be empty" in refused.output
    assert "line 3: the profile of n@example.org is empty" in refused.output
    assert db.find_subscriber("n@example.org") is None
    kept = db.find_subscriber("k@example.org")
    assert kept is not None and (kept.status, kept.profile.interests) == (
        "paused", "protein design")


def test_import_names_a_file_that_is_not_utf8_and_reads_it_with_its_encoding(
    config: Config, tmp_path: Path,
) -> None:
    # Excel's "CSV (Comma delimited)" on Windows writes Windows-1252: the import
    # stopped with a UnicodeDecodeError traceback and no word of what to do.
    path = tmp_path / "excel.csv"
    path.write_bytes("email,name,interests\r\nb@example.org,Cécile Roy,optics\r\n"
                     .encode("cp1252"))
    refused = run(config, "subscribers", "import", str(path))
    assert refused.exit_code == 2, refused.output
    assert "line 2 of the file is not utf-8" in refused.output
    assert "--encoding cp1252" in refused.output
    assert open_store(config.database_url).list_subscribers() == []
    result = run(config, "subscribers", "import", str(path), "--encoding", "cp1252")
    assert result.exit_code == 0, result.output
    sub = open_store(config.database_url).find_subscriber("b@example.org")
    assert sub is not None and sub.name == "Cécile Roy"
    # Excel's "CSV UTF-8" begins with a byte order mark: the header is still read.
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + "Email,Name,Interests\r\nc@example.org,Zoë,x\r\n"
                    .encode())
    assert run(config, "subscribers", "import", str(bom)).exit_code == 0
    zoe = open_store(config.database_url).find_subscriber("c@example.org")
    assert zoe is not None and zoe.name == "Zoë"
    unknown = run(config, "subscribers", "import", str(bom), "--encoding", "klingon")
    assert unknown.exit_code == 2 and "unknown encoding" in unknown.output


def test_import_reads_a_spreadsheets_rows_and_names_their_real_lines(
    config: Config, tmp_path: Path,
) -> None:
    # A spreadsheet's empty rows (only commas) refused the whole file as "'' is not an
    # email address"; the fields of a row past the header's (a comma in a name, not
    # quoted) were dropped without a word; and a problem was named by its row, not its
    # line, once a quoted field held a line break.
    text = ("email,name,interests\r\n"
            'a@example.org,"Roy, Cécile","protein folding\r\nand design"\r\n'
            ",,\r\n"
            "\r\n"
            "b@example.org,Roy, Cécile,optics\r\n"
            "c@example.org,,x\r\n")
    refused = run(config, "subscribers", "import", write(tmp_path, text))
    assert refused.exit_code == 2
    assert "1 bad rows" in refused.output
    assert "line 6: 4 fields, the header has 3" in refused.output
    assert open_store(config.database_url).list_subscribers() == []
    fixed = text.replace("Roy, Cécile,optics", '"Roy, Cécile",optics')
    result = run(config, "subscribers", "import", write(tmp_path, fixed), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["added"] == 3
    db = open_store(config.database_url)
    a, b = db.find_subscriber("a@example.org"), db.find_subscriber("b@example.org")
    assert a is not None and b is not None
    assert (a.name, a.profile.interests) == ("Roy, Cécile", "protein folding\nand design")
    assert (b.name, b.profile.interests) == ("Roy, Cécile", "optics")


def test_import_reads_a_semicolon_separated_file_and_names_a_json_one(
    config: Config, tmp_path: Path,
) -> None:
    # Excel writes ";" between fields where the decimal mark is a comma: such a file
    # was refused as "the CSV has no email column", though its header has one; the
    # JSON that `export` writes by default was refused so too.
    text = ('\ufeffEmail;Interests;Keywords;Popularity\r\n'
            'a@example.org;"protein folding; design";"alphafold;structure";0,3\r\n'
            ';;;\r\n')
    result = run(config, "subscribers", "import", write(tmp_path, text), "--json")
    assert result.exit_code == 0, result.output
    a = open_store(config.database_url).find_subscriber("a@example.org")
    assert a is not None and a.profile.interests == "protein folding; design"
    assert a.profile.keywords == ("alphafold", "structure") and a.popularity == 0.3
    exported = tmp_path / "all.json"
    assert run(config, "subscribers", "export", "-o", str(exported)).exit_code == 0
    refused = run(config, "subscribers", "import", str(exported))
    assert refused.exit_code == 2
    assert "the file is JSON" in refused.output and "export --csv" in refused.output


def test_csv_export_and_import_keep_the_thumbs(config: Config, tmp_path: Path) -> None:
    # "export --csv: what import reads" had no column for the thumbs a subscriber gave
    # from the email: moved to a new instance, their ranking lost every example paper.
    run(config, "subscribers", "add", "t@example.org", "--interests", "protein design")
    db = open_store(config.database_url)
    sub = db.find_subscriber("t@example.org")
    assert sub is not None and sub.created_at is not None
    db.update_subscriber(sub.id, now=sub.created_at,
                         profile=replace(sub.profile, liked=("arxiv:2401.00001",)))
    db.record_vote(sub.id, "arxiv:2401.00002", 1, now=sub.created_at)
    db.record_vote(sub.id, "doi:10.1101/2024.01.01.000001", -1, now=sub.created_at)
    out = tmp_path / "out.csv"
    assert run(config, "subscribers", "export", "--csv", "-o", str(out)).exit_code == 0
    other = replace(config, database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    result = run(other, "subscribers", "import", str(out))
    assert result.exit_code == 0, result.output
    moved = open_store(other.database_url).find_subscriber("t@example.org")
    assert moved is not None
    assert moved.profile.liked == ("arxiv:2401.00001", "arxiv:2401.00002")
    assert moved.profile.disliked == ("doi:10.1101/2024.01.01.000001",)
    # --update keeps the thumbs a subscriber gave here, whatever the file says.
    again = run(other, "subscribers", "import", "--update", write(
        tmp_path, "email,liked\nt@example.org,2402.00009\n"))
    assert again.exit_code == 0, again.output
    kept = open_store(other.database_url).find_subscriber("t@example.org")
    assert kept is not None and kept.profile.liked == moved.profile.liked


def test_csv_export_of_a_field_over_128_kib_imports(config: Config, tmp_path: Path) -> None:
    # `add` takes interests of any length and `export --csv` writes them whole, but the
    # import stopped with a traceback (_csv.Error: field larger than field limit
    # (131072)): a list holding one such subscriber could not be moved at all.
    interests = "\n".join(f"protein design line {i}: inverse folding of enzymes"
                          for i in range(4000))
    assert len(interests) > 131072
    added = run(config, "subscribers", "add", "long@example.org", "--interests", interests)
    assert added.exit_code == 0, added.output
    out = tmp_path / "out.csv"
    assert run(config, "subscribers", "export", "--csv", "-o", str(out)).exit_code == 0
    other = replace(config, database_url=f"sqlite:///{tmp_path / 'other.sqlite3'}")
    result = run(other, "subscribers", "import", str(out))
    assert result.exit_code == 0, result.output
    assert "added 1" in result.output
    moved = open_store(other.database_url).find_subscriber("long@example.org")
    assert moved is not None and moved.profile.interests == interests


def test_profile_summary_counts_one_author_and_one_seed_in_the_singular() -> None:
    one = Profile(authors=("Yann LeCun",), seeds=("arxiv:2401.00001",))
    two = Profile(authors=("A B", "C D"), seeds=("arxiv:1", "arxiv:2"))
    assert profile_summary(one, width=200) == "1 author; 1 seed"
    assert profile_summary(two, width=200) == "2 authors; 2 seeds"
