"""The README's commands are the ones CI runs, and they install into a project virtualenv."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Tests", 1)[1]
    command = _bash_blocks(section)[0].strip()
    assert command == "./scripts/install.sh --dev && .venv/bin/python -m pytest"
    ci = [line.strip() for line in (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    install, tests = command.split(" && ")
    assert install in ci
    assert tests in ci
    assert ci.index(install) < ci.index(tests)


def test_readme_serve_command_uses_the_virtualenv() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    first = _bash_blocks(readme.split("## Install and serve", 1)[1])[0].strip()
    assert first.startswith("./scripts/install.sh && .venv/bin/maskserve serve ")


def test_install_script_never_installs_into_the_python_on_path() -> None:
    script = (REPO / "scripts" / "install.sh").read_text(encoding="utf-8")
    assert "-m venv" in script
    pip_calls = [line for line in script.splitlines() if "pip install" in line]
    assert pip_calls
    assert all(line.strip().startswith('"$py" -m pip install') for line in pip_calls), pip_calls
