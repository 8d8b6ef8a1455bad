#!/usr/bin/env python3
"""Draws docs/scaling.png from bench/scale/results/scale.csv: time and peak RSS
against the number of files, clmnt against tar (and zstd -t + sha256sum for verify).
Needs matplotlib (pip install matplotlib, or a venv)."""
import csv
import sys

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

source = sys.argv[1] if len(sys.argv) > 1 else "bench/scale/results/scale.csv"
target = sys.argv[2] if len(sys.argv) > 2 else "docs/scaling.png"
rows = list(csv.DictReader(open(source)))
steps = ["backup", "restore", "verify"]
figure, axes = plt.subplots(2, 3, figsize=(13, 7), sharex=True)
for column, step in enumerate(steps):
    tools = sorted({r["tool"] for r in rows if r["step"] == step}, key=lambda t: (t != "clmnt", t))
    for tool, style in zip(tools, ["o-", "s--", "^:"]):
        picked = sorted((r for r in rows if r["step"] == step and r["tool"] == tool), key=lambda r: int(r["files"]))
        label = tool
        files = [int(r["files"]) / 1000 for r in picked]
        axes[0][column].plot(files, [float(r["seconds"]) for r in picked], style, label=label)
        axes[1][column].plot(files, [int(r["rss_kib"]) / 1024 for r in picked], style, label=label)
    axes[0][column].set_title(f"fleet {step}")
    axes[0][column].set_ylabel("seconds")
    axes[1][column].set_ylabel("peak RSS (MiB)")
    axes[1][column].set_xlabel("files in the fleet (thousands)")
    axes[1][column].axhline(100, color="grey", linewidth=0.8, linestyle=":")
    for row in (0, 1):
        axes[row][column].legend()
        axes[row][column].grid(alpha=0.3)
        axes[row][column].set_ylim(bottom=0)
figure.suptitle("clmnt vs the standard tools as the number of files grows (2 cores, zstd -3; bench/scale/run.sh)")
figure.tight_layout()
figure.savefig(target, dpi=90)
print(f"wrote {target}")
