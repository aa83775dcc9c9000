"""Which sources a run reads: the ones configured, plus the ones added with the CLI."""

from __future__ import annotations

from collections.abc import Sequence

from digest.config import Config
from digest.models import SourceSpec

# The kinds whose papers may carry Hugging Face upvotes: its daily list, and JSON lines
# (the corpus schema has an ``upvotes`` field). Feeds and arXiv's own never do.
UPVOTE_KINDS = frozenset({"hf-daily", "jsonl"})


def effective_sources(config: Config, stored: Sequence[SourceSpec]) -> tuple[SourceSpec, ...]:
    """Return configured sources then stored ones, by name; the default when there are none."""
    chosen: dict[str, SourceSpec] = {}
    if config.sources_explicit:
        for spec in config.sources:
            chosen.setdefault(spec.name, spec)
    for spec in stored:
        # A configured source keeps its settings when the database holds one of that name.
        chosen.setdefault(spec.name, spec)
    if not chosen:
        # Nothing configured and nothing added: the embedded default (the sample batch).
        return tuple(config.sources)
    return tuple(chosen.values())


def reads_upvotes(specs: Sequence[SourceSpec]) -> bool:
    """Tell whether any of the sources may carry upvotes (a popularity blend can act)."""
    return any(spec.kind in UPVOTE_KINDS for spec in specs)
