#!/usr/bin/env python3
"""Join the JSON lines of bench_layers and torch_layers.py into one markdown
table: a row per layer and pass, GFLOP/s per implementation, and cudl's
speed relative to PyTorch measured in the same run.

    python3 benchmarks/cpu/compare.py cudl.jsonl torch.jsonl > table.md
"""
import json
import sys

ORDER = ["cudl", "PyTorch", "im2col+dnnl_sgemm", "oneDNN (NCHW)",
         "oneDNN (best layout)", "oneDNN dnnl_sgemm", "OpenBLAS cblas_sgemm"]


def main():
    rows = {}
    impls = []
    for path in sys.argv[1:]:
        with open(path) as f:
            for line in f:
                r = json.loads(line)
                impl = "PyTorch" if r["impl"].startswith("PyTorch") else r["impl"]
                if impl not in impls:
                    impls.append(impl)
                rows.setdefault((r["layer"], r["pass"]), {})[impl] = r["gflops"]
    impls.sort(key=lambda i: ORDER.index(i) if i in ORDER else len(ORDER))
    print("| layer | pass | " + " | ".join(impls) + " | cudl / PyTorch |")
    print("|" + "---|" * (len(impls) + 3))
    for (layer, pass_), d in rows.items():
        ratio = ""
        if "cudl" in d and "PyTorch" in d and d["PyTorch"] > 0:
            ratio = f"{d['cudl'] / d['PyTorch']:.2f}"
        cells = [f"{d[i]:.0f}" if i in d else "" for i in impls]
        print(f"| {layer} | {pass_} | " + " | ".join(cells) + f" | {ratio} |")


if __name__ == "__main__":
    main()
