"""The experiment's arithmetic and output: rows of runs -> summary tables, prediction errors,
plots. Pure functions except the writers (unit tested in tests/unit/test_estimate_experiment.py)."""

import csv
import statistics

PHASES = ("pre_checkpoint", "pre_rsync", "prepare", "checkpoint", "xdelta_source", "final_rsync", "xdelta_dest",
          "restore")
FROZEN = ("checkpoint", "xdelta_source", "final_rsync", "xdelta_dest", "restore")
CSV_FIELDS = (("experiment", "service", "state_mb", "link", "link_rate_bps", "strategy", "repeat", "outcome",
               "state_kept", "total_s", "downtime_s", "pred_total_s", "pred_downtime_s", "err_total", "err_downtime",
               "model_total_s", "model_downtime_s", "model_err_total", "model_err_downtime",
               "ref_total_s", "ref_downtime_s", "ref_err_total", "ref_err_downtime", "bytes_warmup", "bytes_freeze",
               "pred_bytes_freeze", "checkpoint_size", "est_checkpoint_bytes", "est_dirty_Bps", "est_link_bps",
               "est_task_overhead_s", "est_task_gap_s", "estimate_s", "migrate_s", "concurrent_playbooks",
               "load_estimate", "load_migrate")
              + tuple("phase_" + p for p in PHASES) + tuple("pred_phase_" + p for p in PHASES)
              + ("estimate", "report", "cause"))
ACCEPT_ERROR = 0.25


def relative_error(predicted, measured):
    if predicted is None or not measured:
        return None
    return abs(predicted - measured) / measured


def stats(values):
    """(n, median, min, max) of the values that are not None; Nones when there are none."""
    values = [v for v in values if v is not None]
    if not values:
        return 0, None, None, None
    return len(values), statistics.median(values), min(values), max(values)


def row_from(meta, estimate, report):
    """One result row from the run's settings, its estimate and its migration report."""
    strategy = meta["strategy"]
    prediction = (estimate.get("predictions") or {}).get(strategy) or {}
    model = (estimate.get("predictions_model") or {}).get(strategy) or prediction
    ref = estimate.get("reference") or {}
    m = estimate.get("measurements") or {}
    phases = report.get("phases") or {}
    row = dict(meta)
    row.update({
        "outcome": report.get("outcome") or meta.get("outcome") or "no report",
        "total_s": report.get("total_s"), "downtime_s": report.get("downtime_s"),
        "pred_total_s": prediction.get("total_s"), "pred_downtime_s": prediction.get("downtime_s"),
        "model_total_s": model.get("total_s"), "model_downtime_s": model.get("downtime_s"),
        "bytes_warmup": report.get("bytes_warmup"), "bytes_freeze": report.get("bytes_freeze"),
        "pred_bytes_freeze": prediction.get("bytes_freeze"), "checkpoint_size": report.get("checkpoint_size"),
        "est_checkpoint_bytes": m.get("checkpoint_bytes"), "est_dirty_Bps": m.get("dirty_Bps"),
        "est_link_bps": m.get("link_bps"), "est_task_overhead_s": m.get("task_overhead_s"),
        "est_task_gap_s": m.get("task_gap_s"), "cause": (report.get("cause") or meta.get("cause") or "")[:300],
    })
    # The reference prototype's model describes the delta strategy only.
    if strategy == "delta":
        row["ref_total_s"], row["ref_downtime_s"] = ref.get("total_s"), ref.get("downtime_s")
    if not row.get("link_rate_bps"):
        row["link_rate_bps"] = m.get("link_bps")
    for phase in PHASES:
        row["phase_" + phase] = phases.get(phase)
        row["pred_phase_" + phase] = (prediction.get("phases") or {}).get(phase)
    migrated = row["outcome"] == "migrated"
    row["err_total"] = relative_error(row["pred_total_s"], row["total_s"]) if migrated else None
    row["err_downtime"] = relative_error(row["pred_downtime_s"], row["downtime_s"]) if migrated else None
    row["model_err_total"] = relative_error(row["model_total_s"], row["total_s"]) if migrated else None
    row["model_err_downtime"] = relative_error(row["model_downtime_s"], row["downtime_s"]) if migrated else None
    row["ref_err_total"] = relative_error(row.get("ref_total_s"), row["total_s"]) if migrated else None
    row["ref_err_downtime"] = relative_error(row.get("ref_downtime_s"), row["downtime_s"]) if migrated else None
    return row


def errors(rows):
    """Median absolute relative error of the predictions over the migrated runs (ours and the
    reference model's), with the number of runs each is taken over."""
    ok = [r for r in rows if r.get("outcome") == "migrated"]
    out = {}
    for key in ("err_total", "err_downtime", "model_err_total", "model_err_downtime", "ref_err_total",
                "ref_err_downtime"):
        values = [r[key] for r in ok if r.get(key) is not None]
        out[key] = (statistics.median(values) if values else None, len(values))
    return out


def cells(rows):
    """Runs grouped by (service, link, strategy), in first-seen order."""
    grouped = {}
    for row in rows:
        grouped.setdefault((row["service"], row["link"], row["strategy"]), []).append(row)
    return grouped


def fmt(value, scale=1.0, digits=2):
    return "-" if value is None else "%.*f" % (digits, value / scale)


def stat_text(values, scale=1.0, digits=2):
    n, med, low, high = stats(values)
    if not n:
        return "-"
    if n == 1:
        return fmt(med, scale, digits)
    return "%s (%s-%s)" % (fmt(med, scale, digits), fmt(low, scale, digits), fmt(high, scale, digits))


def phase_table(rows):
    """Markdown lines: per cell, median (min-max) of each phase, total and downtime, migrated runs only."""
    head = ["service", "link", "strategy", "ok/runs"] + list(PHASES) + ["downtime s", "total s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (service, link, strategy), group in cells(rows).items():
        ok = [r for r in group if r.get("outcome") == "migrated"]
        lines.append("| " + " | ".join([service, link, strategy, "%d/%d" % (len(ok), len(group))] + [
            stat_text([r.get("phase_" + p) for r in ok]) for p in PHASES] + [
            stat_text([r.get("downtime_s") for r in ok]), stat_text([r.get("total_s") for r in ok], digits=1)]) + " |")
    return lines


def prediction_table(rows):
    """Markdown lines: per cell, measured vs predicted total and downtime (medians) and the errors."""
    head = ["service", "link", "strategy", "total s", "predicted", "error", "downtime s", "predicted", "error",
            "freeze MB", "predicted", "reference model downtime s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (service, link, strategy), group in cells(rows).items():
        ok = [r for r in group if r.get("outcome") == "migrated"]

        def med(key, group=ok):
            return stats([r.get(key) for r in group])[1]
        lines.append("| " + " | ".join([
            service, link, strategy, fmt(med("total_s"), digits=1), fmt(med("pred_total_s"), digits=1),
            fmt(med("err_total"), 0.01, 0) + " %" if med("err_total") is not None else "-",
            fmt(med("downtime_s")), fmt(med("pred_downtime_s")),
            fmt(med("err_downtime"), 0.01, 0) + " %" if med("err_downtime") is not None else "-",
            fmt(med("bytes_freeze"), 1e6), fmt(med("pred_bytes_freeze"), 1e6), fmt(med("ref_downtime_s"))]) + " |")
    return lines


def acceptance_lines(errs, limit=ACCEPT_ERROR):
    lines = []
    for key, label in (("err_total", "total time"), ("err_downtime", "downtime")):
        value, n = errs[key]
        verdict = "NOT RUN" if value is None else ("PASS" if value <= limit else "FAIL")
        lines.append("%s: median absolute error of the predicted %s over %d migrated runs: %s (limit %d %%)" % (
            verdict, label, n, "-" if value is None else "%.1f %%" % (100 * value), 100 * limit))
    for key, label in (("model_err_total", "the model alone (before the correction by earlier migrations), total "
                                           "time"),
                       ("model_err_downtime", "the model alone, downtime"),
                       ("ref_err_total", "the reference prototype's model (delta runs), total time"),
                       ("ref_err_downtime", "the reference prototype's model (delta runs), downtime")):
        value, n = errs[key]
        lines.append("median absolute error of %s over %d runs: %s" % (
            label, n, "-" if value is None else "%.1f %%" % (100 * value)))
    return lines


def write_csv(rows, path):
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("%.4f" % v if isinstance(v, float) else v) for k, v in row.items()})


def read_csv(path):
    """The rows of a results.csv, numbers as floats."""
    rows = []
    with open(path, newline="") as handle:
        for raw in csv.DictReader(handle):
            row = {}
            for key, value in raw.items():
                try:
                    row[key] = float(value) if value not in ("", None) else None
                except ValueError:
                    row[key] = value
            rows.append(row)
    return rows


def plot(rows, out):
    """phases.png (phases stacked per strategy, predicted total and downtime marked),
    downtime_vs_bandwidth.png, bytes.png and predicted_vs_measured.png in `out`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.plots import stacked_phases

    ok = [r for r in rows if r.get("outcome") == "migrated"]
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    panels = list(dict.fromkeys((r["service"], r["link"]) for r in rows))
    colors = plt.get_cmap("tab10").colors

    def med(group, key):
        return stats([r.get(key) for r in group])[1]

    fig, axes = plt.subplots(1, len(panels), figsize=(4.8 * len(panels), 4.4), squeeze=False)
    for ax, (service, link) in zip(axes[0], panels, strict=False):
        groups = [[r for r in ok if (r["service"], r["link"], r["strategy"]) == (service, link, s)]
                  for s in strategies]
        stacked_phases(ax, groups, PHASES, strategies, "%s, %s" % (service, link), colors, width=0.55)
        for key, marker, label in (("total_s", "_", "total (measured)"), ("pred_total_s", "x", "total (predicted)"),
                                   ("downtime_s", "o", "downtime (measured)"),
                                   ("pred_downtime_s", "+", "downtime (predicted)")):
            ax.scatter(range(len(strategies)), [med(g, key) or 0 for g in groups], marker=marker, s=160,
                       color="black", label=label, facecolors="none" if marker == "o" else None)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "phases.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for i, (service, strategy) in enumerate(dict.fromkeys((r["service"], r["strategy"]) for r in ok)):
        group = sorted((r for r in ok if (r["service"], r["strategy"]) == (service, strategy)),
                       key=lambda r: r.get("link_rate_bps") or 0)
        xs = [(r.get("link_rate_bps") or 0) / 1e6 for r in group]
        ax.scatter(xs, [r.get("downtime_s") for r in group], color=colors[i % 10], label="%s %s measured" % (
            service, strategy))
        ax.plot(xs, [r.get("pred_downtime_s") for r in group], color=colors[i % 10], linestyle="--", marker="x",
                label="predicted")
    ax.set_xscale("log")
    ax.set_xlabel("link rate, Mbit/s (shaped, or measured by the estimate when unshaped)")
    ax.set_ylabel("downtime, s")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "downtime_vs_bandwidth.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(1.2 + 1.3 * max(1, len(panels) * len(strategies)), 4.2))
    labels, warm, freeze = [], [], []
    for service, link in panels:
        for strategy in strategies:
            group = [r for r in ok if (r["service"], r["link"], r["strategy"]) == (service, link, strategy)]
            labels.append("%s\n%s\n%s" % (service, link, strategy))
            warm.append((med(group, "bytes_warmup") or 0) / 1e6)
            freeze.append((med(group, "bytes_freeze") or 0) / 1e6)
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], warm, 0.4, label="warm-up")
    ax.bar([x + 0.2 for x in xs], freeze, 0.4, label="freeze")
    ax.set_yscale("symlog", linthresh=1)
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("MB sent (median)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "bytes.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for ax, (measured, predicted, title) in zip(axes, (("total_s", "pred_total_s", "total time"),
                                                       ("downtime_s", "pred_downtime_s", "downtime")), strict=True):
        for i, strategy in enumerate(strategies):
            group = [r for r in ok if r["strategy"] == strategy and r.get(predicted) is not None]
            ax.scatter([r[measured] for r in group], [r[predicted] for r in group], color=colors[i % 10],
                       label=strategy)
        top = max([r.get(measured) or 0 for r in ok] + [r.get(predicted) or 0 for r in ok] + [1]) * 1.1
        ax.plot([0, top], [0, top], color="black", linewidth=0.8)
        ax.fill_between([0, top], [0, 0.75 * top], [0, 1.25 * top], color="grey", alpha=0.2, label="within 25 %")
        ax.set_xlim(0, top)
        ax.set_ylim(0, top)
        ax.set_xlabel("measured %s, s" % title)
        ax.set_ylabel("predicted, s")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "predicted_vs_measured.png", dpi=110)
    plt.close(fig)
