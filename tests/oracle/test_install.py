"""The Pi install: `oracle` and `powerhive` need nothing outside requirements-oracle.lock.

A Raspberry Pi gets `pip install -c requirements-oracle.lock .` (docs/oracle-pi.md): the
packages and the pinned runtime dependencies of `pyproject.toml`, no contract toolchain (Ape,
vyper, titanoboa, ...). These tests run in both venvs of `make test` (3.11 with Ape, 3.13
without) and fail if either package imports what the Pi does not have.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib

from tests.oracle.rig import REPO

PACKAGES = ("oracle", "powerhive")
ORACLE_LOCK = REPO / "requirements-oracle.lock"
DEV_LOCK = REPO / "requirements.lock"


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"{path.name}: not an exact pin: {line}"
            pins[_canonical(name)] = version
    return pins


def _declared(requirements: list[str]) -> dict[str, str]:
    """name -> version of `pyproject.toml` requirements like `pymodbus[serial]==3.16.1`."""
    out = {}
    for req in requirements:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]*\])?==([^;\s]+)", req)
        if m:
            out[_canonical(m.group(1))] = m.group(3)
    return out


def _imported_top_levels() -> dict[str, list[str]]:
    """Top-level module -> the files importing it, every import in the two packages (lazy
    ones inside functions too), without the standard library and the packages themselves."""
    found: dict[str, list[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    top = name.partition(".")[0]
                    if top in sys.stdlib_module_names or top in PACKAGES:
                        continue
                    found.setdefault(top, []).append(str(path.relative_to(REPO)))
    return found


def test_every_import_of_the_packages_is_in_the_oracle_lock():
    """Each third-party module `oracle/` or `powerhive/` imports comes from a distribution
    that requirements-oracle.lock pins: an `import ape` (or matplotlib, coincurve, ...) would
    work in the developers' venv and fail on a Pi."""
    locked = set(_pins(ORACLE_LOCK))
    providers = importlib.metadata.packages_distributions()
    outside = {
        module: (files, providers.get(module))
        for module, files in _imported_top_levels().items()
        if not {_canonical(d) for d in providers.get(module, [])} & locked
    }
    assert not outside, f"imported, but not in {ORACLE_LOCK.name}: {outside}"


def test_the_pinned_dependencies_are_the_locked_versions():
    """pyproject's runtime pins (and the `test` extra's) are exactly the oracle lock's, and
    the runtime pins are the developers' lock's too (one version of web3 everywhere)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    runtime = _declared(project["dependencies"])
    test_tools = _declared(project["optional-dependencies"]["test"])
    assert len(runtime) == len(project["dependencies"]), "every dependency pinned exactly"
    oracle_lock, dev_lock = _pins(ORACLE_LOCK), _pins(DEV_LOCK)
    for name, version in {**runtime, **test_tools}.items():
        assert oracle_lock.get(name) == version, (name, version, oracle_lock.get(name))
        assert dev_lock.get(name) == version, (name, version, dev_lock.get(name))
    toolchain = {"eth-ape", "vyper", "ape-vyper", "ape-foundry", "titanoboa", "snekmate"}
    assert not toolchain & set(oracle_lock), "the contract toolchain is not for a Pi"


# Imports every module of both packages with whatever is installed but not in the oracle
# lock made unimportable (in the 3.13 venv nothing is: it holds exactly the lock), then
# builds the CLI's help.
_IMPORT_ALL = """
import importlib, importlib.abc, importlib.metadata, pkgutil, re, sys
canon = lambda n: re.sub(r"[-_.]+", "-", n).lower()
locked = {canon(l.partition("==")[0]) for l in open(sys.argv[1]).read().split()
          if "==" in l}
blocked = {m for m, dists in importlib.metadata.packages_distributions().items()
           if not {canon(d) for d in dists} & (locked | {"pip", "powerhive"})}
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ImportError(f"{name} is not in the oracle's lock")
sys.meta_path.insert(0, Blocker())
before = set(sys.modules)  # what site imported at start-up (setuptools' _distutils_hack)
for pkg in ("oracle", "powerhive"):
    root = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(root.__path__, pkg + "."):
        if not info.name.endswith(".__main__"):  # that one runs the CLI
            importlib.import_module(info.name)
from click.testing import CliRunner
from oracle.cli import main
result = CliRunner().invoke(main, ["--help"])
assert result.exit_code == 0, result.output
loaded = sorted(m for m in set(sys.modules) - before if m.partition(".")[0] in blocked)
print(len(blocked), "blocked;", ",".join(loaded) or "-")
"""


def test_every_module_imports_with_only_the_oracle_lock_installed():
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_ALL, str(ORACLE_LOCK)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("blocked; -"), proc.stdout
