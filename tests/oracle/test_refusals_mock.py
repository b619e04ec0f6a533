"""Refusals the real ledger never gives, exercised on the test-only MockLedger.

The real EnergyLedger books consumption without a session as over-consumption and has no pause;
the oracle still has to handle a ledger (or a future version) that refuses one report ("no
session": rejected, never retried) or every report (a pause: held back, not rejected). This
module runs the same outbox and sender against `contracts/mocks/MockLedger.vy`.
"""

from __future__ import annotations

import pytest

from oracle.errors import LedgerRefusing
from tests.oracle.rig import ledger_artifact
from tests.oracle.test_delivery import drain, start


@pytest.fixture(scope="module")
def artifact(compiled):
    """This module's ledger: the mock (overrides the suite's real ledger)."""
    return ledger_artifact(compiled, "MockLedger")


def test_refused_report_is_rejected_and_the_rest_delivered(site, counters, ledger, producer, w3):
    """A consumer without a session: the ledger refuses that report ("ledger: no session");
    it is recorded as rejected, never retried, and the batch's other reports go through."""
    stranger = w3.eth.accounts[5]  # never opened a session
    site.channels[1]["account"] = stranger
    service = start(site)
    service.read_once()
    counters.add(imp=9, exp=30)
    service.read_once()
    counters.add(exp=12)
    service.read_once()
    drain(service)
    counts = service.outbox.counts()
    assert counts == {"pending": 0, "sending": 0, "confirmed": 2, "rejected": 1}
    [rejected] = [r for r in service.outbox.table("reports") if r["status"] == "rejected"]
    assert rejected["account"] == stranger and rejected["wh"] == 9
    assert rejected["error"] == "ledger: no session"
    assert ledger.totals(site.unit.address) == {("produced", producer): 42}
    assert ledger.last_seq(site.unit.address) == 2
    # The batch was refused whole, then split: three single sends, one refused at estimate.
    assert [tx["method"] for tx in service.outbox.table("txs")] == ["energy_produced"] * 2
    service.close()


def test_refusal_for_everyone_holds_reports_back_instead_of_rejecting(
    site, counters, ledger, producer, consumer
):
    """A paused ledger refuses every report: that is not the report's fault, so nothing is
    rejected; delivery waits and resumes when the ledger does."""
    service = start(site)
    service.read_once()
    counters.add(imp=4, exp=10)
    service.read_once()
    counters.add(exp=6)
    service.read_once()
    ledger.pause()
    try:
        service.deliver_once()  # the batch is refused: split into single reports
        with pytest.raises(LedgerRefusing, match="ledger: paused; it stays in the outbox"):
            service.deliver_once()
        assert service.outbox.counts() == {
            "pending": 3,
            "sending": 0,
            "confirmed": 0,
            "rejected": 0,
        }
        healthy, detail = service.health()
        assert not healthy and any("ledger: paused" in p for p in detail["problems"])
    finally:
        ledger.pause(False)
    drain(service)
    assert service.outbox.counts()["confirmed"] == 3
    assert ledger.totals(site.unit.address) == {
        ("produced", producer): 16,
        ("consumed", consumer): 4,
    }
    assert not any("paused" in p for p in service.health()[1]["problems"])
    service.close()
