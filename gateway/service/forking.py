"""How the supervisor of ``--workers N`` starts its workers: forks of a fork server.

The server (``multiprocessing``'s ``forkserver``) is a fresh process, with none of the
supervisor's threads, locks or sockets, that imports the workers' code once; each worker, and
each restart of one, is a fork of it, running in milliseconds. Spawned instead, every worker
was a new interpreter importing it all again: ~0.2 s of CPU per start, after the supervisor's
own start, while the broker held the backlog. ``sen gateway run`` starts the server before its
own imports (:func:`start_early`), so the two import side by side on two cores. Without a fork
server (not a POSIX system, or it cannot start: no writable temporary folder for its socket),
spawn.
"""

from __future__ import annotations

import logging
import multiprocessing
from multiprocessing.context import ForkServerContext, SpawnContext

_LOGGER = logging.getLogger(__name__)
_PRELOAD = ["gateway.service.worker", "gateway.service.main"]  # what a worker runs
_failed: list[OSError] = []  # the server could not start: spawn


def _has_server() -> bool:
    return not _failed and "forkserver" in multiprocessing.get_all_start_methods()


def worker_context() -> ForkServerContext | SpawnContext:
    """The context the supervisor makes its workers and their pipes with."""
    if not _has_server():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def start_early() -> None:
    """Start the fork server now: it imports the workers' code while the caller goes on."""
    if _has_server():
        from multiprocessing import forkserver

        worker_context()
        try:
            forkserver.ensure_running()
        except OSError as err:
            _failed.append(err)
            _LOGGER.warning("cannot start the workers' fork server (%s): each worker is spawned instead", err)
