"""Persistence: the issued-card ledger, clinicians' feedback and the JWT replay cache, in SQLite
(one machine) or PostgreSQL (any number of replicas), behind a store that degrades when the database
misbehaves; `store_for` picks one."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.store.base import FeedbackStore

if TYPE_CHECKING:
    from service.config import Settings


def store_for(settings: Settings) -> FeedbackStore:
    """The store DATABASE_URL names: sqlite:///PATH, or postgresql:// (postgres://) for a store
    shared by replicas."""
    if settings.database_backend == "postgresql":
        # psycopg only when PostgreSQL is configured
        from service.store.postgres import (
            PostgresFeedbackStore,
        )

        return PostgresFeedbackStore(settings.database_url)
    from service.store.sqlite import SqliteFeedbackStore

    return SqliteFeedbackStore(settings.sqlite_path)
