"""The PNG chart of a bench run (matplotlib, from the optional ``bench`` extra)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bench.latency import LatencyResults
from bench.throughput import ThroughputResults


def draw(
    path: Path,
    latency: LatencyResults,
    throughput: ThroughputResults,
    systems: Sequence[str],
    subtitle: str,
) -> None:
    import matplotlib

    ran = {name for (_, _, name) in latency.spreads}
    systems = [name for name in systems if name in throughput.cpu_ms and name in ran]
    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5))
    cases = sorted({(w, c) for (w, c, _) in latency.spreads if w != "code-review-seq"})
    width = 0.8 / len(systems)
    for index, name in enumerate(systems):
        ratios = []
        errors: list[list[float]] = [[], []]
        for workload, concurrency in cases:
            spread = latency.spreads[(workload, concurrency, name)]
            path_s = latency.paths[workload].seconds
            ratios.append(spread.median / path_s)
            errors[0].append((spread.median - spread.low) / path_s)
            errors[1].append((spread.high - spread.median) / path_s)
        xs = [i + index * width for i in range(len(cases))]
        left.bar(xs, ratios, width, yerr=errors, capsize=2, label=name)
    left.axhline(1.0, color="grey", linewidth=0.8, linestyle="--")
    left.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(cases))])
    left.set_xticklabels([f"{w}\nconcurrency {c}" for w, c in cases], fontsize=8)
    left.set_ylabel("run latency ÷ model critical path (lower is better)")
    left.set_title(f"Overhead (latency scale x{latency.scale})")
    left.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.12))

    levels = sorted(throughput.totals)
    for index, name in enumerate(systems):
        values = [throughput.spreads[(name, level)].median for level in levels]
        xs = [i + index * width for i in range(len(levels))]
        right.bar(xs, values, width, label=name)
    right.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(levels))])
    right.set_xticklabels([f"concurrency {level}" for level in levels])
    right.set_yscale("log")
    right.set_ylabel("completed runs per second (log scale, higher is better)")
    right.set_title(f"Throughput, zero-latency model ({throughput.workload})")
    right.legend(fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.08))

    figure.suptitle(subtitle, fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
