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
