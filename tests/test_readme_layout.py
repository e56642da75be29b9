"""README's Layout table matches the tree: every path it names exists, and every module and folder
of the packages and the repository root is named."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _layout_paths():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Layout"):]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {path.rstrip("/") for row in rows for path in re.findall(r"`([^`]+)`", row.split("|")[1])}


def test_every_path_in_the_layout_exists():
    missing = sorted(p for p in _layout_paths() if not (ROOT / p).exists())
    assert not missing, f"README's Layout names paths that do not exist: {missing}"


def test_every_module_and_folder_is_in_the_layout():
    named = _layout_paths()
    expected = {f"specref/{p.name}" for p in (ROOT / "specref").iterdir()
                if (p.suffix == ".py" and not p.name.startswith("__")) or (p / "__init__.py").is_file()}
    expected |= {"specref_gpu", "validation", "tests"}
    missing = sorted(expected - named)
    assert not missing, f"README's Layout does not name: {missing}"
