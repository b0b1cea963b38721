"""The cycle collector is held back while batches run, and restored when the last one ends."""

from __future__ import annotations

import gc
import threading

import pytest

from app.core.collector import fewer_collections


def test_overlapping_batches_restore_the_collector_when_the_last_one_ends() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        held = gc.get_threshold()
        assert held[0] > before[0]
        assert gc.get_freeze_count() > 0
        started, finish = threading.Event(), threading.Event()

        def other_batch() -> None:
            with fewer_collections():
                started.set()
                finish.wait(5)

        thread = threading.Thread(target=other_batch)
        thread.start()
        started.wait(5)
    # The first batch ended while the other still runs: the collector stays held back.
    assert gc.get_threshold() == held
    finish.set()
    thread.join(5)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_a_failing_batch_restores_the_collector() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("the batch failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0
