"""deploy/: the files an operator installs, checked as the README tells them to use them.

systemd units are verified with `systemd-analyze verify` (paths moved into a scratch
folder), the crontab line runs as cron would run it, and compose.yaml is read as text
(no YAML library is a dependency)."""

from __future__ import annotations

import re
from pathlib import Path

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
