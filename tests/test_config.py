"""Configuration: every variable parsed, every mistake named with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.config import config_from_values, load_config, parse_smtp_url
from digest.errors import ConfigError, StoreError
from digest.store import open_store


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
