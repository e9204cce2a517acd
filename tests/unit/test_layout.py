"""The house's rooms keep to their roles: the service imports none of the tools, and the command
line loads a subcommand's code only when that subcommand runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What `sen gateway run` on a Pi must never load: the simulator, the fault proxy, the
# pseudo-terminals, the private test servers, the operator tools, the demo, the web page.
TOOLS = ("hardware.sim", "hardware.vboard", "hardware.ptylink", "hardware.faultproxy", "hardware.faults",
         "hardware.flash", "hardware.provision", "gateway.devstack", "gateway.ops", "gateway.demo",
         "gateway.web")


def _loaded_after(code: str) -> list[str]:
    script = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            timeout=60, check=True)
    return list(json.loads(result.stdout.splitlines()[-1]))


def _tools(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith(TOOLS)]


def test_the_service_imports_no_tool() -> None:  # nor the command line
    modules = _loaded_after("import gateway.service.main, gateway.service.config")
    assert _tools(modules) == []
    assert not [m for m in modules if m.startswith("gateway.cli")]


def test_sen_gateway_run_loads_the_service_and_no_tool() -> None:
    # What `sen gateway run` imports: the parser of every command, then its own handler's modules.
    modules = _loaded_after("from gateway.cli import build_parser\nbuild_parser()\n"
                            "from gateway.service import config, main")
    assert "gateway.service.main" in modules
    assert _tools(modules) == []


def test_a_tool_command_loads_its_room_only_when_it_runs() -> None:
    modules = _loaded_after("from gateway.cli import main\n"
                            "main(['boards'])")
    assert "hardware.boards" in modules and "hardware.sim" not in modules
    assert "gateway.service.main" not in modules


def test_test_modules_have_unique_names() -> None:
    # The test folders are not packages: two modules of one name break collection of both.
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []
