"""The demo's oracle part (`scripts/_oracle_demo.py`): a compressed day, equal to the Wh."""

from __future__ import annotations

from rich.console import Console

from scripts._oracle_demo import run_oracle_demo


def test_demo_day_on_chain_equals_the_meters(anvil, ledger, deployments_dir, w3, tmp_path):
    unit = w3.eth.accounts[7]
    # Anvil's 8th well-known development key (public test data).
    key = "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356"
    ledger.register(unit)
    alice, bob, carol = w3.eth.accounts[8], w3.eth.accounts[9], w3.eth.accounts[6]
    for consumer in (bob, carol):
        ledger.open_session(consumer, unit)
    console = Console(record=True, width=160)
    result = run_oracle_demo(
        rpc_url=anvil.url,
        deployment_dir=deployments_dir,
        unit=key,
        producers={"alice": alice},
        consumers={"bob": bob, "carol": carol},
        duration_s=8.0,
        compression=10_800.0,  # a day in 8 s
        period_s=0.25,
        state_dir=tmp_path / "demo",
        console=console,
    )
    assert result.match, (result.meters, result.on_chain)
    assert set(result.meters) == {
        ("produced", alice),
        ("consumed", bob),
        ("consumed", carol),
        ("actual", None),
    }
    assert result.meters[("produced", alice)] > 10_000  # a summer day of 3 kW PV
    assert result.outbox["rejected"] == 0 and result.transactions > 0
    text = console.export_text()
    assert "Simulated meters vs the ledger" in text and "DIFFERENT" not in text
    assert ledger.totals(unit) == result.on_chain
