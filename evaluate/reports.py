"""Reports: the per-class metrics table of ``deepfer evaluate``; the table, Markdown and JSON of
``deepfer benchmark`` and its figures in each model's sidecar (the plots are drawn by
:mod:`deepfer.evaluate.plots`)."""

from __future__ import annotations

import json
from pathlib import Path

from deepfer.edge.labels import LABELS


def metrics_table(metrics: dict, title: str = "") -> str:
    """A readable per-class table with the summary lines under it; a figure a class does not
    have (no faces of it: no recall, F1 or AUC) is ``-``."""
    lines = [title] if title else []
    lines.append(
        f"{'class':<10} {'precision':>9} {'recall':>7} {'f1':>6} {'AUC':>6} {'support':>8}"
    )
    for label, m in metrics["per_class"].items():
        lines.append(
            f"{label:<10} {num(m['precision']):>9} {num(m['recall']):>7} {num(m['f1']):>6} "
            f"{num(m['auc']):>6} {m['support']:>8,}"
        )
    lines.append(
        f"accuracy {metrics['accuracy']:.2%}   macro-F1 {metrics['macro_f1']:.3f}   "
        f"weighted-F1 {metrics['weighted_f1']:.3f}   macro-AUC {num(metrics['macro_auc'])}   "
        f"({metrics['n']:,} faces)"
    )
    note = absent_note(metrics.get("absent_classes"), len(metrics["per_class"]))
    if note:
        lines.append(note)
    return "\n".join(lines)


def num(value: float | None) -> str:
    """A figure to 3 decimals, or ``-`` where there is none (a class with no faces)."""
    return "-" if value is None else f"{value:.3f}"


def absent_note(absent: list[str] | None, classes: int = len(LABELS)) -> str:
    """``-: no faces of X, Y in the data; macro-F1 averages the N classes with faces``, or ""
    when every class has faces."""
    if not absent:
        return ""
    return (
        f"-: no faces of {', '.join(absent)} in the data; macro-F1 averages the "
        f"{classes - len(absent)} classes with faces"
    )


# --------------------------------------------------------------------------- benchmark


def _lat(row: dict, threads: str) -> str:
    lat = row["latency_ms"].get(threads)
    return f"{lat['median']:.2f} / {lat['p90']:.2f}" if lat else "-"


def _columns(report: dict) -> tuple[list[str], list[list[str]]]:
    threads = [str(t) for t in report["settings"]["threads"]]
    head = ["model", "runtime", "size KiB", "accuracy", "macro-F1", "agreement"]
    head += [f"{t} thread{'s' if t != '1' else ''} ms (median / p90)" for t in threads]
    head += ["batch faces/s", "peak MB"]
    rows = []
    for r in report["models"]:
        agree = r["agreement_with_reference"]
        name = r["name"] + (" (ref)" if r["is_reference"] else "")
        tp = r.get("throughput") or {}
        rows.append(
            [
                name,
                r["runtime"],
                f"{r['size_bytes'] / 1024:,.0f}",
                f"{r['accuracy']:.2%}",
                f"{r['macro_f1']:.3f}",
                f"{agree:.2%}" if agree is not None else "-",
                *[_lat(r, t) for t in threads],
                f"{tp['faces_per_second']:,.0f}" if tp else "-",
                f"{r['peak_rss_mb']:,.0f}",
            ]
        )
    return head, rows


def _f1_names(report: dict) -> list[str]:
    """Row names for the per-class table, with the runtime when a model ran on several."""
    counts: dict[str, int] = {}
    for r in report["models"]:
        counts[r["model"]] = counts.get(r["model"], 0) + 1
    return [
        f"{r['name']} ({r['runtime'].split(' ')[0]})" if counts[r["model"]] > 1 else r["name"]
        for r in report["models"]
    ]


def benchmark_table(report: dict) -> str:
    """The plain-text table printed on screen."""
    head, rows = _columns(report)
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths))
    out = [
        f"{report['data']} ({report['split']} split, {report['n']:,} faces); "
        f"agreement: top-1 with {Path(report['reference']).name if report['reference'] else 'no float model'}",
        line,
        "-" * len(line),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    out.append("")
    out.append("per-class F1" + _absent_note(report))
    names = _f1_names(report)
    name_w = max(len(n) for n in [*names, FACES_ROW])
    out.append(" " * name_w + "  " + "  ".join(f"{lab[:8]:>8}" for lab in LABELS))
    counts = report.get("class_counts") or {}
    out.append(
        FACES_ROW.ljust(name_w) + "  " + "  ".join(f"{counts.get(lab, 0):>8,}" for lab in LABELS)
    )
    for r, name in zip(report["models"], names):
        out.append(name.ljust(name_w) + "  " + "  ".join(f"{_f1(r, lab):>8}" for lab in LABELS))
    return "\n".join(out)


FACES_ROW = "faces (support)"


def _f1(row: dict, label: str) -> str:
    """A class's F1, or "-" for a class with no faces in the data (no F1 to speak of)."""
    return num(row["per_class_f1"].get(label))


def _absent_note(report: dict) -> str:
    note = absent_note(report.get("absent_classes"))
    return f" ({note})" if note else ""


def benchmark_markdown(report: dict) -> str:
    head, rows = _columns(report)
    m = report["machine"]
    s = report["settings"]
    ref = Path(report["reference"]).name if report["reference"] else "none"
    lines = [
        f"# DeepFER benchmark: {report['split']} split of {report['data']}",
        "",
        f"{report['n']:,} faces; agreement is top-1 agreement with the float reference `{ref}`. "
        f"Latency: one face per call, median and p90 of {s['runs']} runs after {s['warmup']} "
        f"warm-up runs. Throughput: batches of {s['batch_size']}, all cores. Peak memory: "
        "peak RSS of a fresh process per model.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    counts = report.get("class_counts") or {}
    lines += [
        "",
        f"Per-class F1{_absent_note(report)}:",
        "",
        "| model | " + " | ".join(LABELS) + " |",
        "|---|" + "---:|" * len(LABELS),
        f"| {FACES_ROW} | " + " | ".join(f"{counts.get(lab, 0):,}" for lab in LABELS) + " |",
    ]
    for r, name in zip(report["models"], _f1_names(report)):
        lines.append(f"| {name} | " + " | ".join(_f1(r, lab) for lab in LABELS) + " |")
    lines += [
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['platform']}, Python {m['python']}. "
        f"Measured {report['created']}.",
        "",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------- benchmark files


def update_sidecars(report: dict) -> list[Path]:
    """Store each .tflite row's numbers in its sidecar under ``metrics.benchmark``."""
    from deepfer.edge.model.sidecar import update_metrics

    written = []
    for r in report["models"]:
        if r["kind"] != "tflite":
            continue
        entry = {
            "data": report["data"],
            "split": report["split"],
            "n": report["n"],
            "accuracy": r["accuracy"],
            "macro_f1": r["macro_f1"],
            "per_class_f1": r["per_class_f1"],
            "absent_classes": report["absent_classes"],
            "macro_f1_over": report["macro_f1_over"],
            "agreement_with_float": r["agreement_with_reference"],
            "float_reference": Path(report["reference"]).name if report["reference"] else None,
            "latency_ms": {
                k: {"median": v["median"], "p90": v["p90"]} for k, v in r["latency_ms"].items()
            },
            "throughput_faces_per_second": (r.get("throughput") or {}).get("faces_per_second"),
            "peak_rss_mb": r["peak_rss_mb"],
            "runtime": r["runtime"],
            "machine": report["machine"],
            "measured": report["created"],
        }
        written.append(update_metrics(r["model"], {"benchmark": entry}))
    return written


def write_outputs(report: dict, json_path=None, markdown_path=None, plot_path=None) -> list[Path]:
    written = []
    if json_path:
        p = Path(json_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(report, indent=2) + "\n")
        written.append(p)
    if markdown_path:
        p = Path(markdown_path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(benchmark_markdown(report))
        written.append(p)
    if plot_path:
        from deepfer.evaluate.plots import benchmark_plot

        written.append(benchmark_plot(report, plot_path))
    return written
