"""Configuration: every variable parsed, every mistake named with its fix."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config import TEMPLATES_DIR, config_from_values, load_config, parse_smtp_url
from digest.errors import ConfigError, StoreError
from digest.store import open_store
from tests.fixtures.disk import PYTHON, child_env, no_room_past


def test_smtp_url_forms() -> None:
    remote = parse_smtp_url("smtp://user%40x:p%3Ass@mail.example.org:587")
    assert remote is not None
    assert (remote.host, remote.port, remote.security) == ("mail.example.org", 587, "starttls")
    assert (remote.username, remote.password) == ("user@x", "p:ss")
    ssl = parse_smtp_url("smtps://mail.example.org")
    assert ssl is not None and (ssl.port, ssl.security) == (465, "ssl")
    assert parse_smtp_url("smtp://relay.lan:25?starttls=off").security == "none"  # type: ignore[union-attr]
    # A relay on this machine is plain unless told otherwise.
    assert parse_smtp_url("smtp://127.0.0.1:1025").security == "none"  # type: ignore[union-attr]
    assert parse_smtp_url("smtp://localhost:25").security == "none"  # type: ignore[union-attr]
    assert parse_smtp_url("smtp://localhost:25?starttls=on").security == "starttls"  # type: ignore[union-attr]
    assert parse_smtp_url("") is None


def test_password_never_appears_in_repr_or_status() -> None:
    settings = parse_smtp_url("smtp://digest:hunter22@mail.example.org:587")
    assert settings is not None
    assert "hunter22" not in repr(settings) and "hunter22" not in settings.redacted()
    config = config_from_values({
        "DIGEST_SMTP_URL": "smtp://digest:hunter22@mail.example.org:587",
        "DIGEST_SECRET_KEY": "s3cret-key-that-is-long-enough",
        "DIGEST_VAR_DIR": "/tmp/digest-test-var",
    })
    assert "hunter22" not in repr(config) and "s3cret" not in repr(config)
    assert "hunter22" not in config.delivery


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("DIGEST_SMTP_URL", "http://mail.example.org", "smtp://"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org:notaport", "port"),
        # A password with "#" ends the host part early: the port is blamed, and the
        # message says why; an unclosed "[" was a traceback.
        ("DIGEST_SMTP_URL", "smtp://digest:pa#ss@mail.example.org:587", "percent-encoded"),
        ("DIGEST_SMTP_URL", "smtp://[::1", "DIGEST_SMTP_URL cannot be read"),
        ("DIGEST_BASE_URL", "http://[::1:8000", "DIGEST_BASE_URL"),
        ("DIGEST_DATABASE_URL", "var/digest.sqlite3", "database URL"),
        ("DIGEST_FROM", "not an address", "DIGEST_FROM"),
        ("DIGEST_BASE_URL", "digest.example.org", "DIGEST_BASE_URL"),
        ("DIGEST_SECRET_KEY", "short", "DIGEST_SECRET_KEY"),
        ("DIGEST_TIMEZONE", "Mars/Olympus", "DIGEST_TIMEZONE"),
        ("DIGEST_SEND_AT", "25:00", "DIGEST_SEND_AT"),
        ("DIGEST_SOURCES", "gopher:somewhere", "DIGEST_SOURCES"),
        ("DIGEST_MAX_PAPERS", "many", "DIGEST_MAX_PAPERS"),
        ("DIGEST_MAX_PAPERS", "60", "DIGEST_MAX_PAPERS must be between 1 and 50, got 60"),
        ("DIGEST_RANK_PROCESSES", "-1", "DIGEST_RANK_PROCESSES"),
        ("DIGEST_RANK_PAGE", "10", "DIGEST_RANK_PAGE must be between 100 and 1000000, got 10"),
        ("DIGEST_RANK_PAGE", "5k", "DIGEST_RANK_PAGE must be a whole number"),
        # Each of these was taken: an unknown parameter or value ignored, 0 or nan a
        # socket that never waits or a ValueError at the first connection.
        ("DIGEST_SMTP_URL", "smtp://mail.example.org?tls=off", "no parameter 'tls'"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org?timout=60", "no parameter 'timout'"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org?starttls=maybe", "neither on nor off"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org?timeout=0", "more than 0 seconds"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org?timeout=nan", "finite number"),
        ("DIGEST_SEND_RATE", "nan", "DIGEST_SEND_RATE must be a finite number"),
        ("DIGEST_SEND_RATE", "inf", "DIGEST_SEND_RATE must be a finite number"),
        ("DIGEST_SEMANTIC_WEIGHT", "nan", "DIGEST_SEMANTIC_WEIGHT must be a finite number"),
        ("DIGEST_BATCH_HOUR", "24", "DIGEST_BATCH_HOUR must be between 0 and 23, got 24"),
    ],
)
def test_malformed_values_name_the_variable_and_the_fix(
    tmp_path: Path, name: str, value: str, fragment: str
) -> None:
    values = {"DIGEST_VAR_DIR": str(tmp_path), "DIGEST_SECRET_KEY": "x" * 32, name: value}
    with pytest.raises(ConfigError) as err:
        config_from_values(values)
    assert fragment in str(err.value)
    assert err.value.exit_code == 78


def test_a_templates_dir_without_the_email_templates_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    """A missing folder or template failed only when the first digest was written."""
    values = {"DIGEST_VAR_DIR": str(tmp_path / "var"), "DIGEST_SECRET_KEY": "x" * 32}
    with pytest.raises(ConfigError, match="is not a folder") as err:
        config_from_values({**values, "DIGEST_TEMPLATES_DIR": str(tmp_path / "nowhere")})
    assert err.value.exit_code == 78
    copy = tmp_path / "mine"
    shutil.copytree(TEMPLATES_DIR, copy)
    (copy / "email" / "digest.html.j2").unlink()
    (copy / "web" / "preferences.html").unlink()
    with pytest.raises(ConfigError, match=r"lacks 2 of the shipped templates: "
                                          r"email/digest.html.j2, web/preferences.html"):
        config_from_values({**values, "DIGEST_TEMPLATES_DIR": str(copy)})
    # A full copy is fine (as is one with templates of its own beside them).
    shutil.copy(TEMPLATES_DIR / "email" / "digest.html.j2", copy / "email")
    shutil.copy(TEMPLATES_DIR / "web" / "preferences.html", copy / "web")
    (copy / "email" / "extra.txt.j2").write_text("mine\n")
    assert config_from_values({**values, "DIGEST_TEMPLATES_DIR": str(copy)}).templates_dir == copy


def test_environment_wins_over_dotenv(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("DIGEST_TIMEZONE=Europe/Berlin\nDIGEST_SEND_AT=06:30\n")
    config = load_config(
        {"DIGEST_TIMEZONE": "Asia/Tokyo", "DIGEST_VAR_DIR": str(tmp_path / "var")},
        env_file=env_file,
    )
    assert config.timezone == "Asia/Tokyo" and config.send_at == (6, 30)


def test_embedded_default_keeps_one_secret_key(tmp_path: Path) -> None:
    first = config_from_values({"DIGEST_VAR_DIR": str(tmp_path / "var")})
    second = config_from_values({"DIGEST_VAR_DIR": str(tmp_path / "var")})
    assert first.secret_key == second.secret_key and len(first.secret_key) >= 32
    assert (tmp_path / "var" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert first.smtp is None and first.database_url.startswith("sqlite:///")


def test_an_empty_secret_key_left_by_a_full_disk_is_replaced_once_and_kept(
    tmp_path: Path,
) -> None:
    # An earlier release created var/secret.key and then could not write the key into it
    # (a full disk, a crash): every command after that stopped with "DIGEST_SECRET_KEY
    # is too short" (78), a variable nobody had set, even once the disk had room again.
    var = tmp_path / "var"
    var.mkdir()
    (var / "secret.key").write_text("")
    first = config_from_values({"DIGEST_VAR_DIR": str(var)})
    second = config_from_values({"DIGEST_VAR_DIR": str(var)})
    assert len(first.secret_key) >= 32 and second.secret_key == first.secret_key
    assert (var / "secret.key").read_text().strip() == first.secret_key
    assert sorted(p.name for p in var.iterdir()) == ["secret.key"]


def test_a_full_disk_at_the_first_start_leaves_no_empty_secret_key_behind(
    tmp_path: Path,
) -> None:
    # The first command on a new var/ finds no room for its secret.key: it stops naming
    # var/ (78), and the command after it, with room again, just works.
    var = tmp_path / "var"
    code = ("from digest.config import config_from_values\n"
            f"config_from_values({{'DIGEST_VAR_DIR': {str(var)!r}}})\n")
    full = subprocess.run([PYTHON, "-c", code], env=child_env(), capture_output=True,
                          text=True, preexec_fn=no_room_past(0), check=False)
    assert full.returncode != 0 and "ConfigError" in full.stderr, full.stderr
    assert not (var / "secret.key").exists()  # no empty one, which stopped every later start
    config = config_from_values({"DIGEST_VAR_DIR": str(var)})
    assert len(config.secret_key) >= 32
    assert (var / "secret.key").read_text().strip() == config.secret_key
    assert sorted(p.name for p in var.iterdir()) == ["secret.key"]
    assert "secret.key" in full.stderr and "free space" in full.stderr  # what to do


@pytest.mark.parametrize("url", ["postgres://u:p@localhost/x", "sqlite://x.db",
                                 "nosuchdialect://a/b"])
def test_an_unusable_database_url_is_a_setting_to_fix_not_a_database_to_wait_for(
    url: str,
) -> None:
    # These once exited 75 ("try later"): cron and systemd would retry a typo forever.
    with pytest.raises(ConfigError) as err:
        open_store(url)
    assert "DIGEST_DATABASE_URL" in str(err.value) and err.value.exit_code == 78


def test_a_database_that_cannot_be_reached_is_one_to_wait_for(tmp_path: Path) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(StoreError) as err:
        open_store("postgresql+psycopg://digest:x@127.0.0.1:1/digest")
    assert err.value.exit_code == 75
    # A SQLite folder that cannot be made is a setting to fix.
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    with pytest.raises(ConfigError) as bad:
        open_store(f"sqlite:///{blocked}/sub/digest.sqlite3")
    assert "folder" in str(bad.value) and bad.value.exit_code == 78


@pytest.mark.parametrize("taken", ["a file", "secret.key a folder"])
def test_an_unusable_var_dir_is_a_configuration_error_naming_it(
    tmp_path: Path, taken: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # var/ left unwritable for the service's user (made by `sudo digest init`), or not a
    # folder, was a traceback and exit 1; it is a setting to fix (78), named.
    var = tmp_path / "var"
    if taken == "a file":
        var.write_text("")
    else:
        (var / "secret.key").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_VAR_DIR", str(var))
    monkeypatch.delenv("DIGEST_SECRET_KEY", raising=False)
    result = CliRunner().invoke(main, ["--env-file", os.devnull, "status"])
    assert result.exit_code == 78, result.output
    assert "DIGEST_VAR_DIR" in result.output and "hint:" in result.output
    assert "Traceback" not in result.output


def test_a_run_lock_that_cannot_be_made_is_a_configuration_error(tmp_path: Path) -> None:
    from digest.locking import run_lock

    (tmp_path / "var").write_text("")  # where the lock's folder should be
    with pytest.raises(ConfigError) as err, run_lock(tmp_path / "var" / "run.lock"):
        pass
    assert "DIGEST_VAR_DIR" in str(err.value) and err.value.exit_code == 78


def test_env_example_documents_every_variable_the_config_reads() -> None:
    # DIGEST_LEASE_SECONDS, DIGEST_LIST_ID and DIGEST_TEMPLATES_DIR were read but
    # documented nowhere an operator looks (the Dockerfile sets the last one).
    root = Path(__file__).resolve().parent.parent
    read = set(re.findall(r'get\("(DIGEST_[A-Z_]+)"', (root / "digest" / "config.py").read_text()))
    documented = set(re.findall(r"^#?(DIGEST_[A-Z_]+)=", (root / "deploy" / "env.example")
                                .read_text(), re.MULTILINE))
    assert len(read) > 20
    assert read - documented == set()


def test_every_setting_line_of_env_example_works_uncommented(tmp_path: Path) -> None:
    # "#DIGEST_MAX_PAPERS=10        default papers per email (1-50)": the delivery
    # tuning lines carried their description after the value, and uncommented as they
    # stand the description was the value: every command stopped with 78 ("must be a
    # whole number, got '10        default papers...'").
    root = Path(__file__).resolve().parent.parent
    sources = tmp_path / "sources.txt"
    sources.write_text("arxiv-rss:cs.LG\n")
    lines = re.findall(r"^#(DIGEST_[A-Z_]+=.*)$", (root / "deploy" / "env.example").read_text(),
                       re.MULTILINE)
    assert len(lines) > 20
    for line in lines:
        line = (line.replace("/etc/digest/sources.txt", str(sources))
                .replace("/srv/digest/templates", str(TEMPLATES_DIR)))
        env_file = tmp_path / ".env"
        env_file.write_text(line + "\n")
        try:
            load_config({"DIGEST_VAR_DIR": str(tmp_path / "var")}, env_file=env_file)
        except ConfigError as err:
            pytest.fail(f"{line!r} uncommented: {err.message}")


@pytest.mark.parametrize(
    ("name", "meant"),
    [("DIGEST_SMTP", "DIGEST_SMTP_URL"), ("DIGEST_DATABASE", "DIGEST_DATABASE_URL"),
     ("DIGEST_SOURCE", "DIGEST_SOURCES"), ("DIGEST_TIME_ZONE", "DIGEST_TIMEZONE")],
)
def test_a_misspelt_variable_is_a_configuration_error_naming_the_one_meant(
    tmp_path: Path, name: str, meant: str
) -> None:
    # DIGEST_SMTP=smtp://... was ignored: every digest went into the local Maildir and
    # the run said "sent" for each.
    env_file = tmp_path / ".env"
    env_file.write_text(f"{name}=smtp://digest:secret@mail.example.org:587\n")
    with pytest.raises(ConfigError) as err:
        load_config({"DIGEST_VAR_DIR": str(tmp_path / "var")}, env_file=env_file)
    assert f"{name} is not a digest setting; did you mean {meant}?" in err.value.message
    assert err.value.exit_code == 78 and "env.example" in err.value.hint


def test_other_digest_variables_are_left_alone(tmp_path: Path) -> None:
    config = config_from_values({
        "DIGEST_VAR_DIR": str(tmp_path / "var"), "DIGEST_SKIP_BROWSER": "1",
        "DIGEST_TEST_POSTGRES_URL": "postgresql://x", "DIGEST_MY_OWN_NOTE": "hello",
    })
    assert config.smtp is None


def test_the_rank_page_is_read_and_defaults_to_5000(tmp_path: Path) -> None:
    values = {"DIGEST_VAR_DIR": str(tmp_path), "DIGEST_SECRET_KEY": "x" * 32}
    assert config_from_values(values).rank_page == 5000
    assert config_from_values({**values, "DIGEST_RANK_PAGE": "20000"}).rank_page == 20000
    # A near miss of the name is refused, not ignored (a run would page by 5,000).
    with pytest.raises(ConfigError, match="did you mean DIGEST_RANK_PAGE"):
        config_from_values({**values, "DIGEST_RANK_PAGES": "20000"})
