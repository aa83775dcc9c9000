"""What a `digest send` process imports before its first message: each sender pays it."""

from __future__ import annotations

import subprocess
import sys


def test_the_commands_do_not_import_the_orm() -> None:
    # SQLAlchemy's ORM (~0.12-0.2 s of CPU to import on the bench's box) was imported for
    # one alias in the retention queries; nothing else uses it.
    code = "import sys, digest.cli; print('sqlalchemy.orm' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "False"


def test_the_commands_load_the_http_client_and_feedparser_only_to_fetch() -> None:
    # httpx (~0.23 s to import on the bench's box) and feedparser (~0.12 s) were loaded
    # by every command, `digest send` included, which fetches nothing: each sender
    # process paid ~0.35 s before its first message.
    code = ("import sys, digest.cli; "
            "print(sorted(m for m in ('httpx', 'feedparser') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"
