#!/usr/bin/env python3
"""Plots the figures of `just bench` (benches/throughput.rs): rows/s per scale, loader vs
reference, for the full load and the CDC phase.

Usage: python3 benches/plot.py RESULTS.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rates(series):
    """Median rows/s and the (low, high) spread over the rounds, in thousands."""
    rows = series["rows"]
    loader = sorted(rows / s for s in series["loader_secs"])
    reference = sorted(rows / s for s in series["reference_secs"])
    return (
        series["loader_rows_per_sec"] / 1e3,
        (loader[0] / 1e3, loader[-1] / 1e3),
        series["reference_rows_per_sec"] / 1e3,
        (reference[0] / 1e3, reference[-1] / 1e3),
    )


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        results = json.load(f)
    scales = results["scales"]
    labels = [str(s["scale"]) for s in scales]
    phases = [(key, title) for key, title in
              [("full", "Full load (LOAD files into empty tables)"),
               ("cdc", "CDC (change files against loaded tables)")]
              if all(s.get(key) for s in scales)]
    if not phases:
        sys.exit("plot.py: no phase was measured at every scale")
    fig, axes = plt.subplots(1, len(phases), figsize=(6 * len(phases), 4.8), squeeze=False)
    axes = axes[0]
    width = 0.38
    for ax, (phase, title) in zip(axes, phases):
        xs = list(range(len(scales)))
        lo, lo_err, ref, ref_err = [], [[], []], [], [[], []]
        for s in scales:
            l, (l_min, l_max), r, (r_min, r_max) = rates(s[phase])
            lo.append(l)
            lo_err[0].append(l - l_min)
            lo_err[1].append(l_max - l)
            ref.append(r)
            ref_err[0].append(r - r_min)
            ref_err[1].append(r_max - r)
        ax.bar([x - width / 2 for x in xs], lo, width, yerr=lo_err, capsize=3,
               label="loader (release binary, end to end)", color="#1f77b4")
        reference_label = ("psql \\copy (FORMAT csv)" if phase == "full"
                           else "staged SQL upsert (psql)")
        ax.bar([x + width / 2 for x in xs], ref, width, yerr=ref_err, capsize=3,
               label=reference_label, color="#ff7f0e")
        highs = [max(l + e, r + f) for l, e, r, f in zip(lo, lo_err[1], ref, ref_err[1])]
        top = max(highs) if highs else 1
        for x, l, r, high in zip(xs, lo, ref, highs):
            ax.annotate(f"x{l / r:.2f}", (x, high + top * 0.04), ha="center",
                        fontsize=10, fontweight="bold")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_xlabel("scale (1 = 160k orders, 1.5M executions)")
        ax.set_ylabel("thousand rows/s (median, min-max bars)")
        ax.set_ylim(0, top * 1.4)
        ax.set_title(title, fontsize=11)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle("paper-engine-orders: loader vs reference, rows/s (x = loader / reference; "
                 "target x1.5)", fontsize=12)
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=110)


if __name__ == "__main__":
    main()
