"""Argument types and the help formatter shared by every `sen` command module."""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from collections.abc import Callable

from hardware.procs import STOP_SIGNALS

Handler = Callable[[argparse.Namespace], int]


class Formatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps the examples' line breaks and shows every default."""


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def positive_int(text: str) -> int:
    value = _whole(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _whole(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def workers(text: str) -> int | str:
    """``--workers``: a number of processes, or "auto"."""
    return "auto" if text.strip().lower() == "auto" else positive_int(text)


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text}")
    return value


def heapsize(text: str) -> str:
    digits = text[:-1] if text[-1:].upper() in ("K", "M") else text
    if not digits.isdigit() or int(digits) == 0:
        raise argparse.ArgumentTypeError(f"heap size must look like 64K, 2M or 65536, got {text!r}")
    return text


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *,
                summary: str, description: str, example: str) -> argparse.ArgumentParser:
    """A sub-command whose --help says what it does and shows an example."""
    return commands.add_parser(name, help=summary, description=description, epilog=f"example:\n  {example}",
                               formatter_class=Formatter)


def stop_on_signals(log: logging.Logger | None = None) -> threading.Event:
    """An event set by Ctrl-C, SIGTERM or SIGHUP (the terminal closed): a long-running command
    waits on it and then stops cleanly, with everything it started (whichever of its threads
    the signal reached: :mod:`gateway.service.stopping`)."""
    from gateway.service.stopping import stop_event

    def _said(signum: int) -> None:
        if log is not None:
            log.info("%s received: flushing and stopping", signal.Signals(signum).name)

    return stop_event(STOP_SIGNALS, on_signal=_said)
