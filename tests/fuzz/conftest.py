"""Every stateful test runs with a rarer cyclic garbage collector: py-evm and hypothesis
allocate millions of short-lived objects, and at the default gen-0 threshold (700) the
collector alone cost ~12% of the order book machine's run. Reference counting frees almost all
of them anyway; the thresholds are restored after each test."""

import gc

import pytest


@pytest.fixture(autouse=True)
def _rare_collections():
    thresholds = gc.get_threshold()
    gc.set_threshold(100_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
