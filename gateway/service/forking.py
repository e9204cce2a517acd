"""How the supervisor of ``--workers N`` starts its workers.

- The first N are forks of the gateway's own process (:func:`fork_first`), made by ``sen gateway
  run`` once its code is imported and before it opens a file or a socket, starts a thread or sets
  a signal handler: each has the code imported already and nothing of the supervisor's but its end
  of its own pipe, and starts on the other core while the supervisor opens its spool and registry.
  Before, they were forks of a fork server, a second interpreter that imported the code again
  while the supervisor did: they subscribed ~0.3 s after the start, not ~0.2 s, and the server and
  its resource tracker cost ~0.15 s of CPU the backlog waited for.
- A worker started again (it died), or a first one that could not be forked, is a fork of a fork
  server (``multiprocessing``'s ``forkserver``), started for the first of them: by then the
  supervisor runs threads and holds files and sockets, which a fork of it would copy in whatever
  state they were in. The server is a fresh process that imports the workers' code once; each fork
  of it runs in milliseconds.
- Without a fork server (not a POSIX system, or it cannot start: no writable temporary folder for
  its socket), spawn: a new interpreter a worker, ~0.2 s of CPU each.
"""

from __future__ import annotations

import logging
import multiprocessing
from collections.abc import Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import ForkContext, ForkServerContext, SpawnContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.service.options import GatewayOptions

_LOGGER = logging.getLogger(__name__)
_PRELOAD = ["gateway.service.worker", "gateway.service.main"]  # what a worker runs
_failed: list[OSError] = []  # the server could not start: spawn

Started = tuple[BaseProcess, Connection]  # a worker forked by fork_first, and the supervisor's end of its pipe


def _has_server() -> bool:
    return not _failed and "forkserver" in multiprocessing.get_all_start_methods()


def later_context() -> ForkServerContext | SpawnContext:
    """The context the supervisor starts a worker with after :func:`fork_first`: the fork server's,
    started now if it is not running; spawn when there is none or it could not start."""
    if _has_server():
        from multiprocessing import forkserver

        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        try:
            forkserver.ensure_running()
            return context
        except OSError as err:
            _failed.append(err)
            _LOGGER.warning("cannot start the workers' fork server (%s): each worker is spawned instead", err)
    return multiprocessing.get_context("spawn")


def fork_first(options: GatewayOptions) -> list[Started]:
    """Workers 0..N-1 forked from this process, now: call it while this process runs one thread and
    has opened nothing but its standard streams (no signal handler of its own either: a signal
    before the worker sets its own does what it would to a process just started). Fewer, or none,
    when a fork fails or there is no fork here; the supervisor starts those that are missing."""
    if "fork" not in multiprocessing.get_all_start_methods():
        return []
    import gateway.service.worker  # noqa: F401  (imported once, here: each fork has it)

    context = multiprocessing.get_context("fork")
    started: list[Started] = []
    for index in range(options.worker_count):
        try:
            started.append(start(context, options, index, others=[conn for _, conn in started]))
        except OSError as err:  # no process to be had: the supervisor tries again
            _LOGGER.warning("cannot fork worker %s (%s); the supervisor starts it", index, err)
            break
    return started


def start(context: ForkContext | ForkServerContext | SpawnContext, options: GatewayOptions, index: int, *,
          others: Sequence[Connection] = ()) -> Started:
    """Worker INDEX, made by CONTEXT; ``others``: the supervisor's ends of the pipes of workers
    forked before (a fork of this process closes them)."""
    ours, theirs = context.Pipe(duplex=True)
    forked = context.get_start_method() == "fork"
    # daemon: should the supervisor end without stopping them, they are sent SIGTERM.
    process = context.Process(target=_run, name=f"sen-worker-{index}", daemon=True, args=(
        options, index, theirs, logging.getLogger().getEffectiveLevel(), [*others, ours] if forked else []))
    try:
        process.start()
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()  # the worker's end: when the worker dies, ours reads EOF
    return process, ours


def _run(options: GatewayOptions, index: int, conn: Connection, level: int, inherited: list[Connection]) -> None:
    """In the new process: close the supervisor's ends of the pipes a fork has (a worker holding
    one would keep that worker from seeing the supervisor die), then be the worker."""
    from gateway.service.worker import run_worker

    for other in inherited:
        other.close()
    run_worker(options, index, conn, level)
