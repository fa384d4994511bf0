#!/usr/bin/env python3
"""Join the JSON files of `cudl bench infer --json` and
`benchmarks/torch_ref.py infer --json` into one markdown table.

    python3 benchmarks/infer_table.py FILE_OR_DIR... [--out report.md]

Reads every "cudl-bench-infer/1" object (a file may hold one, or a list of
them as torch_ref.py writes for several batches; a directory is read for
*.json, and files of other schemas are skipped). Results are joined by
device name, model, input shape, batch, precision and layout; a row per such
point:

  cudl inference    the inference compile's median latency, ms (min-max)
  cudl graphs       the same replayed as a CUDA graph (CUDA only), median ms
  cudl train-eval   the training compile in evaluation mode, median ms
  PyTorch           each variant's median ms (eval, inference_mode, jit,
                    graphs); "n/a" where it could not run
  fastest ÷ cudl    the fastest PyTorch variant's median / the faster cudl
                    inference's (direct or graphs) median: above 1.00 cudl
                    is faster
  peak MiB          cudl inference's peak memory (the context's)

When two files hold the same variant of a point, the later date wins. Exit
status 1 when no infer object is found or a file is malformed.
"""
import argparse
import glob
import json
import os
import sys

SCHEMA = "cudl-bench-infer/1"
PYTORCH = ["pytorch-eval", "pytorch-inference-mode", "pytorch-jit", "pytorch-graphs"]
SHORT = {"pytorch-eval": "eval", "pytorch-inference-mode": "inference_mode",
         "pytorch-jit": "jit", "pytorch-graphs": "graphs"}


class Malformed(Exception):
    pass


def objects(path):
    """The infer objects of one file (none for another schema)."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Malformed(f"{path}: {e}")
    docs = data if isinstance(data, list) else [data]
    found = []
    for doc in docs:
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            continue
        for key in ("model", "batch", "input_shape", "results", "device_name"):
            if key not in doc:
                raise Malformed(f"{path}: no \"{key}\"")
        for r in doc["results"]:
            if "impl" not in r or ("unavailable" not in r and "latency_ms_median" not in r):
                raise Malformed(f"{path}: a result without impl or latency_ms_median")
        found.append(doc)
    return found


def point(doc):
    # Files written before precision and layout were recorded were fp32 NCHW.
    return (doc["device_name"], doc["model"], "x".join(str(d) for d in doc["input_shape"]),
            doc["batch"], doc.get("precision", "fp32"), doc.get("layout", "nchw"))


def join(docs):
    points = {}
    for doc in sorted(docs, key=lambda d: d.get("date", "")):
        cell = points.setdefault(point(doc), {})
        for r in doc["results"]:
            cell[r["impl"]] = r  # a later date replaces an earlier one
    return points


def ms(r):
    if r is None:
        return "–"
    if "unavailable" in r:
        return "n/a"
    return f"{r['latency_ms_median']:.3g}"


def table(points):
    head = (["device", "model", "input", "batch", "precision", "layout",
             "cudl inference ms (min-max)", "cudl graphs ms", "cudl train-eval ms"]
            + [f"PyTorch {SHORT[i]} ms" for i in PYTORCH]
            + ["fastest PyTorch ÷ cudl", "cudl peak MiB"])
    rows = []
    # device, model, input, precision, layout, then batch in order
    for key in sorted(points, key=lambda k: (k[0], k[1], k[2], k[4], k[5], k[3])):
        cell = points[key]
        infer = cell.get("cudl-inference")
        ours = [cell[i] for i in ("cudl-inference", "cudl-inference-graphs") if i in cell]
        fastest = min(ours, key=lambda r: r["latency_ms_median"]) if ours else None
        timed = [cell[i] for i in PYTORCH if i in cell and "latency_ms_median" in cell[i]]
        best = min(timed, key=lambda r: r["latency_ms_median"]) if timed else None
        ratio = "–"
        if best is not None and fastest is not None:
            which = "graphs" if fastest["impl"] == "cudl-inference-graphs" else "direct"
            ratio = (f"{best['latency_ms_median'] / fastest['latency_ms_median']:.2f} "
                     f"({SHORT[best['impl']]} ÷ {which})")
        first = "–" if infer is None else (
            f"{infer['latency_ms_median']:.3g} ({infer['latency_ms_min']:.3g}-"
            f"{infer['latency_ms_max']:.3g})")
        peak = "–" if infer is None else f"{infer['peak_memory_bytes'] / 2**20:.2f}"
        rows.append([str(v) for v in key]
                    + [first, ms(cell.get("cudl-inference-graphs")),
                       ms(cell.get("cudl-training-eval"))]
                    + [ms(cell.get(i)) for i in PYTORCH] + [ratio, peak])
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 2)[2])
    ap.add_argument("paths", nargs="+", metavar="FILE_OR_DIR")
    ap.add_argument("--out", help="write the table here instead of standard output")
    args = ap.parse_args(argv)
    files = []
    for p in args.paths:
        files += sorted(glob.glob(os.path.join(p, "*.json"))) if os.path.isdir(p) else [p]
    try:
        docs = [d for f in files for d in objects(f)]
    except Malformed as e:
        print(f"infer_table.py: malformed file {e}", file=sys.stderr)
        return 1
    if not docs:
        print(f"infer_table.py: no {SCHEMA} objects in {' '.join(args.paths)}",
              file=sys.stderr)
        return 1
    text = "\n".join(table(join(docs))) + "\n"
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
