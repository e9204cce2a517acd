#!/usr/bin/env bash
# The README's commands. Each does its own set-up first (idempotent).
#   ./run.sh demo [--duration S]   private broker + InfluxDB + gateway + 3 virtual boards, live table
#   ./run.sh test [pytest args]    the whole test suite
#   ./run.sh bench [--quick]       the benchmarks (not part of the tests): table, JSON and PNG
#   ./run.sh setup                 only the set-up
set -euo pipefail
cd "$(dirname "$0")"
cmd="${1:-}"
shift || true
case "$cmd" in
    setup) exec scripts/setup.sh ;;
    demo)  scripts/setup.sh && exec .venv/bin/sen demo "$@" ;;
    test)
        scripts/setup.sh
        # The hardware-in-the-loop suite runs against simulated boards unless told otherwise
        # (SEN_HIL=off, or pytest --board-port /dev/ttyUSB0 for a real board).
        # One pytest worker per core (SEN_TEST_JOBS=N to choose, 0 for none): most tests wait on
        # servers and boards, not the CPU. A test file stays in one worker, in its own order.
        # A real board (--board-port) is one device: its tests run in one process.
        jobs="${SEN_TEST_JOBS:-auto}"
        case " $* " in *" --board-port"*) jobs=0 ;; esac
        SEN_HIL="${SEN_HIL:-sim}" exec .venv/bin/python -m pytest -n "$jobs" --dist loadfile "$@" ;;
    bench) scripts/setup.sh && exec .venv/bin/python -m bench.run "$@" ;;
    *) echo "usage: ./run.sh demo [--duration S] | test [pytest args] | bench [--quick] | setup" >&2; exit 2 ;;
esac
