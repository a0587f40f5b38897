#!/usr/bin/env python3
"""Draws make bench's pictures from target/bench/results.json: deliveries per second over time
for sql-backlog, and the latency histograms (publish answered -> webhook received)."""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "target/bench"
results = json.load(open(f"{out}/results.json"))

backlog = results.get("sql-backlog", {})
if any("timeline_per_half_second" in v for v in backlog.values()):
    fig, ax = plt.subplots(figsize=(9, 4))
    for topology, v in backlog.items():
        line = v.get("timeline_per_half_second")
        if line:
            ax.plot([i * 0.5 for i in range(len(line))], [x * 2 for x in line], label=f"herald {topology}")
    ceiling = results.get("ceiling", {}).get("-", {}).get("deliveries_per_s")
    if ceiling:
        ax.axhline(ceiling, color="grey", linestyle="--", label="pg_ceiling.sh")
    ax.set_xlabel("seconds since the first publish")
    ax.set_ylabel("deliveries/s")
    ax.set_title("sql-backlog: 50,000 events by herald.publish, 500 per transaction, 2 connections")
    ax.legend()
    fig.tight_layout()
    fig.savefig(f"{out}/sql-backlog.png", dpi=110)
    print(f"{out}/sql-backlog.png")

series = []
for phase, key in [("latency", "200_per_s"), ("latency", "500_per_s"), ("noisy-neighbour", None)]:
    for topology, v in results.get(phase, {}).items():
        v = v.get(key) if key else v
        if isinstance(v, dict) and v.get("samples_ms"):
            series.append((f"{phase} {key or '500_per_s'} ({topology})", v["samples_ms"]))
if series:
    fig, ax = plt.subplots(figsize=(9, 4))
    top = max(max(s) for _, s in series)
    bins = [i * 0.5 for i in range(int(min(top, 100) / 0.5) + 2)]
    for label, samples in series:
        ax.hist(samples, bins=bins, histtype="step", label=label)
    ax.set_yscale("log")
    ax.set_xlabel("publish answered -> webhook received (ms)")
    ax.set_ylabel("events")
    ax.set_title("latency, open loop")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out}/latency.png", dpi=110)
    print(f"{out}/latency.png")
