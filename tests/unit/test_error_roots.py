"""One exception root per package: every error hardware/ raises is a HardwareError, every
error ingest/ raises an IngestError (so the CLI catches one class per package)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path
from types import ModuleType

import pytest

import hardware
import ingest
from hardware.errors import HardwareError
from ingest.errors import IngestError

ROOT = Path(__file__).resolve().parents[2]
# built-in exceptions a package module must not raise itself: it raises one of its own
_BUILTIN = {"RuntimeError", "ValueError", "TypeError", "KeyError", "Exception", "OSError", "IOError"}


def _modules(package: ModuleType) -> list[str]:
    return [info.name for info in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}.")]


@pytest.mark.parametrize(("package", "root"), [(hardware, HardwareError), (ingest, IngestError)])
def test_every_exception_class_is_under_the_package_root(package: ModuleType, root: type) -> None:
    found = set()
    for name in _modules(package):
        for _, cls in inspect.getmembers(importlib.import_module(name), inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__.startswith(f"{package.__name__}."):
                found.add(cls)
                assert issubclass(cls, root), f"{cls.__module__}.{cls.__qualname__} is not a {root.__name__}"
    assert len(found) > 3


@pytest.mark.parametrize("folder", ["hardware", "ingest"])
def test_no_builtin_exception_is_raised_directly(folder: str) -> None:
    offenders = []
    for path in sorted((ROOT / folder).glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) \
                    and isinstance(node.exc.func, ast.Name) and node.exc.func.id in _BUILTIN:
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} raises {node.exc.func.id}")
    assert not offenders, "\n".join(offenders)


def test_the_old_names_still_import_from_their_modules() -> None:
    from hardware.boards import BoardError
    from hardware.faults import FaultPlanError
    from hardware.flash import FlashError
    from hardware.provision import ProvisionError
    from hardware.sim import SimError

    for cls, builtin in ((BoardError, ValueError), (FaultPlanError, ValueError), (FlashError, RuntimeError),
                         (ProvisionError, ValueError), (SimError, RuntimeError)):
        assert issubclass(cls, HardwareError) and issubclass(cls, builtin)
    assert hardware.HardwareError is HardwareError
