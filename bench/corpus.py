"""The corpus every bench script reads: DIGEST_CORPUS, else the shared one beside the
checkout (../shared/data/corpus). Never committed; a script imports this as a sibling
module (``from corpus import corpus_path``: python puts the script's folder on the path).
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CORPUS = (Path(__file__).resolve().parents[2] / "shared" / "data" / "corpus"
                  / "arxiv_cs_daily_2025-09-25_to_2026-05-29.jsonl.gz")


def corpus_path() -> Path:
    """Return the corpus file (DIGEST_CORPUS overrides the shared default)."""
    return Path(os.environ.get("DIGEST_CORPUS") or DEFAULT_CORPUS)
