"""The README's two set-up commands: each stands alone, and CI runs the test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_two_commands_each_making_its_own_environment():
    commands = _setup_commands()
    assert len(commands) == 2, commands
    for command in commands:
        assert "\n" not in command, command
        # a fresh terminal on a fresh machine: no activated environment to rely on
        assert command.startswith("python3 -m venv .venv && . .venv/bin/activate && "), command
    assert "zoo train" in commands[0] and "pytest" in commands[1]


def test_ci_runs_the_test_command_verbatim():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert _setup_commands()[1] in ci
