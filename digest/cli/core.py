"""Core commands: init, ingest, subscribe, run, preview, schedule, demo."""

from __future__ import annotations
