"""Each package stays true to its README and small: every module listed, every test path cited
exists, nothing points outside the repository, files of ~300 lines (firmware included)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hardware", "ingest", "bench", "gateway", "firmware")
MAX_LINES = 300
_CITED = re.compile(r"\btests/[\w./-]+\.(?:py|md)\b")
# Outside the repository: the team's shared folder beside the clone, a machine's home or work
# directories (a relative path inside the repo, such as firmware's ../hardware/simdev, is fine).
_OUTSIDE = re.compile(r"(?<![\w.])\.\./shared|(?<![\w./-])/(work|home|farm)/")


def _sources(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("package", PACKAGES)
def test_the_readme_lists_every_module(package: str) -> None:
    readme = (ROOT / package / "README.md").read_text()
    missing = [str(p.relative_to(ROOT / package)) for p in _sources(package)
               if p.name != "__init__.py" or p.parent != ROOT / package
               if f"`{p.relative_to(ROOT / package)}`" not in readme and f"`{p.name}`" not in readme]
    assert not missing, f"{package}/README.md does not mention {missing}"


@pytest.mark.parametrize("package", PACKAGES)
def test_every_test_path_the_package_cites_exists(package: str) -> None:
    cited = set()
    for path in [ROOT / package / "README.md", *_sources(package)]:
        cited.update(_CITED.findall(path.read_text()))
    assert sorted(c for c in cited if not (ROOT / c).exists()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_nothing_points_outside_the_repository(package: str) -> None:
    bad = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
           for path in [*(ROOT / package).rglob("*.md"), *_sources(package)]
           for n, line in enumerate(path.read_text().splitlines(), 1) if _OUTSIDE.search(line)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_files_stay_small(package: str) -> None:
    long = {str(p.relative_to(ROOT)): n for p in _sources(package)
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"over {MAX_LINES} lines: {long}"


def test_hardware_ships_its_type_marker() -> None:
    assert (ROOT / "hardware" / "py.typed").is_file()
    assert '"py.typed"' in next(line for line in (ROOT / "pyproject.toml").read_text().splitlines()
                                if line.startswith("hardware = "))
