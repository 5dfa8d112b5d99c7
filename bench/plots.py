"""The migration benchmark's figures: downtime.png (client-seen downtime per strategy and link,
with the floor) and phases.png (each strategy's phases stacked)."""

from bench.matrix import LINKS, STRATEGIES
from bench.report import PHASE_ORDER, median


def stacked_phases(ax, groups, phases, labels, title, colors, width):
    """One bar per group of runs (a strategy): the medians of its phases stacked in `phases`
    order (bench and experiment plots)."""
    bottoms = [0.0] * len(groups)
    for j, phase in enumerate(phases):
        heights = [median(r.get("phase_" + phase) for r in g) or 0 for g in groups]
        ax.bar(range(len(groups)), heights, width, bottom=bottoms, label=phase, color=colors[j % 10])
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=False)]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(labels)
    ax.set_ylabel("seconds (median)")
    ax.set_title(title, fontsize=9)


def plot(rows, table, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    services = sorted({t["service"] for t in table})
    links = [link for link in LINKS if any(t["link"] == link for t in table)]
    strategies = [s for s in STRATEGIES if any(t["strategy"] == s for t in table)]
    fig, axes = plt.subplots(1, len(services), figsize=(5.5 * len(services), 4.2), squeeze=False)
    width = 0.8 / max(1, len(strategies))
    for ax, service in zip(axes[0], services, strict=False):
        for i, strategy in enumerate(strategies):
            values, floors = [], []
            for link in links:
                cell = next((t for t in table if (t["service"], t["link"], t["strategy"]) == (service, link, strategy)),
                            None)
                values.append((cell or {}).get("client_downtime_s") or 0)
                floors.append((cell or {}).get("floor_s"))
            xs = [x + (i - (len(strategies) - 1) / 2) * width for x in range(len(links))]
            ax.bar(xs, values, width, label=strategy)
            for x, value in zip(xs, values, strict=False):
                ax.annotate("%.1f" % value, (x, value), ha="center", va="bottom", fontsize=7)
        for x, link in enumerate(links):
            cell = next((t for t in table if (t["service"], t["link"], t["strategy"]) == (service, link, "delta")),
                        None)
            if cell and cell.get("floor_s"):
                ax.hlines(cell["floor_s"], x - 0.4, x + 0.4, colors="black", linestyles="dashed",
                          label="floor (CRIU + freeze bytes / rate)" if x == 0 else None)
        ax.set_xticks(range(len(links)))
        ax.set_xticklabels([link.replace("+", "\n+") + ("\n(delay not emulated)" if "+" in link else "")
                            for link in links], fontsize=8)
        ax.set_ylabel("client-seen downtime, s (median)")
        ax.set_title(service)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "downtime.png", dpi=110)
    plt.close(fig)

    cells = sorted({(r["service"], r["link"]) for r in rows}, key=lambda c: (c[0], list(LINKS).index(c[1])))
    fig, axes = plt.subplots(1, len(cells), figsize=(5 * len(cells), 4.5), squeeze=False)
    colors = plt.get_cmap("tab10").colors
    for ax, (service, link) in zip(axes[0], cells, strict=False):
        groups = [[r for r in rows if (r["service"], r["link"], r["strategy"]) == (service, link, s)
                   and r["outcome"] == "migrated"] for s in strategies]
        stacked_phases(ax, groups, PHASE_ORDER, strategies, "%s, %s" % (service, link), colors, width=0.6)
        ax.scatter(range(len(strategies)), [median(r.get("total_s") for r in g) or 0 for g in groups], marker="_",
                   s=400, color="black", label="total (incl. Ansible)")
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=110)
    plt.close(fig)
