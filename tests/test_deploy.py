"""deploy/: the files an operator installs, checked as the README tells them to use them.

systemd units are verified with `systemd-analyze verify` (paths moved into a scratch
folder), the crontab line runs as cron would run it, and compose.yaml is read as text
(no YAML library is a dependency)."""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def compose_services() -> dict[str, str]:
    """Return each service's block of compose.yaml (two-space indented, by name)."""
    text = (DEPLOY / "compose.yaml").read_text()
    services = text.split("\nservices:\n", 1)[1].split("\nvolumes:", 1)[0]
    blocks = re.split(r"^  (?=[a-z][\w-]*:\s*$)", services, flags=re.MULTILINE)
    return {block.split(":", 1)[0]: block for block in blocks if block.strip()}


def test_every_compose_service_of_the_image_shares_var_and_its_secret_key() -> None:
    # The web front end had no var/ volume: without DIGEST_SECRET_KEY in .env it made its
    # own var/secret.key, and every link the scheduler signed (unsubscribe, preferences,
    # confirm) was refused as tampered with.
    services = compose_services()
    ours = {name: block for name, block in services.items() if "deploy/Dockerfile" in block}
    assert set(ours) == {"scheduler", "web"}
    for name, block in ours.items():
        assert "var:/srv/digest/var" in block, f"{name} does not mount the shared var/"


def test_compose_services_wait_for_the_database_and_come_back_after_a_reboot(
    tmp_path: Path,
) -> None:
    # depends_on: [db] only ordered the starts: on a first `docker compose up` the web
    # front end opened the database while PostgreSQL was still initialising, exited 75
    # (below) and, with docker's default restart policy ("no"), stayed down; after a
    # reboot or a daemon restart no service came back at all, the scheduler included.
    pytest.importorskip("psycopg")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "DIGEST_VAR_DIR": str(tmp_path / "var"),
           "DIGEST_DATABASE_URL": "postgresql+psycopg://digest:digest@127.0.0.1:1/digest",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    done = subprocess.run([str(Path(sys.executable).parent / "digest"), "serve", "--port", "1"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 75, done.stdout + done.stderr  # a database not up yet
    services = compose_services()
    assert set(services) == {"db", "scheduler", "web"}
    for name, block in services.items():
        assert re.search(r"^    restart: (unless-stopped|always)$", block, re.M), name
    assert re.search(r"^    healthcheck:\n      test: \[.*\"pg_isready\"", services["db"], re.M)
    for name in ("scheduler", "web"):
        assert "depends_on: { db: { condition: service_healthy } }" in services[name], name


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Return a systemd unit's sections as {section: {key: [values in order]}}."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


UNITS = ("digest.service", "digest.timer", "digest-scheduler.service", "digest-web.service")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_units_verify_once_installed(tmp_path: Path) -> None:
    # Installed as the README says: the units name /srv/digest; here that is a scratch
    # folder whose .venv/bin holds this environment's digest and waitress-serve.
    srv = tmp_path / "srv"
    (srv / ".venv" / "bin").mkdir(parents=True)
    for tool in ("digest", "waitress-serve"):
        (srv / ".venv" / "bin" / tool).symlink_to(Path(sys.executable).parent / tool)
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace("/srv/digest", str(srv))
        (tmp_path / name).write_text(text)
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / n) for n in UNITS)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


GENERATOR = Path("/usr/lib/systemd/user-environment-generators/30-systemd-environment-d-generator")


def systemd_environment(env_file: Path, scratch: Path) -> dict[str, str]:
    """Return the variables systemd reads from an environment file (its own parser).

    systemd's environment.d generator parses with the parser EnvironmentFile= uses.
    """
    conf = scratch / "environment.d"
    conf.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(env_file, conf / "10-digest.conf")
    done = subprocess.run([str(GENERATOR)], capture_output=True, text=True, timeout=60,
                          check=True, env={"XDG_CONFIG_HOME": str(scratch),
                                           "XDG_CONFIG_DIRS": str(scratch / "none")})
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition("=")
        if name.startswith("DIGEST_"):
            found[name] = " ".join(shlex.split(value))
    return found


@pytest.mark.skipif(not GENERATOR.exists(), reason="needs systemd's environment.d generator")
@pytest.mark.parametrize("name", [n for n in UNITS if n.endswith(".service")])
def test_a_unit_reads_the_env_file_as_digest_does_by_hand(name: str, tmp_path: Path) -> None:
    # The units passed /srv/digest/.env to systemd (EnvironmentFile=), whose parser keeps
    # a comment after a value ("DIGEST_SMTP_CONNECTIONS=4  # our relay allows 4" is
    # "4  # our relay allows 4"), and digest read the same file itself (python-dotenv
    # drops the comment) with the environment winning: `digest run` worked by hand and
    # from cron, and the services stopped with 78 on the same file.
    srv = tmp_path / "srv"
    srv.mkdir()
    (srv / ".env").write_text(
        f"DIGEST_VAR_DIR={srv / 'var'}  # beside the checkout\n"
        "DIGEST_SMTP_CONNECTIONS=4  # our relay allows 4\n"
    )
    service = unit(name)["Service"]
    assert service["WorkingDirectory"] == ["/srv/digest"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    for listed in service.get("EnvironmentFile", []):
        path = Path(listed.removeprefix("-").replace("/srv/digest", str(srv)))
        env.update(systemd_environment(path, tmp_path / "systemd"))
    done = subprocess.run([str(Path(sys.executable).parent / "digest"), "status"], env=env,
                          cwd=srv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (srv / "var" / "digest.sqlite3").exists()


def test_a_unit_ordered_after_the_network_also_pulls_it_in() -> None:
    # After= alone orders against network-online.target without starting it: on a
    # host where nothing else wants it, the service starts before the network is up.
    for name in UNITS:
        section = unit(name).get("Unit", {})
        if "network-online.target" in " ".join(section.get("After", [])):
            assert "network-online.target" in " ".join(section.get("Wants", [])), name


@pytest.mark.parametrize("name", ["digest-scheduler.service", "digest-web.service"])
def test_a_service_is_not_restarted_on_a_configuration_error(
    name: str, tmp_path: Path
) -> None:
    # `digest schedule` exits 78 on a bad setting; Restart=on-failure every 30 s
    # restarted it for ever (the start limit never trips at that pace) and the unit
    # never showed as failed. The web unit ran waitress-serve, which exits 1 on any
    # error in create_app: restarted for ever too.
    service = unit(name)["Service"]
    assert service["Restart"] == ["on-failure"]
    assert "78" in " ".join(service.get("RestartPreventExitStatus", [])).split()
    # Its command, as installed, exits 78 on a bad setting.
    [start] = service["ExecStart"]
    program, *arguments = start.split()
    assert program == "/srv/digest/.venv/bin/digest"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           "DIGEST_VAR_DIR": str(tmp_path / "var"), "DIGEST_SMTP_URL": "smtp://relay:notaport"}
    done = subprocess.run([str(Path(sys.executable).parent / "digest"), *arguments], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 78, done.stdout + done.stderr
    assert "DIGEST_SMTP_URL" in done.stderr


def cron_command(line: str) -> str:
    """Return what cron hands /bin/sh for a crontab line (crontab(5): % and \\%)."""
    command = line.split(None, 5)[5]
    out, i = [], 0
    while i < len(command):
        if command.startswith("\\%", i):
            out.append("%")
            i += 2
            continue
        if command[i] == "%":
            break  # the rest would be the command's standard input
        out.append(command[i])
        i += 1
    return "".join(out)


def cron_setup(tmp_path: Path, runs: str) -> tuple[str, Path, str, dict[str, str]]:
    """Return the crontab line that runs ``runs``, a /srv/digest in ``tmp_path`` with
    this environment's `digest` as its .venv's, the line's command there, and cron's
    bare environment."""
    [line] = [ln for ln in (DEPLOY / "crontab").read_text().splitlines()
              if ln.strip() and not ln.lstrip().startswith("#") and runs in ln]
    srv = tmp_path / "srv"
    (srv / ".venv" / "bin").mkdir(parents=True)
    (srv / ".venv" / "bin" / "digest").symlink_to(Path(sys.executable).parent / "digest")
    command = cron_command(line).replace("/srv/digest", str(srv))
    return line, srv, command, {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
                                "LANG": "C.UTF-8"}


def test_the_cron_line_logs_when_each_firing_ran_and_how_it_ended(tmp_path: Path) -> None:
    # The line appended bare summaries ("2026-05-25: sent 0, ...") with no time and no
    # exit code: 24 alike a day, a stopped run (75) indistinguishable from a good one;
    # and a firing that met a running one (flock -n) exited 1 and logged nothing.
    # Note: the line runs the installed `digest` (this environment's entry point).
    _, srv, command, env = cron_setup(tmp_path, "digest run")
    first = subprocess.run(["/bin/sh", "-c", command], env=env, timeout=240, check=False)
    assert first.returncode == 0
    # A second firing while a run holds the lock.
    with (srv / "var" / "run.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        subprocess.run(["/bin/sh", "-c", command], env=env, timeout=240, check=False)
    log = (srv / "var" / "digest.log").read_text()
    stamps = re.findall(r"^== (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) digest run$", log, re.M)
    assert len(stamps) == 2, log
    assert re.findall(r"^== exit (\d+)$", log, re.M) == ["0", "0"], log
    assert "sent 0" in log and "another digest run holds the lock" in log


def test_the_nightly_backup_line_keeps_the_newest_copies(tmp_path: Path) -> None:
    line, srv, command, env = cron_setup(tmp_path, "digest backup")
    done = subprocess.run(["/bin/sh", "-c", command], env=env, timeout=240, check=False)
    assert done.returncode == 0
    log = (srv / "var" / "digest.log").read_text()
    [copy] = (srv / "var" / "backups").glob("digest-*.sqlite3")
    assert f"backed up the database to var/backups/{copy.name}" in log, log
    keep = re.search(r"--keep (\d+)", line)
    assert keep and int(keep.group(1)) >= 7  # a week of nights at least


@pytest.mark.skipif(shutil.which("logrotate") is None, reason="needs logrotate")
def test_the_cron_log_is_rotated_by_the_shipped_logrotate_file(tmp_path: Path) -> None:
    # The cron line appended to var/digest.log forever: 24 firings a day, no rotation.
    [line] = [ln for ln in (DEPLOY / "crontab").read_text().splitlines()
              if ln.strip() and not ln.lstrip().startswith("#") and "digest run" in ln]
    cd = re.search(r"cd (\S+) ", line)
    appended = re.search(r">> (\S+)", line)
    assert cd and appended
    rotated = (DEPLOY / "logrotate").read_text()
    assert f"{cd.group(1)}/{appended.group(1)} {{" in rotated  # the file the line writes
    srv = tmp_path / "srv"
    (srv / "var").mkdir(parents=True)
    log = srv / "var" / "digest.log"
    log.write_text("== 2026-11-30T07:05:00Z digest run\n== exit 0\n")
    config = tmp_path / "digest.logrotate"
    config.write_text(rotated.replace(cd.group(1), str(srv)))
    def rotate() -> None:
        done = subprocess.run(
            ["logrotate", "--force", "--state", str(tmp_path / "state"), str(config)],
            capture_output=True, text=True, timeout=60, check=False,
        )
        assert (done.returncode, done.stderr) == (0, "")

    rotate()
    assert not log.exists()  # the next firing's >> creates it afresh
    log.write_text("== 2026-11-30T08:05:00Z digest run\n== exit 0\n")
    rotate()
    assert (srv / "var" / "digest.log.1").read_text().startswith("== 2026-11-30T08:05")
    assert (srv / "var" / "digest.log.2.gz").exists()  # delaycompress: older ones gzipped
