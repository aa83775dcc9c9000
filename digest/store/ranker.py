"""The ranker's vectorizer state, kept from one run to the next."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from digest.store.base import StoreBase
from digest.store.tables import ranker_state


class RankerMixin(StoreBase):
    """Load and save the ranker state."""

    # -- ranker state -------------------------------------------------------------------

    def load_ranker_state(self) -> bytes | None:
        """Return the stored vectorizer state, or None."""
        with self.begin() as conn:
            value = conn.execute(select(ranker_state.c.data).where(ranker_state.c.id == 1)).scalar()
        return bytes(value) if value is not None else None

    def save_ranker_state(self, data: bytes, *, now: datetime) -> None:
        """Replace the stored vectorizer state."""
        with self.begin() as conn:
            conn.execute(self._upsert(ranker_state, {"id": 1, "data": data, "updated_at": now},
                                      key=("id",)))
