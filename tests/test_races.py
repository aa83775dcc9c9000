"""What a subscriber does while the daily job runs: one real SQLite (or PostgreSQL) file,
the web app's test client acting at a chosen moment of a real run.

Each test holds the run at one step (the plan phase's write, a message at the SMTP
server) and lets the subscriber or the operator act there, in another store on the same
database, as a web request or a command arriving at that instant would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from digest import pipeline, tokens
from digest.config import Config
from digest.models import Profile
from digest.store import Store, open_store
from tests.fixtures.config import SECRET, make_config
from tests.test_web_support import Site, make_site

DAY = date(2026, 5, 25)  # the sample batch's day
NOW = datetime(2026, 5, 25, 9, 0, tzinfo=UTC)
READERS = ("ada@example.org", "bob@example.org", "cy@example.org", "dee@example.org")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Config, Store, Site, dict[str, int]]:
    """A database of four active readers, a store for the run, and the web app on it."""
    config = make_config(tmp_path / "var")
    store = open_store(config.database_url)
    ids = {
        email: store.add_subscriber(
            email, Profile(interests="language model agents that use tools"), now=NOW,
            max_papers=3, empty_digest="note",
        ).id
        for email in READERS
    }
    site = make_site(config)
    yield config, store, site, ids
    store.close()


def before(store: Store, method: str, action: Callable[[], None]) -> None:
    """Run ``action`` once, just before the store's ``method`` is first called."""
    original = getattr(store, method)
    done: list[bool] = []

    def wrapped(*args: Any, **kw: Any) -> Any:
        if not done:
            done.append(True)
            action()
        return original(*args, **kw)

    setattr(store, method, wrapped)


def web_delete(site: Site, sub_id: int) -> None:
    """Press "Delete me" on the preferences page, as the subscriber does."""
    path = tokens.preferences_url("", SECRET, sub_id)
    token = site.csrf(path)
    done = site.client.post(path + "/delete",
                            data={"csrf_token": token, "confirm_delete": "yes"})
    assert done.status_code == 200, done.get_data(as_text=True)


def test_a_subscriber_deleted_while_the_plan_phase_ranks_does_not_stop_the_run(
    setup: tuple[Config, Store, Site, dict[str, int]],
) -> None:
    # The page of subscribers was read and ranked; before its ledger rows are written,
    # one of them deletes themself on the preferences page. Their row broke the foreign
    # key, the page's insert failed (INSERT OR IGNORE ignores no foreign key), and the
    # whole run ended in an IntegrityError: nobody got the day's digest.
    config, store, site, ids = setup
    gone = ids["bob@example.org"]
    before(store, "plan_deliveries", lambda: web_delete(site, gone))
    report = pipeline.run(config, now=NOW, day=DAY, store=store)
    assert report.sent == 3 and report.failed == 0
    assert store.get_subscriber(gone) is None
    assert store.delivery_counts(DAY) == {"sent": 3}
    assert gone not in store.deliveries_for_day(DAY)  # nothing of theirs is stored again
    assert store.is_suppressed("bob@example.org")
