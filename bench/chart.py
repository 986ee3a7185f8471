#!/usr/bin/env python3
"""Draws bench/results.png from a results.json of bench/bench.py.

Usage: chart.py RESULTS_JSON OUT_PNG
"""
import json
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"line-adapter": "#1f77b4", "node": "#d62728", "node-cluster": "#ff9896", "bare-hyper": "#7f7f7f"}
LABELS = {"line-adapter": "line-adapter (durable, fsync)", "node": "Express + @line/bot-sdk (1 process, keeps nothing)",
          "node-cluster": "Express + @line/bot-sdk (2-worker cluster, keeps nothing)",
          "bare-hyper": "bare hyper, signature check only (the ceiling)"}


def nines(p: float) -> float:
    return -math.log10(1 - min(p, 99.999) / 100)


def main() -> None:
    r = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    fig, axes = plt.subplots(2, 2, figsize=(15, 10.5))
    (lat, thr), (sub, outb) = axes

    # Ingest latency distribution (time to the 200, wrk).
    for key, run in r["ingest"].items():
        target, per_body = key.split("/")
        pts = [(float(p), v / 1000) for p, v in run["percentiles_us"]]
        lat.plot([nines(p) for p, _ in pts], [v for _, v in pts], color=COLORS[target],
                 linestyle="-" if per_body == "1" else "--", marker="o" if per_body == "1" else "s",
                 markersize=3, label=f"{target}, {per_body} event{'s' if per_body != '1' else ''}/body")
    ticks = [50, 90, 99, 99.9, 99.99]
    lat.set_xticks([nines(p) for p in ticks], [f"p{p:g}" for p in ticks])
    lat.set_yscale("log")
    lat.set_ylabel("time to the 200 (ms, log)")
    lat.set_title(f"Webhook ingest: time to the 200\n({r['settings']['connections']} connections, wrk, unique signed bodies)")
    lat.grid(True, which="both", alpha=0.3)
    lat.legend(fontsize=8)

    # Throughput per configuration.
    targets = [t for t in COLORS if f"{t}/1" in r["ingest"]]
    width = 0.8 / len(targets)
    for i, target in enumerate(targets):
        xs = [j + (i - (len(targets) - 1) / 2) * width for j in range(2)]
        runs = [r["ingest"][f"{target}/{pb}"] for pb in (1, 10)]
        bars = thr.bar(xs, [x["events_per_s"] for x in runs], width, color=COLORS[target], label=LABELS[target])
        for bar, x in zip(bars, runs):
            thr.annotate(f"{x['events_per_s']:,.0f} ev/s\n{x['requests_per_s']:,.0f} req/s",
                         (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    thr.set_xticks(range(2), ["1 event per body", "10 events per body"])
    thr.set_ylabel("events/s")
    ratio = r["ratios"]
    thr.set_title("Webhook ingest throughput\nline-adapter / Node (1 process): "
                  f"{ratio['1']['node']:.2f}× (1 event/body), {ratio['10']['node']:.2f}× (10 events/body)")
    thr.legend(fontsize=8, loc="upper left")
    thr.margins(y=0.2)
    thr.grid(True, axis="y", alpha=0.3)

    # webhook -> Subscribe latency.
    f = r["fanout"]
    names = ["p50", "p99", "p99.9"]
    vals = [f["p50_ms"], f["p99_ms"], f["p999_ms"]]
    bars = sub.bar(names, vals, color="#1f77b4")
    for bar, v in zip(bars, vals):
        sub.annotate(f"{v:.2f} ms", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=9)
    sub.axhline(5, color="#2ca02c", linestyle=":", label="target: p99 < 5 ms")
    sub.set_ylabel("ms")
    sub.set_title(f"webhook → Subscribe at {f['rate']:,} req/s\n(1 subscriber; benches/webhook_ingest.rs)")
    sub.legend(fontsize=8)
    sub.margins(y=0.2)
    sub.grid(True, axis="y", alpha=0.3)

    # Outbound.
    rows = r["outbound"]["rows"]
    labels, values, notes, colors = [], [], [], []
    h = r.get("outbound_h2load")
    if h:
        labels.append("h2load → release binary\nstand-in answers 200")
        values.append(h["sends_per_s"])
        notes.append(f"{h['sends_per_s']:,.0f}/s\nmean {h['latency_ms']['mean']:.1f} ms, max {h['latency_ms']['max']:.1f} ms")
        colors.append("#8c564b")
    for x in rows:
        labels.append(f"cargo bench\nstand-in {x['failure_pct']} % 503")
        values.append(x["messages_per_s"])
        notes.append(f"{x['messages_per_s']:,}/s\np50 {x['p50_ms']:.1f} ms, p99 {x['p99_ms']:.1f} ms")
        colors.append("#9467bd")
    bars = outb.bar(labels, values, color=colors)
    for bar, note in zip(bars, notes):
        outb.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
    outb.set_ylabel("messages delivered/s")
    outb.set_title("Outbound pushes: gRPC → durable outbox → local LINE stand-in\n(64 concurrent calls, each waits for DELIVERED)")
    outb.margins(y=0.25)
    outb.grid(True, axis="y", alpha=0.3)

    m = r["machine"]
    v = r["versions"]
    fig.suptitle(
        f"line-adapter {v['commit']} — {r['started'][:10]} — {m['nproc']} × {m['cpu_model']} — "
        f"idle RSS {r['rss_idle_kib'] / 1024:.1f} MiB, loaded max {r['rss_loaded_max_kib'] / 1024:.1f} MiB, "
        f"start-up (best) {r['startup_fresh']['best']['serving_ms']:.0f} ms to SERVING",
        fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
