"""Every README (and DESIGN.md) says only what is true of the tree: each path it names exists,
each `sen` command it names is a command, and nothing points outside the repository."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from gateway.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted(p for p in ROOT.rglob("*.md")
              if not {".venv", ".git", "node_modules", ".sen", ".pytest_cache"} & set(p.relative_to(ROOT).parts))
_TOKEN = re.compile(r"`([^`\s]+)`|\]\(([^)\s]+)\)")
_FILE = re.compile(r"\.(py|md|toml|json|yml|yaml|sh|service|conf|js|css|html|txt|cfg|ini|png|svg|bin|sqlite3)$")
# Files that exist on a board's flash, or that a run writes (results, state), not in the tree.
_MADE_AT_RUN_TIME = re.compile(r"(^|/)(config\.json|sen_\w+\.(txt|json|bin)|faults\.json|latest\.(json|png)|"
                               r"sen-profile[\w-]*\.(svg|txt)|[\w.]+\.sqlite3|gateway\.toml|mosquitto\.conf|"
                               r"bench/results/?)$")
_SEN = re.compile(r"(?<![\w/.-])sen ([a-z][a-z-]*)(?: ([a-z][a-z-]*))?")
_OUTSIDE = re.compile(r"(?<![\w.])\.\./shared|(?<![\w./-])/(work|home|farm)/")


def _paths(doc: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for match in _TOKEN.finditer(line):
            token = (match.group(1) or match.group(2)).split("#")[0].rstrip(".,:;")
            if (not token or token.startswith(("http", "/", "~", "$", "sen/v1", ".sen", "-", "...", "mqtt"))
                    or any(c in token for c in "*{}<>|=:") or not ("/" in token or _FILE.search(token))
                    or re.search(r"[A-Z]{3,}", token)):  # a placeholder: DIR, FILE, SPOOL_DIR/...
                continue
            found.append((number, token))
    return found


def _exists(doc: Path, token: str) -> bool:
    if _MADE_AT_RUN_TIME.search(token):
        return True
    if (doc.parent / token).exists() or (ROOT / token).exists():
        return True
    # A module list names files by their name within the folder the README describes.
    name = token.rstrip("/")
    return any(p for p in doc.parent.rglob(Path(name).name) if str(p).endswith(name))


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_path_a_document_names_exists(doc: Path) -> None:
    missing = [f"{doc.relative_to(ROOT)}:{n}: {t}" for n, t in _paths(doc) if not _exists(doc, t)]
    assert not missing, "\n".join(missing)


def _commands() -> dict[str, set[str]]:
    parser = build_parser()[0]
    found: dict[str, set[str]] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                subs = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
                found[name] = set(subs[0].choices) if subs else set()
    return found


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_every_sen_command_a_document_names_exists(doc: Path) -> None:
    commands = _commands()
    wrong = []
    for number, line in enumerate(doc.read_text().splitlines(), 1):
        for match in _SEN.finditer(line):
            command, sub = match.groups()
            if command not in commands:
                if "`" in line or line.startswith(("    ", "sen ")):  # code, not prose ("Sen is")
                    wrong.append(f"{doc.relative_to(ROOT)}:{number}: sen {command}")
            elif commands[command] and sub is not None and sub not in commands[command] and sub.islower():
                wrong.append(f"{doc.relative_to(ROOT)}:{number}: sen {command} {sub}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("doc", DOCS, ids=[str(d.relative_to(ROOT)) for d in DOCS])
def test_no_document_points_outside_the_repository(doc: Path) -> None:
    bad = [f"{doc.relative_to(ROOT)}:{n}: {line.strip()}"
           for n, line in enumerate(doc.read_text().splitlines(), 1) if _OUTSIDE.search(line)]
    assert not bad, "\n".join(bad)


def test_no_code_comment_points_outside_the_repository() -> None:
    sources = [p for folder in ("gateway", "ingest", "hardware", "firmware", "bench", "tests", "scripts", "deploy")
               for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".sh", ".toml", ".service", ".json", ".yml")
               and "__pycache__" not in p.parts]
    bad = [f"{p.relative_to(ROOT)}:{n}" for p in sources
           for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if _OUTSIDE.search(line) and p.name != "test_docs.py" and p.name != "test_package_docs.py"]
    assert not bad, bad
