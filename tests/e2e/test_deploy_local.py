"""`make deploy-local` and `make stop-local` as an operator runs them (issue 15, item 4).

A persistent Anvil (state in the test's LOCAL_DIR, on a free port), the deploy, the unit's
registration and a ready oracle.toml; `oracle check` passes on it; after `make stop-local`
a second `make deploy-local` resumes the same chain and reuses the deployment.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from oracle.cli import main
from oracle.config import load_config
from tests.oracle.rig import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _make(target, local, port, deployments):
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["make", "-s", target, f"LOCAL_DIR={local}", f"LOCAL_PORT={port}",
         f"LOCAL_DEPLOYMENTS={deployments}"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def test_deploy_local_then_stop_and_resume(tmp_path):
    local, deployments, port = tmp_path / "local", tmp_path / "deployments", free_port()
    pid_file = local / "anvil.pid"
    try:
        first = _make("deploy-local", local, port, deployments)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "local chain started" in first.stdout
        assert pid_file.exists()
        # Anvil writes its state every 5 s (and on exit): a deploy quicker than that has not
        # been written yet (seen on an idle machine).
        wait_for(lambda: (local / "anvil-state.json").exists(), 60, "Anvil's first state dump")
        written = deployments / "31337.json"
        assert written.stat().st_mode & 0o777 == 0o644
        council = json.loads(written.read_text())["contracts"]["Council"]["address"]
        config_path = local / "oracle" / "oracle.toml"
        config = load_config(config_path)
        assert config.chain.rpc_url == f"http://127.0.0.1:{port}"
        assert {m.driver for m in config.meters} == {"simulated"}
        assert (local / "oracle" / "passphrase").stat().st_mode & 0o777 == 0o600
        # The next commands, with the file it wrote.
        assert f"oracle check --config {os.path.relpath(config_path, ROOT)}" in first.stdout
        assert "make stop-local" in first.stdout

        check = CliRunner().invoke(main, ["check", "--config", str(config_path)])
        assert check.exit_code == 0, check.output
        assert "unit 0x976EA74026E726554dB657fA54763abd0C3a0aa9 active" in check.output

        stopped = _make("stop-local", local, port, deployments)
        assert stopped.returncode == 0 and "local chain stopped" in stopped.stdout
        assert not pid_file.exists()

        again = _make("deploy-local", local, port, deployments)
        assert again.returncode == 0, again.stdout + again.stderr
        out = again.stdout + again.stderr
        assert "Reusing the deployment" in out and "is registered" in out
        assert json.loads(written.read_text())["contracts"]["Council"]["address"] == council
        assert not list(deployments.glob("*.bak"))  # nothing replaced
    finally:
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGTERM)
