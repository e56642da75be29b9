"""README's install, run and test commands are the ones CI runs, word for word.

A new user copies README's first ``bash`` block; ``.ci/run`` must run exactly those lines (the
comment after ``#`` aside), so that CI can never pass on a command README does not give.
"""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _readme_commands():
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)
    assert block, "README.md has no ```bash block with the install, run and test commands"
    return [line.split("  #")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_readme_gives_install_run_and_test():
    commands = _readme_commands()
    assert any(c.startswith("pip install") for c in commands)
    assert "pytest" in commands
    assert any(c.startswith("specref ") for c in commands)


def test_ci_runs_readme_commands_verbatim():
    ci_lines = {line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()}
    missing = [c for c in _readme_commands() if c not in ci_lines]
    assert not missing, f".ci/run does not run README's commands word for word: {missing}"
