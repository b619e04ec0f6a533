"""Repository basics (issue 15, item 7): the licence, `make help`, the README's first screen.

Offline and fast (one `make help`, which builds nothing).
"""

import hashlib
import re
import subprocess
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# SHA-256 of the FSF's agpl-3.0.txt (https://www.gnu.org/licenses/agpl-3.0.txt), 34,523 bytes.
AGPL_3_SHA256 = "8486a10c4393cee1c25392769ddd3b2d6c242d6ec7928e1414efff7dfb2f07ef"
# What a reader sees before scrolling: the README's first lines.
FIRST_SCREEN = 40


def test_license_is_the_standard_text_of_the_declared_license():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["license"]["text"]
    assert declared == "AGPL-3.0-only"
    text = (ROOT / "LICENSE").read_bytes()
    assert text.startswith(b"                    GNU AFFERO GENERAL PUBLIC LICENSE\n")
    assert hashlib.sha256(text).hexdigest() == AGPL_3_SHA256


def _phony_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    names = set()
    for line in re.findall(r"^\.PHONY:(.*)$", makefile, flags=re.M):
        names.update(line.split())
    # Every rule whose name is a plain word is a command, so it must be phony too.
    rules = set(re.findall(r"^([a-z][a-z-]*):(?!=)", makefile, flags=re.M))
    assert rules <= names, f"rules not in .PHONY: {sorted(rules - names)}"
    return names


def test_make_help_lists_every_target():
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    listed = set(re.findall(r"^  make (\S+) +\S", out, flags=re.M))
    assert listed == _phony_targets()
    for name in ("test", "demo", "deploy-local", "stop-local"):
        assert name in listed


def test_readme_first_screen_points_each_kind_of_user_somewhere_real():
    readme = (ROOT / "README.md").read_text()
    screen = "\n".join(readme.splitlines()[:FIRST_SCREEN])
    for who in ("contract developer", "operator", "Pi installer", "member"):
        assert f"**{who}" in screen, who
    anchors = {
        re.sub(r"[^a-z0-9 -]", "", heading.lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", readme, flags=re.M)
    }
    links = re.findall(r"\]\(([^)]+)\)", screen)
    assert len(links) >= 8
    for link in links:
        path, _, anchor = link.partition("#")
        if path:
            assert (ROOT / path).exists(), link
        else:
            assert anchor in anchors, link
