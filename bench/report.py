"""The benchmark's table (stdout), JSON and PNG, with the targets beside the figures."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

TARGETS = {
    "throughput": 20_000,      # readings/s end to end
    "ceiling_share": 0.5,      # of the bare subscriber's rate
    "p99_ms_at_5000": 250.0,
    "p99_ms_up_to_1000": 100.0,  # at 10, 100 and 1,000 readings/s
    "backlog_share_1": 0.6,    # of the bare subscriber's messages/s, one reading per message
    "backlog_share_10": 0.8,   # ten readings per message
    "workers_2_over_1": 1.3,   # backlog drain, 1/msg: --workers 2 against --workers 1
    "rss_mib": 80.0,
    "replay": 50_000,          # readings/s
}


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(measure, figure, target, verdict) for every row of the table."""
    out: list[tuple[str, str, str, str]] = []
    tp = {r["kind"]: r for r in results["throughput"]}
    for kind, label in (("ceiling", "bare paho subscriber (ceiling)"), ("sen", "Sen gateway, end to end"),
                        ("naive", "naive: one HTTP write per message")):
        r = tp[kind]
        target, verdict = "", ""
        if kind == "sen":
            target = f">= {TARGETS['throughput']:,}/s"
            verdict = _verdict(r["readings_per_s"] >= TARGETS["throughput"])
        out.append((f"throughput, {label}", f"{r['readings_per_s']:,} readings/s "
                    f"({r['confirmed']:,}/{r['readings']:,} in {r['seconds']} s)", target, verdict))
    share = tp["sen"]["readings_per_s"] / max(1, tp["ceiling"]["readings_per_s"])
    out.append(("Sen / ceiling", f"{share:.0%}", f">= {TARGETS['ceiling_share']:.0%}",
                _verdict(share >= TARGETS["ceiling_share"])))
    out.extend(_backlog_rows(results.get("backlog", [])))
    out.extend(_workers_rows(results.get("backlog_workers", []), results.get("backlog", [])))
    for lat in results["latency"]:
        limit = TARGETS["p99_ms_at_5000"] if lat["rate"] >= 5000 else TARGETS["p99_ms_up_to_1000"]
        target = f"p99 < {limit:.0f} ms"
        verdict = _verdict(lat["p99_ms"] < limit)
        out.append((f"latency at {lat['rate']:,} readings/s", f"p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
                    f"({lat['probes_seen']}/{lat['probes']} probes)", target, verdict))
        out.append((f"gateway at {lat['rate']:,} readings/s", f"RSS {lat['rss_mib']} MiB, CPU {lat['cpu_pct']}%",
                    f"RSS < {TARGETS['rss_mib']:.0f} MiB", _verdict(lat["rss_mib"] < TARGETS["rss_mib"])))
    rp = results["replay"]
    out.append((f"spool replay of {rp['readings']:,} readings", f"{rp['readings_per_s']:,} readings/s "
                f"({rp['seconds']} s)", f">= {TARGETS['replay']:,}/s",
                _verdict(rp["readings_per_s"] >= TARGETS["replay"])))
    out.extend(_serial_rows(results["serial"]))
    out.extend(_firmware_rows(results["firmware"]))
    out.extend(_ota_rows(results.get("ota")))
    if "cellular" in results:
        out.extend(_cellular_rows(results["cellular"]))
    return out


def _rate(runs: list[dict[str, Any]]) -> float:
    """The median messages/s of a backlog row's runs."""
    return float(statistics.median(r["messages_per_s"] for r in runs))


def _each(below: list[dict[str, Any]], above: list[dict[str, Any]], unit: str = "") -> str:
    """The ratio of each run of ``above`` to the run of ``below`` it ran beside."""
    return ", ".join(f"{b['messages_per_s'] / max(1, a['messages_per_s']):.2f}{unit}"
                     for a, b in zip(below, above, strict=False))


def _backlog_rows(backlog: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """Each backlog run; the ratios of the medians (the bare subscriber and Sen ran in turn)."""
    out: list[tuple[str, str, str, str]] = []
    for per in sorted({r["per_envelope"] for r in backlog}):
        by_kind: dict[str, list[dict[str, Any]]] = {}
        for r in backlog:
            if r["per_envelope"] == per:
                by_kind.setdefault(r["kind"], []).append(r)
        ceiling, sen = by_kind["ceiling"], by_kind["sen"]
        parse = by_kind.get("parse")  # informational: the bare subscriber parsing each message's JSON
        lean = by_kind.get("lean")  # informational: the bare subscriber on Sen's MQTT reader
        for runs, label in ((ceiling, "bare subscriber"), (parse, "subscriber parsing JSON"),
                            (lean, "bare subscriber, Sen's reader"), (sen, "Sen")):
            for r in runs or []:
                out.append((f"backlog of {r['messages']:,} msgs, {per}/msg, {label}",
                            f"{r['messages_per_s']:,} msgs/s ({r['confirmed']:,}/{r['readings']:,} readings in "
                            f"{r['seconds']} s, peak RSS {r['peak_rss_mib']} MiB)", "", ""))
        share = _rate(sen) / max(1.0, _rate(ceiling))
        goal = TARGETS[f"backlog_share_{per}"]
        medians = f" (medians of {len(sen)}; rounds {_each(ceiling, sen)})" if len(sen) > 1 else ""
        out.append((f"backlog, {per}/msg: Sen / bare subscriber{medians}", f"{share:.2f}", f">= {goal}",
                    _verdict(share >= goal)))
        if parse:
            out.append((f"backlog, {per}/msg: Sen / subscriber parsing JSON",
                        f"{_rate(sen) / max(1.0, _rate(parse)):.2f}", "", ""))
        if lean:
            out.append((f"backlog, {per}/msg: Sen / bare subscriber on Sen's reader",
                        f"{_rate(sen) / max(1.0, _rate(lean)):.2f}", "", ""))
        peak = max(r["peak_rss_mib"] for r in sen)
        out.append((f"backlog, {per}/msg: Sen peak RSS", f"{peak} MiB",
                    f"RSS < {TARGETS['rss_mib']:.0f} MiB", _verdict(peak < TARGETS["rss_mib"])))
    return out


def _workers_rows(runs: list[dict[str, Any]], backlog: list[dict[str, Any]]) -> list[tuple[str, str, str, str]]:
    """The 1/msg backlog drained by `--workers 1` and `--workers 2`, beside the bare subscriber."""
    if not runs:
        return []
    ceilings = [r for r in backlog if r["kind"] == "ceiling" and r["per_envelope"] == 1]
    ceiling = _rate(ceilings) if ceilings else 0.0
    out: list[tuple[str, str, str, str]] = []
    for r in runs:
        share = f", {r['messages_per_s'] / ceiling:.2f} of the bare subscriber (median)" if ceiling else ""
        out.append((f"backlog of {r['messages']:,} msgs, 1/msg, Sen {' '.join(r['flags'])}",
                    f"{r['messages_per_s']:,} msgs/s ({r['confirmed']:,}/{r['readings']:,} readings in "
                    f"{r['seconds']} s{share}; peak RSS of all its processes {r['peak_rss_mib']} MiB)",
                    f"RSS < {TARGETS['rss_mib']:.0f} MiB per process",
                    f"{_verdict(r['peak_process_rss_mib'] < TARGETS['rss_mib'])} "
                    f"(largest {r['peak_process_rss_mib']} MiB)"))
    one = [r for r in runs if r["flags"][-1] == "1"]
    two = [r for r in runs if r["flags"][-1] == "2"]
    if one and two:
        gain = _rate(two) / max(1.0, _rate(one))
        goal = TARGETS["workers_2_over_1"]
        out.append((f"backlog, 1/msg: --workers 2 / --workers 1 (medians of {len(two)}; pairs {_each(one, two, 'x')})",
                    f"{gain:.2f}x", f">= {goal}x", _verdict(gain >= goal)))
    return out


def _serial_rows(serial: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    paced, unpaced, limit = serial["paced"], serial["unpaced"], serial["line_limit_readings_per_s"]
    share = paced["readings_per_s"] / limit if limit == limit and limit else 0.0
    return [
        ("serial board at 115200 baud", f"{paced['readings_per_s']} readings/s ({paced['bytes_per_reading']} B each, "
         f"{paced['bytes_per_s']:,} B/s)", f"line limit {limit} readings/s", f"{share:.0%} of the line"),
        ("serial board, unpaced pty", f"{unpaced['readings_per_s']} readings/s ({unpaced['bytes_per_s']:,} B/s)",
         "", "firmware + gateway capacity"),
    ]


def _firmware_rows(fw: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    heap = fw["heap"]
    at64 = heap["64K"]
    figure = "MemoryError" if at64["memory_error"] else f"peak {at64['peak_heap_bytes']:,} B"
    others = ", ".join(f"{k}: peak {v['peak_heap_bytes']:,} B" for k, v in heap.items()
                       if k != "64K" and v.get("peak_heap_bytes"))
    target = fw["heap_target"]["peak_below"]
    met = not at64["memory_error"] and (at64["peak_heap_bytes"] or target) < target
    rows = [("firmware heap at -X heapsize=64K", f"{figure}" + (f" ({others})" if others else ""),
             f"peak < {target // 1024} KiB", _verdict(met))]
    for batch, b in fw["bytes_per_reading"].items():
        e = fw["encode_us_per_reading"][batch]
        rows.append((f"firmware, {batch}", f"{b['sen']} B/reading on the wire (json.dumps {b['json_dumps']}); "
                     f"{e['sen_us']} µs/reading (json.dumps {e['json_dumps_us']})", "", ""))
    return rows


def _cellular_rows(cell: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    for batch, v in cell["bytes_per_reading"].items():
        c, w = v["cellular"], v["wifi"]
        rows.append((f"cellular, {batch}: B/reading", f"UART {c.get('uart_up')} up / {c.get('uart_down')} down, "
                     f"air (MQTT) {c.get('air_up')} / {c.get('air_down')}; WiFi (MQTT) {w.get('air_up')} / "
                     f"{w.get('air_down')}", "", ""))
    u, h = cell["uart_115200"], cell["heap"]
    rows.append(("cellular through a 115200-baud UART", f"{u['readings_per_s']} readings/s (UART up "
                 f"{u.get('uart_up_bytes_per_s')} B/s of {u['line_bytes_per_s']:,})", "", ""))
    ok = h["exit"] == 0 and not h["memory_error"]
    runs, finished = h.get("runs", 1), h.get("finished", int(ok))  # results from before the runs were counted
    figure = f"peak {h['peak_heap_bytes']:,} B" if ok else "MemoryError" if h["memory_error"] else f"exit {h['exit']}"
    figure += f", finished {finished} of {runs} runs"
    if h.get("smallest_k"):
        figure += f" (smallest heap found: {h['smallest_k']}K)"
    rows.append((f"cellular firmware heap at -X heapsize={h['heapsize']}", figure, f"runs in {h['heapsize']}",
                 _verdict(finished == runs)))
    return rows


def _ota_rows(r: dict[str, Any] | None) -> list[tuple[str, str, str, str]]:
    """The board's Ed25519 verifier and OTA receiver (bench/ota_bench.py; unix port, .mpy, 64K)."""
    if not r:
        return []
    v, rx = r["verifier"], r["receiver"]
    return [
        ("OTA: Ed25519 verify (firmware, unix port)", f"{v['verify_1023_ms']} ms for 1,023 B "
         f"({v['verify_empty_ms']} ms empty); heap {v['import']:,} B once imported, verifies in a "
         f"{v['smallest_heap_kib']} KiB heap", "", ""),
        ("OTA: receiving a bundle (firmware)", f"{rx['bundle']:,} B in 1 KiB chunks: the app's receiver "
         f"{rx['live']:,} B of heap, boot steps {rx['check_ms']} ms (signature) + {rx['unpack_ms']} ms (files); "
         f"whole transfer in a {rx['smallest_heap_kib']} KiB heap", "", ""),
    ]


def table(results: dict[str, Any]) -> str:
    body = rows(results)
    widths = [max(len(r[i]) for r in [("measure", "figure", "target", ""), *body]) for i in range(4)]
    lines = [f"Sen benchmarks — {results['when']} — {results['machine']['cpus']} CPUs, {results['machine']['platform']}"
             + (" — QUICK (smoke run, not a measurement)" if results["quick"] else "")]
    for r in [("measure", "figure", "target", ""), *body]:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip())
    return "\n".join(lines)


def _plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    tp = results["throughput"]
    left.bar([r["kind"] for r in tp], [r["readings_per_s"] for r in tp], color=["#888", "#2a7", "#c55"])
    left.axhline(TARGETS["throughput"], linestyle="--", color="k", linewidth=1, label="target")
    left.set_ylabel("readings/s, end to end")
    left.set_title("Throughput (QoS1, 1,000 devices)")
    left.legend()
    lat = results["latency"]
    labels = [f"{r['rate']:,}/s" for r in lat]
    right.bar([x - 0.2 for x in range(len(lat))], [r["p50_ms"] for r in lat], width=0.4, label="p50")
    right.bar([x + 0.2 for x in range(len(lat))], [r["p99_ms"] for r in lat], width=0.4, label="p99")
    right.set_xticks(range(len(lat)), labels)
    right.set_ylabel("ms, publish → queryable")
    right.set_title("Latency under load")
    right.legend()
    fig.suptitle(f"Sen — {results['when']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(results: dict[str, Any], out: Path) -> None:
    results["table"] = [list(r) for r in rows(results)]
    (out / "latest.json").write_text(json.dumps(results, indent=1) + "\n")
    _plot(results, out / "latest.png")
    print(table(results))
    print(f"\nwrote {out / 'latest.json'} and {out / 'latest.png'}")
