"""`oracle.toml` validation: every mistake is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from oracle.config import load_config, parse_config, to_toml
from oracle.errors import ConfigError
from tests.oracle.rig import REPO

PRODUCER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"


def base(**changes) -> dict:
    data = {
        "service": {"state_dir": "state"},
        "chain": {
            "rpc_url": "http://127.0.0.1:8545",
            "deployments_dir": "deployments",
            "keystore": "unit.json",
        },
        "meters": [{"name": "pv", "rated_power_w": 5000.0}],
        "channels": [{"meter": "pv", "counter": "export", "kind": "produced", "account": PRODUCER}],
    }
    data.update(changes)
    return data


def test_shipped_example_config_is_valid(monkeypatch):
    monkeypatch.setenv("STATE_DIRECTORY", "/var/lib/powerhive-oracle")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/powerhive-oracle.service")
    config = load_config(REPO / "deploy" / "oracle.toml")
    assert config.service.state_dir == Path("/var/lib/powerhive-oracle")
    assert config.chain.keystore == Path("/run/credentials/powerhive-oracle.service/keystore")
    assert [m.driver for m in config.meters] == ["sdm", "sdm", "smartpi"]
    assert [c.kind for c in config.channels] == ["produced", "consumed", "actual"]


def test_unset_environment_variable_is_named(monkeypatch):
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match=r"service.state_dir: '\$\{STATE_DIRECTORY\}/x'"):
        parse_config(base(service={"state_dir": "${STATE_DIRECTORY}/x"}))


def test_relative_paths_follow_the_config_file(tmp_path):
    path = tmp_path / "etc" / "oracle.toml"
    path.parent.mkdir()
    path.write_text(to_toml(base()))
    config = load_config(path)
    assert config.service.state_dir == path.parent / "state"
    assert config.chain.keystore == path.parent / "unit.json"
    # The simulated driver is the default, with its defaults.
    assert config.meters[0].driver == "simulated"
    assert config.meters[0].driver_options.profile == "pv"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"meters": []}, "meters: List should have at least 1 item"),
        (
            {"meters": [{"name": "pv", "rated_power_w": 1.0}] * 2},
            "duplicate meter names: pv",
        ),
        (
            {
                "channels": [
                    {"meter": "pv", "counter": "export", "kind": "produced", "account": PRODUCER}
                ]
                * 2
            },
            "counter pv.export is mapped by more than one channel",
        ),
        (
            {
                "channels": [
                    {"meter": "wind", "counter": "export", "kind": "produced", "account": PRODUCER}
                ]
            },
            "channel wind.export: no meter named 'wind'",
        ),
        (
            {"channels": [{"meter": "pv", "counter": "export", "kind": "actual"}]},
            "kind 'actual' goes with counter 'stored'",
        ),
        (
            {"channels": [{"meter": "pv", "counter": "export", "kind": "produced"}]},
            "kind 'produced' needs an account",
        ),
        (
            {
                "channels": [
                    {"meter": "pv", "counter": "export", "kind": "produced", "account": "0x12"}
                ]
            },
            "not an address: '0x12'",
        ),
        (
            {"meters": [{"name": "pv", "rated_power_w": 1.0, "options": {"profile": "wind"}}]},
            "driver 'simulated' options: profile: Input should be 'pv', 'household' or 'battery'",
        ),
        ({"surprise": {}}, "surprise: Extra inputs are not permitted"),
    ],
)
def test_mistakes_are_one_line(changes, message):
    with pytest.raises(ConfigError) as info:
        parse_config(base(**changes))
    assert message in str(info.value) and "\n" not in str(info.value)
