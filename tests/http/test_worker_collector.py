"""The garbage collector as `bonecds serve` sets it up in each worker once the app is built."""

from __future__ import annotations

import gc

from service.cli import YOUNG_COLLECTION_THRESHOLD, settle_for_calls


def test_the_built_app_is_frozen_and_young_collections_wait_longer():
    before = gc.get_threshold()
    try:
        settle_for_calls()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold() == (YOUNG_COLLECTION_THRESHOLD, 10, 10)
        assert YOUNG_COLLECTION_THRESHOLD > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
