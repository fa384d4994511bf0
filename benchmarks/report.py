#!/usr/bin/env python3
"""Join the JSON files of `cudl bench ops|train --json` and
`benchmarks/torch_ref.py ops|train --json` into a markdown report and plots.

    python3 benchmarks/report.py DIR [--out DIR] [--title TEXT] [--no-plots]

Reads every DIR/*.json whose "schema" is "cudl-bench-ops/1" or
"cudl-bench-train/1" (docs/benchmarks.md); other JSON files are skipped with a
note. Writes OUT/report.md and, with matplotlib, OUT/train_throughput.png,
OUT/bandwidth.png and OUT/ops_ratio.png (OUT defaults to DIR).
"""
import argparse
import glob
import json
import math
import os
import sys

OPS_SCHEMA = "cudl-bench-ops/1"
TRAIN_SCHEMA = "cudl-bench-train/1"
DASH = "–"  # what a missing peer or figure shows

HELP_EPILOG = """\
report.md holds:
  Runs        every input file: tool, device, date, version, threads, tf32
              (torch_ref.py's read-back: "conv on, matmul off"), cuDNN, and
              each ops run's ceilings (copy GB/s, GEMM GFLOP/s); then, per
              GPU, the cuDNN each tool ran on (cudl: loaded, and the headers
              it was built with).
  Targets     the benchmark issue's targets checked against the data present:
              met / missed with the figures and the margin, or "not measured
              in this run".
  Training    a row per (model, input shape, batch, device): cudl's FP32
                img/s; PyTorch eager FP32 NCHW, its fastest FP32 variant and
                its fastest variant of any precision, each with "÷" = cudl
                img/s / PyTorch img/s (above 1.00: cudl faster); cudl's FLOP
                utilisation (achieved GFLOP/s / GEMM ceiling, %).
              Then every measurement, a row per variant (tool, mode: eager,
                graphs, compile; precision: fp32, bf16, fp16; layout: nchw,
                nhwc; tf32): median step ms, min-max step ms, img/s = batch /
                median, "cudl ÷" against cudl at the same precision (or its
                FP32, marked), peak memory in MiB (peak_memory_bytes).
  Operators   a table per device, a row per (op, pass, size, shape [* weight]):
                cudl ms      cudl's median time per call
                cudl rate    GB/s for memory-bound passes, GFLOP/s for
                             convolution and linear
                % ceil       cudl's fraction_of_ceiling: of the copy rate
                             (memory-bound) or of the GEMM rate (conv, linear)
                cuDNN ms, vs cuDNN     (GPU only) cuDNN's median and
                             cuDNN ms / cudl ms
                IMPL ms, vs IMPL       per PyTorch impl present (pytorch,
                             pytorch-graphs, pytorch-compile): its median and
                             IMPL ms / cudl ms
              Every "vs" ratio reads the same way: above 1.00 cudl is faster.
              A peer that did not run the case shows "–". The --sweep cases
              (size "sweep") get a second table per device.

Plots (matplotlib, Agg):
  train_throughput.png  images/s against batch size (log2), a panel per
                        device, model and input, a line per variant (colour:
                        impl, line style: precision, marker: layout)
  bandwidth.png         GB/s against bytes moved (log) of the memory-bound
                        sweep cases (cifar and large without a sweep), a
                        line per impl, op and pass; each run's copy ceiling
  ops_ratio.png         PyTorch ms / cudl ms per op and pass, at the largest
                        size both ran

Results are joined when their device and device_name match, so run the peers
on the same machine. When two files hold the same case for the same impl, the
later date wins (a note says so).

Exit status: 0; 1 when DIR holds a malformed benchmark file (unreadable JSON,
or a known schema lacking a field the report uses) or none at all; 3 when
matplotlib is missing and --no-plots was not given (report.md is still
written)."""

# Display order: the order of docs/benchmarks.md's case table, then the rest.
OP_ORDER = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "prelu", "rrelu",
            "dropout", "max_pool2d", "avg_pool2d", "global_avg_pool",
            "batchnorm", "batchnorm_inference", "add", "mse_loss",
            "cross_entropy", "conv2d", "linear", "sgd", "adam", "copy"]
PASS_ORDER = ["forward", "backward", "backward_data", "backward_filter", "step"]
SIZE_ORDER = ["cifar", "large", "sweep"]
PYTORCH_ORDER = ["pytorch", "pytorch-graphs", "pytorch-compile"]

# The benchmark issue's targets.
CPU_TRAIN_MODELS = ["small-cnn", "resnet20"]
CPU_TRAIN_RATIO = 1.0
GPU_COPY_FRACTION = 0.85
GPU_RESNET_BATCH = 128
GPU_RESNET_RATIO = 1.5


class Malformed(Exception):
    pass


# ---------------------------------------------------------------- loading

def is_number(v):
    # bool is an int to Python, but true is not a time.
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check_fields(obj, fields, where):
    """Raise Malformed unless obj has each field with the expected type."""
    if not isinstance(obj, dict):
        raise Malformed(f"{where}: expected an object")
    for name, kind in fields.items():
        if name not in obj:
            raise Malformed(f"{where}: missing \"{name}\"")
        v = obj[name]
        ok = is_number(v) if kind == "number" else (
            isinstance(v, kind) and not (kind is int and isinstance(v, bool)))
        if not ok:
            raise Malformed(f"{where}: \"{name}\" has the wrong type ({v!r})")


# Fields the report uses; a file of a known schema without them is malformed.
RUN_FIELDS = {"tool": str, "version": str, "device": str, "device_name": str,
              "threads": int, "date": str, "tf32": bool}
OPS_FIELDS = dict(RUN_FIELDS, ceilings=dict, results=list)
CEILING_FIELDS = {"copy_gbps": "number", "gemm_gflops": "number"}
RESULT_FIELDS = {"op": str, "pass": str, "size": str, "shape": list,
                 "impl": str, "median_ms": "number", "bytes": "number",
                 "gbps": "number", "flops": "number", "gflops": "number",
                 "ceiling": str, "fraction_of_ceiling": "number"}
TRAIN_FIELDS = dict(RUN_FIELDS, impl=str, model=str, batch=int,
                    images_per_second="number", step_ms_median="number",
                    peak_memory_bytes="number", gemm_gflops="number",
                    flop_utilisation="number")


def normalise_device(device):
    # "cuda" and "cuda:0" are the same card to a one-GPU run.
    device = device.strip().lower()
    return "cuda:0" if device == "cuda" else device


def machine_key(run):
    """Results join on (device, device_name): two cards both called cuda:0
    in different runs must not be mixed."""
    return (normalise_device(run["device"]), run["device_name"])


def machine_label(key):
    device, name = key
    return device if name == device else f"{device} ({name})"


def is_gpu(key):
    return key[0].startswith("cuda")


def known_impl(impl):
    return impl in ("cudl", "cudnn") or impl.startswith("pytorch")


def load_file(path):
    """Return ("ops" | "train", run) or (None, reason) for a file to skip."""
    name = path  # as found under DIR, so the message names the file to fix
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise Malformed(f"{name}: {e}")
    schema = data.get("schema") if isinstance(data, dict) else None
    if schema == OPS_SCHEMA:
        check_fields(data, OPS_FIELDS, name)
        check_fields(data["ceilings"], CEILING_FIELDS, f"{name}: ceilings")
        for i, r in enumerate(data["results"]):
            where = f"{name}: results[{i}]"
            check_fields(r, RESULT_FIELDS, where)
            for field in ("shape", "weight"):
                dims = r.get(field, [])
                if not (isinstance(dims, list) and all(
                        isinstance(d, int) and not isinstance(d, bool)
                        for d in dims)):
                    raise Malformed(f"{where}: \"{field}\" is not a list of "
                                    f"integers")
            if not known_impl(r["impl"]):
                raise Malformed(f"{where}: unknown impl \"{r['impl']}\"")
        return "ops", data
    if schema == TRAIN_SCHEMA:
        check_fields(data, TRAIN_FIELDS, name)
        if not known_impl(data["impl"]):
            raise Malformed(f"{name}: unknown impl \"{data['impl']}\"")
        return "train", data
    return None, f"schema {schema!r}" if schema else "no \"schema\""


def load_dir(directory):
    ops_runs, train_runs = [], []
    for path in sorted(glob.glob(os.path.join(directory, "*.json"))):
        kind, run = load_file(path)
        if kind is None:
            print(f"report.py: skipping {path} ({run})",
                  file=sys.stderr)
            continue
        run["_file"] = os.path.basename(path)
        (ops_runs if kind == "ops" else train_runs).append(run)
    return ops_runs, train_runs


# ---------------------------------------------------------------- joining

def order_index(value, order):
    return (order.index(value), "") if value in order else (len(order), value)


def numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def row_sort_key(key):
    op, pass_, size, shape, weight = key
    return (order_index(op, OP_ORDER), order_index(pass_, PASS_ORDER),
            order_index(size, SIZE_ORDER), numel(shape), shape, weight)


def join_ops(ops_runs, notes):
    """ops[machine][(op, pass, size, shape, weight)][impl] = result; each
    result keeps its run in "_run" (for its ceilings)."""
    ops = {}
    replaced = {}  # (newer file, older file) -> cases
    # Later runs are applied last, so the later date wins a duplicate.
    for run in sorted(ops_runs, key=lambda r: (r["date"], r["_file"])):
        table = ops.setdefault(machine_key(run), {})
        for r in run["results"]:
            key = (r["op"], r["pass"], r["size"], tuple(r["shape"]),
                   tuple(r.get("weight") or ()))
            cell = table.setdefault(key, {})
            old = cell.get(r["impl"])
            if old is not None:
                pair = (run["_file"], old["_run"]["_file"])
                replaced[pair] = replaced.get(pair, 0) + 1
            cell[r["impl"]] = dict(r, _run=run)
    for (new, old), n in sorted(replaced.items()):
        cases = f"{n} case{'s' if n > 1 else ''}"
        notes.append(f"{new} holds {cases} twice (the last one is shown)"
                     if new == old else
                     f"{new} replaces {old} in {cases} both measured (the "
                     f"later date wins)")
    return ops


PRECISION_ORDER = ["fp32", "bf16", "fp16"]
LAYOUT_ORDER = ["nchw", "nhwc"]
MODE_OF_IMPL = {"pytorch": "eager", "pytorch-graphs": "graphs",
                "pytorch-compile": "compile"}


def train_variant(run):
    """(impl, precision, layout) of a training run: what a row of the
    training tables is. Files without the fields are FP32 in NCHW (all
    that cudl bench train and torch_ref.py ran before they existed)."""
    return (run["impl"], run.get("precision") or "fp32",
            run.get("layout") or "nchw")


def variant_sort_key(variant):
    impl, precision, layout = variant
    return (order_index(impl, IMPL_ORDER),
            order_index(precision, PRECISION_ORDER),
            order_index(layout, LAYOUT_ORDER))


def variant_label(variant):
    impl, precision, layout = variant
    return f"{impl} {precision} {layout}"


def train_shape(run):
    return tuple(run.get("input_shape") or ())


def join_train(train_runs, notes):
    """train[(model, input shape, batch, machine)][(impl, precision,
    layout)] = run. Repeated runs of one case (bench-cpu.sh interleaves
    rounds of cudl and PyTorch, because a shared machine drifts by 10-20 %
    over minutes) are reduced to the run with the median images/s (the
    lower middle of an even count)."""
    runs_of = {}
    for run in sorted(train_runs, key=lambda r: (r["date"], r["_file"])):
        # small_cnn (Python's spelling) and small-cnn (the CLI's) are one model.
        model = run["model"].lower().replace("_", "-")
        key = (model, train_shape(run), run["batch"], machine_key(run))
        variants = runs_of.setdefault(key, {})
        variants.setdefault(train_variant(run), []).append(run)
    train = {}
    for key, variants in runs_of.items():
        cell = train.setdefault(key, {})
        for variant, runs in variants.items():
            runs = sorted(runs, key=lambda r: r["images_per_second"])
            chosen = runs[(len(runs) - 1) // 2]
            cell[variant] = dict(chosen, _repeats=len(runs),
                                 _range=(runs[0]["images_per_second"],
                                         runs[-1]["images_per_second"]))
            if len(runs) > 1:
                low, high = (runs[0]["images_per_second"],
                             runs[-1]["images_per_second"])
                notes.append(f"{variant_label(variant)} {key[0]} "
                             f"{fmt_shape(key[1])} batch {key[2]}: median of "
                             f"{len(runs)} runs ({sig(low)}-{sig(high)} "
                             f"images/s)")
    return train


def pytorch_impls(impls):
    return sorted({i for i in impls if i.startswith("pytorch")},
                  key=lambda i: order_index(i, PYTORCH_ORDER))


def consistency_notes(ops_runs, train_runs):
    """Peers are only comparable on the same machine and settings; say when
    the inputs disagree."""
    notes = []
    by_device = {}
    for run in ops_runs + train_runs:
        by_device.setdefault(normalise_device(run["device"]), []).append(run)
    for device, runs in sorted(by_device.items()):
        names = sorted({r["device_name"] for r in runs})
        if len(names) > 1:
            notes.append(f"{device}: the files name different machines "
                         f"({', '.join(names)}); their results are not joined")
        for key in sorted({machine_key(r) for r in runs}):
            same = [r for r in runs if machine_key(r) == key]
            tf32 = {r["tf32"] for r in same}
            if len(tf32) > 1:
                # Per tool, how many files ran with each setting: a sweep
                # writes dozens of files, all alike.
                counts = {}
                for r in same:
                    label = (r["tool"], tf32_text(r))
                    counts[label] = counts.get(label, 0) + 1
                said = "; ".join(
                    f"{tool} {text} ({n} file{'s' if n > 1 else ''})"
                    for (tool, text), n in sorted(counts.items()))
                notes.append(f"{machine_label(key)}: TF32 differs between "
                             f"files ({said}); FP32 convolution and GEMM "
                             f"figures differ in precision as well as speed")
            threads = sorted({r["threads"] for r in same})
            if not is_gpu(key) and len(threads) > 1:
                notes.append(f"{machine_label(key)}: thread counts differ "
                             f"between files ({', '.join(map(str, threads))})")
            cudnn = {}
            for r in same:
                if r.get("cudnn"):
                    cudnn.setdefault(r["tool"], set()).add(r["cudnn"])
            versions = {v for vs in cudnn.values() for v in vs}
            if len(versions) > 1:
                said = "; ".join(
                    f"{tool} {', '.join(cudnn_text(v) for v in sorted(vs))}"
                    for tool, vs in sorted(cudnn.items()))
                notes.append(f"{machine_label(key)}: the runs used different "
                             f"cuDNN libraries ({said}): convolution figures "
                             f"compare the libraries as well as the callers")
    for run in sorted(train_runs, key=lambda r: r["_file"]):
        per_sample = run.get("steps_per_sample")
        if is_number(per_sample) and per_sample > 1:
            notes.append(f"{run['_file']}: each sample is the mean of "
                         f"{per_sample} steps, so its median and min-max are "
                         f"of those means, not of single steps")
        elif per_sample is None and run["tool"] == "cudl":
            # cudl bench train before it sampled single steps by default.
            notes.append(f"{run['_file']}: no steps_per_sample (an older cudl "
                         f"bench train): its samples may be means of several "
                         f"steps")
    return notes


def cudnn_text(v):
    """cudnnGetVersion()'s integer as text: 91900 is 9.19.0 (cuDNN 9), 8907
    is 8.9.7 (cuDNN 8)."""
    if not is_number(v) or v <= 0:
        return DASH
    v = int(v)
    if v >= 90000:
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"


def tf32_text(run):
    """What the run allowed: "conv on, matmul off" where torch_ref.py read
    PyTorch's settings back, else on/off from the "tf32" flag; "n/a" on the
    CPU, which has no TF32."""
    if not is_gpu(machine_key(run)):
        return "n/a"
    settings = run.get("tf32_settings")
    if isinstance(settings, dict) and settings:
        def word(legacy, precision):
            v = settings.get(legacy)
            if v is None:
                p = settings.get(precision)
                v = None if p in (None, "none") else p == "tf32"
            return {True: "on", False: "off"}.get(v, "?")
        conv = word("cudnn_conv_allow_tf32", "cudnn_conv_fp32_precision")
        matmul = word("cuda_matmul_allow_tf32", "cuda_matmul_fp32_precision")
        return f"conv {conv}, matmul {matmul}"
    return "on" if run["tf32"] else "off"


# ---------------------------------------------------------------- formatting

def sig(v, digits=3):
    """digits significant figures without an exponent: table cells stay
    readable from 0.00123 ms to 12345 images/s."""
    if v is None or not math.isfinite(v):
        return DASH
    if v == 0:
        return "0"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(v))))
    return f"{v:.{decimals}f}"


def ratio(num, den):
    if num is None or den is None or not den > 0 or not num > 0:
        return None
    return num / den


def fmt_ratio(r):
    return DASH if r is None else f"{r:.2f}"


def fmt_shape(shape):
    return "×".join(str(d) for d in shape)


def fmt_case_shape(shape, weight):
    return fmt_shape(shape) + (f" * {fmt_shape(weight)}" if weight else "")


def mib(nbytes):
    return DASH if nbytes is None else sig(nbytes / 2**20, 3)


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def is_gemm(result):
    return result["ceiling"] == "gemm"


def rate(result):
    if is_gemm(result):
        return f"{sig(result['gflops'])} GFLOP/s"
    return f"{sig(result['gbps'])} GB/s"


# ---------------------------------------------------------------- sections

def runs_section(ops_runs, train_runs, notes):
    out = ["## Runs", ""]
    rows = []
    for run in sorted(ops_runs + train_runs,
                      key=lambda r: (machine_key(r), r["tool"], r["_file"])):
        if run["schema"] == TRAIN_SCHEMA:
            what = (f"train {run['model']} {fmt_shape(train_shape(run))} "
                    f"batch {run['batch']} "
                    f"({variant_label(train_variant(run))})")
        else:
            impls = sorted({r["impl"] for r in run["results"]})
            what = f"ops ({', '.join(impls) or 'no results'})"
        rows.append([f"`{run['_file']}`", run["tool"], what,
                     normalise_device(run["device"]), run["device_name"],
                     run["date"], run["version"], run["threads"],
                     tf32_text(run), cudnn_text(run.get("cudnn"))])
    out += table(["file", "tool", "what", "device", "device name", "date",
                  "version", "threads", "tf32", "cuDNN"], rows)
    out += cudnn_lines(ops_runs + train_runs)
    if ops_runs:
        out += ["", "Ceilings measured by each ops run (`copy_gbps`: bytes "
                "read + written per second; `gemm_gflops`: FP32 GEMM):", ""]
        rows = []
        for run in sorted(ops_runs, key=lambda r: (machine_key(r), r["tool"])):
            c = run["ceilings"]
            size = f" (n = {c['gemm_size']})" if c.get("gemm_size") else ""
            rows.append([run["tool"], machine_label(machine_key(run)),
                         sig(c["copy_gbps"]), sig(c["gemm_gflops"]) + size,
                         f"`{run['_file']}`"])
        out += table(["tool", "device", "copy GB/s", "GEMM GFLOP/s", "file"],
                     rows)
    if notes:
        out += ["", "Notes on the inputs:", ""] + [f"- {n}" for n in notes]
    return out + [""]


def cudnn_lines(runs):
    """One line per GPU: the cuDNN each tool ran on (cudl: the library it
    loaded and the headers it was built with)."""
    out = []
    gpus = sorted({machine_key(r) for r in runs if is_gpu(machine_key(r))})
    for mkey in gpus:
        parts = []
        here = [r for r in runs if machine_key(r) == mkey]
        for tool in sorted({r["tool"] for r in here}):
            mine = [r for r in here if r["tool"] == tool]
            loaded = sorted({r["cudnn"] for r in mine
                             if is_number(r.get("cudnn"))})
            headers = sorted({r["cudnn_headers"] for r in mine
                              if is_number(r.get("cudnn_headers"))})
            text = ", ".join(cudnn_text(v) for v in loaded) or "not recorded"
            if headers:
                named = ", ".join(cudnn_text(v) for v in headers)
                text += f" (built against {named} headers)"
            parts.append(f"{tool} {text}")
        out.append(f"- cuDNN on {machine_label(mkey)}: {'; '.join(parts)}.")
    return ([""] + out) if out else []


def ops_section(ops):
    out = ["## Operators", "",
           "Medians per call. `cudl rate` is GB/s for memory-bound passes and "
           "GFLOP/s for convolution and linear; `% ceil` is cudl's fraction of "
           "its own run's copy or GEMM ceiling. `vs X` = X's median / cudl's "
           "median: above 1.00 cudl is faster. The `--sweep` cases follow each "
           "device's main table.", ""]
    for mkey in sorted(ops):
        rows_by_key = ops[mkey]
        impls = {i for cell in rows_by_key.values() for i in cell}
        has_cudnn = "cudnn" in impls
        peers = (["cudnn"] if has_cudnn else []) + pytorch_impls(impls)
        header = ["op", "pass", "size", "shape", "cudl ms", "cudl rate",
                  "% ceil"]
        for p in peers:
            name = "cuDNN" if p == "cudnn" else p
            header += [f"{name} ms", f"vs {name}"]
        # The sweep's six sizes per op would bury the cifar/large rows.
        main_rows, sweep_rows = [], []
        for key in sorted(rows_by_key, key=row_sort_key):
            op, pass_, size, shape, weight = key
            cell = rows_by_key[key]
            c = cell.get("cudl")
            row = [op, pass_, size, fmt_case_shape(shape, weight)]
            if c:
                row += [sig(c["median_ms"]), rate(c),
                        f"{100 * c['fraction_of_ceiling']:.1f}"]
            else:
                row += [DASH] * 3
            cudl_ms = c["median_ms"] if c else None
            for impl in peers:
                p = cell.get(impl)
                row += [sig(p["median_ms"]) if p else DASH,
                        fmt_ratio(ratio(p and p["median_ms"], cudl_ms))]
            (sweep_rows if size == "sweep" else main_rows).append(row)
        out += [f"### {machine_label(mkey)}", ""]
        if "cudl" not in impls:
            out += ["No cudl results for this device: check that the cudl run "
                    "reports the same device and device_name.", ""]
        if main_rows:
            out += table(header, main_rows) + [""]
        if sweep_rows:
            out += [f"Sweep, {machine_label(mkey)}:", ""]
            out += table(header, sweep_rows) + [""]
    return out


def pytorch_variants(cell, precision=None):
    return sorted((v for v in cell if v[0].startswith("pytorch")
                   and (precision is None or v[1] == precision)),
                  key=variant_sort_key)


def fastest(cell, variants):
    """The variant of cell with the most images/s, or None."""
    return max(variants, key=lambda v: cell[v]["images_per_second"],
               default=None)


def cudl_reference(cell, precision):
    """The cudl run a PyTorch row is compared with: cudl's fastest layout at
    the same precision, else its fastest FP32 run (then "fp32" says so)."""
    for p in (precision, "fp32"):
        v = fastest(cell, [v for v in cell if v[0] == "cudl" and v[1] == p])
        if v is not None:
            return cell[v], ("" if p == precision else f" ({p})")
    return None, ""


def step_range(run):
    lo, hi = run.get("step_ms_min"), run.get("step_ms_max")
    if not is_number(lo):
        return DASH
    return f"{sig(lo)}-{sig(hi)}" if is_number(hi) else f"{sig(lo)}-?"


def train_point_sort_key(key):
    model, shape, batch, mkey = key
    return (mkey, model, shape, batch)


def train_section(train):
    out = ["## Training", "",
           "`÷` = cudl images/s / PyTorch images/s: above 1.00 cudl is "
           "faster. "
           "A PyTorch variant is named by impl (pytorch: eager, "
           "pytorch-graphs: the step replayed from a CUDA graph, "
           "pytorch-compile: torch.compile), precision (fp32, or bf16/fp16 "
           "autocast) and layout (nchw, or nhwc: channels-last); the table "
           "below gives each one's TF32 setting.", ""]
    header = ["model", "input", "batch", "device", "cudl img/s",
              "PyTorch eager fp32 nchw", "÷", "fastest PyTorch fp32", "÷",
              "fastest PyTorch", "÷", "cudl FLOP util %"]
    rows = []
    for key in sorted(train, key=train_point_sort_key):
        model, shape, batch, mkey = key
        cell = train[key]
        c, _ = cudl_reference(cell, "fp32")
        ips = c["images_per_second"] if c else None
        row = [model, fmt_shape(shape), batch, machine_label(mkey), sig(ips, 4)]
        eager = cell.get(("pytorch", "fp32", "nchw"))
        row += [sig(eager["images_per_second"], 4) if eager else DASH,
                fmt_ratio(ratio(ips, eager and eager["images_per_second"]))]
        for variants in (pytorch_variants(cell, "fp32"),
                         pytorch_variants(cell)):
            best = fastest(cell, variants)
            if best is None:
                row += [DASH, DASH]
                continue
            b = cell[best]["images_per_second"]
            row += [f"{sig(b, 4)} ({variant_label(best)})",
                    fmt_ratio(ratio(ips, b))]
        row += [f"{100 * c['flop_utilisation']:.1f}" if c else DASH]
        rows.append(row)
    out += table(header, rows) + [""]

    out += ["### Every training measurement", "",
            "Step times are the median, fastest and slowest single step (each "
            "side's `step_ms_median`, `step_ms_min`, `step_ms_max`); images/s "
            "= batch / median. `cudl ÷` compares the row with cudl at the "
            "same "
            "precision, or with cudl's FP32 where cudl has not that precision "
            "(marked). Peak memory is `peak_memory_bytes`: device memory on "
            "the GPU; on the CPU cudl counts its tensors and workspaces while "
            "PyTorch reports the process's resident set, so CPU figures are "
            "not like for like.", ""]
    header = ["model", "input", "batch", "device", "tool", "mode", "precision",
              "layout", "tf32", "median ms", "min-max ms", "img/s", "cudl ÷",
              "peak MiB"]
    rows = []
    for key in sorted(train, key=train_point_sort_key):
        model, shape, batch, mkey = key
        cell = train[key]
        for variant in sorted(cell, key=variant_sort_key):
            run = cell[variant]
            impl, precision, layout = variant
            ips = run["images_per_second"]
            if impl == "cudl":
                versus = DASH
            else:
                c, mark = cudl_reference(cell, precision)
                r = ratio(c and c["images_per_second"], ips)
                versus = DASH if r is None else f"{r:.2f}{mark}"
            mode = run.get("mode") or MODE_OF_IMPL.get(impl, DASH)
            rows.append([model, fmt_shape(shape), batch, machine_label(mkey),
                         run["tool"], mode, precision, layout, tf32_text(run),
                         sig(run["step_ms_median"]), step_range(run),
                         sig(ips, 4), versus, mib(run["peak_memory_bytes"])])
    out += table(header, rows) + [""]
    return out


NOT_MEASURED = "not measured in this run"


def verdict(ok):
    return "**met**" if ok else "**missed**"


def summary(flags):
    if not flags:
        return NOT_MEASURED
    met = sum(flags)
    if met == len(flags):
        return "**met**" + (f" ({met} of {met})" if len(flags) > 1 else "")
    return f"**missed** ({met} of {len(flags)} met)"


def target_cpu_training(train):
    """(a) CPU training at >= 1.0x PyTorch, per model, input and batch
    measured by both, precision for precision. Against the fastest PyTorch
    variant of cudl's precision present (any mode or layout): beating only
    the slower one would not be parity."""
    lines, flags, unmeasured = [], [], []
    for model in CPU_TRAIN_MODELS:
        measured = False
        for (m, shape, batch, mkey), cell in sorted(
                train.items(), key=lambda kv: train_point_sort_key(kv[0])):
            if m != model or is_gpu(mkey):
                continue
            for precision in PRECISION_ORDER:
                c, mark = cudl_reference(cell, precision)
                best = fastest(cell, pytorch_variants(cell, precision))
                if c is None or mark or best is None:
                    continue
                t = cell[best]["images_per_second"]
                r = ratio(c["images_per_second"], t)
                if r is None:
                    continue
                measured = True
                ok = r >= CPU_TRAIN_RATIO
                flags.append(ok)
                lines.append(
                    f"  - {model} {fmt_shape(shape)}, batch {batch}, "
                    f"{machine_label(mkey)}, {precision}: cudl "
                    f"{sig(c['images_per_second'], 4)} vs "
                    f"{variant_label(best)} {sig(t, 4)} images/s = {r:.2f}x: "
                    f"{verdict(ok)}, "
                    f"{abs(r / CPU_TRAIN_RATIO - 1) * 100:.1f} % "
                    f"{'above' if ok else 'below'} the target")
        if not measured:
            unmeasured.append(model)
    head = (f"- **(a) CPU training at >= {CPU_TRAIN_RATIO:.1f}x PyTorch "
            f"images/s** (small-cnn and resnet20, same input and batch, "
            f"against the fastest PyTorch variant of cudl's precision "
            f"present): {summary(flags)}")
    if flags and unmeasured:
        # A met verdict on half the models is not the target met.
        head += f"; {' and '.join(unmeasured)} {NOT_MEASURED}"
    return [head] + lines


def target_gpu_bandwidth(ops):
    """(b) every cudl memory-bound pass on "large" at >= 85 % of the copy
    rate of its own run."""
    lines, flags = [], []
    for mkey in sorted(k for k in ops if is_gpu(k)):
        items, copy = [], None
        for key in sorted(ops[mkey], key=row_sort_key):
            op, pass_, size, shape, weight = key
            c = ops[mkey][key].get("cudl")
            if size != "large" or not c or is_gemm(c):
                continue
            f = c["fraction_of_ceiling"]
            ok = f >= GPU_COPY_FRACTION
            flags.append(ok)
            copy = c["_run"]["ceilings"]["copy_gbps"]
            items.append(f"    - {op} {pass_} ({fmt_shape(shape)}): "
                         f"{sig(c['gbps'])} GB/s = {100 * f:.1f} %: "
                         f"{verdict(ok)} ({100 * (f - GPU_COPY_FRACTION):+.1f} "
                         f"points)")
        if items:
            met = sum(1 for i in items if "**met**" in i)
            lines.append(f"  - {machine_label(mkey)}, copy_gbps {sig(copy)}: "
                         f"{met} of {len(items)} at >= "
                         f"{100 * GPU_COPY_FRACTION:.0f} %")
            lines += items
    head = (f"- **(b) GPU memory-bound kernels on `large` at >= "
            f"{100 * GPU_COPY_FRACTION:.0f} % of copy_gbps**: {summary(flags)}")
    if flags:
        lines.append("  - Raw fractions of the bytes an operator must move: a "
                     "pass that reads an input twice, such as batch-norm "
                     "training forward, cannot reach 100 % by this count.")
    return [head] + lines


def batchnorm_pair(cases, size, shape, impl):
    """The forward and backward medians of impl's batch norm, or None."""
    ms = []
    for pass_ in ("forward", "backward"):
        r = cases.get(("batchnorm", pass_, size, shape, ()), {}).get(impl)
        if r is None:
            return None
        ms.append(r["median_ms"])
    return ms


def target_batchnorm(ops):
    """(c) hand-written batch norm forward + backward no slower than cuDNN,
    sizes large and cifar."""
    lines, flags, measured = [], [], set()
    for mkey in sorted(k for k in ops if is_gpu(k)):
        cases = ops[mkey]
        for size in ("large", "cifar"):
            for shape in sorted({k[3] for k in cases
                                 if k[0] == "batchnorm" and k[2] == size}):
                mine = batchnorm_pair(cases, size, shape, "cudl")
                theirs = batchnorm_pair(cases, size, shape, "cudnn")
                if not mine or not theirs or not sum(mine) > 0:
                    continue
                c, d = sum(mine), sum(theirs)
                ok = c <= d
                flags.append(ok)
                measured.add(size)
                how = (f"cudl {d / c:.2f}x as fast, {sig(d - c)} ms less" if ok
                       else f"cudl {100 * (c / d - 1):.1f} % slower, "
                            f"{sig(c - d)} ms more")
                lines.append(f"  - {size} ({fmt_shape(shape)}, "
                             f"{machine_label(mkey)}): cudl {sig(mine[0])} + "
                             f"{sig(mine[1])} = {sig(c)} ms, cuDNN "
                             f"{sig(theirs[0])} + {sig(theirs[1])} = "
                             f"{sig(d)} ms: {verdict(ok)} ({how})")
    head = ("- **(c) GPU batch norm forward + backward no slower than cuDNN** "
            f"(sizes large and cifar): {summary(flags)}")
    unmeasured = [s for s in ("large", "cifar") if s not in measured]
    if flags and unmeasured:
        head += f"; {' and '.join(unmeasured)} {NOT_MEASURED}"
    return [head] + lines


def target_gpu_resnet(train):
    """(d) ResNet-20 training at batch 128 on the GPU at >= 1.5x PyTorch
    eager (FP32, NCHW: PyTorch as it comes), for each input shape."""
    lines, flags = [], []
    eager = ("pytorch", "fp32", "nchw")
    for (model, shape, batch, mkey), cell in sorted(
            train.items(), key=lambda kv: train_point_sort_key(kv[0])):
        c, mark = cudl_reference(cell, "fp32")
        if (model != "resnet20" or batch != GPU_RESNET_BATCH
                or not is_gpu(mkey) or c is None or eager not in cell):
            continue
        c = c["images_per_second"]
        t = cell[eager]["images_per_second"]
        r = ratio(c, t)
        if r is None:
            continue
        ok = r >= GPU_RESNET_RATIO
        flags.append(ok)
        # The other FP32 modes and the fastest variant of all are not the
        # target, but belong beside it.
        beside = [v for v in pytorch_variants(cell, "fp32") if v != eager]
        best = fastest(cell, pytorch_variants(cell))
        if best not in beside + [eager]:
            beside.append(best)
        others = "".join(
            f"; vs {variant_label(v)} "
            f"{fmt_ratio(ratio(c, cell[v]['images_per_second']))}x"
            for v in beside)
        lines.append(f"  - {fmt_shape(shape)}, {machine_label(mkey)}: cudl "
                     f"{sig(c, 4)} vs pytorch eager fp32 nchw "
                     f"({tf32_text(cell[eager])}) {sig(t, 4)} images/s = "
                     f"{r:.2f}x: {verdict(ok)} "
                     f"({abs(r / GPU_RESNET_RATIO - 1) * 100:.1f} % "
                     f"{'above' if ok else 'below'} the target{others})")
    head = (f"- **(d) GPU ResNet-20 training, batch {GPU_RESNET_BATCH}, at "
            f">= {GPU_RESNET_RATIO:.1f}x PyTorch eager images/s** (FP32, "
            f"NCHW, PyTorch's TF32 setting as recorded): {summary(flags)}")
    return [head] + lines


def targets_section(ops, train):
    return (["## Targets", ""] + target_cpu_training(train)
            + target_gpu_bandwidth(ops) + target_batchnorm(ops)
            + target_gpu_resnet(train) + [""])


# ---------------------------------------------------------------- plots

def import_pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")  # files only: no display on a benchmark machine
    import matplotlib.pyplot as plt
    return plt


IMPL_STYLES = {"cudl": ("-", "o"), "cudnn": ("--", "s"),
               "pytorch": (":", "^"), "pytorch-graphs": ("-.", "v"),
               "pytorch-compile": ((0, (5, 1, 1, 1)), "D")}
IMPL_ORDER = ["cudl", "cudnn"] + PYTORCH_ORDER


def impl_style(impl):
    return IMPL_STYLES.get(impl, ((0, (1, 3)), "x"))


def impl_colour(impl):
    import matplotlib.pyplot as plt
    colours = plt.get_cmap("tab10").colors
    i = IMPL_ORDER.index(impl) if impl in IMPL_ORDER else len(IMPL_ORDER)
    return colours[i % len(colours)]


def plain_log_ticks(axis):
    """Log axes label 2000 and 0.5 as such, not as 2x10^3 and 5x10^-1."""
    from matplotlib.ticker import FuncFormatter
    fmt = FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 10 else f"{v:g}")
    axis.set_major_formatter(fmt)
    axis.set_minor_formatter(fmt)


def save(fig, path, extra=()):
    # "tight" keeps the legends placed outside the axes in the picture; a
    # legend added with add_artist must be named to be counted.
    fig.savefig(path, dpi=110, bbox_inches="tight",
                bbox_extra_artists=list(extra) or None)


PRECISION_STYLES = {"fp32": "-", "bf16": "--", "fp16": ":"}
LAYOUT_MARKERS = {"nchw": "o", "nhwc": "s"}


def plot_train(plt, train, path):
    """A panel per machine, model and input: images/s against batch, a line
    per variant; colour says the impl, line style the precision, marker
    the layout."""
    panels = {}  # (machine, model, shape) -> {variant: [(batch, images/s)]}
    for (model, shape, batch, mkey), cell in train.items():
        lines = panels.setdefault((mkey, model, shape), {})
        for variant, run in cell.items():
            lines.setdefault(variant, []).append(
                (batch, run["images_per_second"]))
    if not panels:
        return False
    keys = sorted(panels)
    cols = min(2, len(keys))
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, squeeze=False,
                             figsize=(6.5 * cols, 5.2 * rows))
    for ax, key in zip(axes.flat, keys):
        mkey, model, shape = key
        for variant in sorted(panels[key], key=variant_sort_key):
            impl, precision, layout = variant
            pts = sorted(panels[key][variant])
            ax.plot([b for b, _ in pts], [v for _, v in pts],
                    linestyle=PRECISION_STYLES.get(precision, "-."),
                    marker=LAYOUT_MARKERS.get(layout, "x"),
                    color=impl_colour(impl), label=variant_label(variant))
        batches = sorted({b for pts in panels[key].values() for b, _ in pts})
        ax.set_xscale("log", base=2)
        ax.set_xticks(batches)
        ax.set_xticklabels([str(b) for b in batches])
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_yscale("log")
        plain_log_ticks(ax.yaxis)
        ax.tick_params(axis="y", which="both", labelsize=8)
        ax.set_xlabel("batch size")
        ax.set_ylabel("images/s")
        ax.set_title(f"{model} {fmt_shape(shape)}, {machine_label(mkey)}",
                     fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14),
                  ncol=2)
    for ax in list(axes.flat)[len(keys):]:
        ax.set_visible(False)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return True


def bandwidth_points(cases):
    """Memory-bound results of the sweep, or of cifar/large when the run had
    no --sweep: lines[(impl, op, pass)] = [(bytes, GB/s)]."""
    for sizes in (("sweep",), ("cifar", "large")):
        lines = {}
        for (op, pass_, size, _, _), cell in cases.items():
            if size not in sizes:
                continue
            for impl, r in cell.items():
                if not is_gemm(r) and r["bytes"] > 0 and r["gbps"] > 0:
                    lines.setdefault((impl, op, pass_), []).append(
                        (r["bytes"], r["gbps"]))
        if lines:
            return lines, sizes
    return {}, ()


def plot_bandwidth(plt, ops, ops_runs, path):
    from matplotlib.lines import Line2D
    panels = [(m, *bandwidth_points(ops[m])) for m in sorted(ops)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return False
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(10, 5 * len(panels)))
    # 40 colours: without --sweep there are about 35 (op, pass) lines.
    colours = plt.get_cmap("tab20").colors + plt.get_cmap("tab20b").colors
    extra = []
    for ax, (mkey, lines, sizes) in zip(axes[:, 0], panels):
        # Colour says which op and pass, line style which implementation: two
        # short legends instead of one with a row per line.
        op_passes = sorted({(op, p) for _, op, p in lines},
                           key=lambda k: (order_index(k[0], OP_ORDER),
                                          order_index(k[1], PASS_ORDER)))
        colour = {k: colours[i % len(colours)] for i, k in enumerate(op_passes)}
        impls = sorted({i for i, _, _ in lines},
                       key=lambda i: order_index(i, IMPL_ORDER))
        for (impl, op, pass_), pts in sorted(lines.items()):
            pts.sort()
            ls, marker = impl_style(impl)
            ax.plot([b for b, _ in pts], [g for _, g in pts], linestyle=ls,
                    marker=marker, markersize=4, color=colour[(op, pass_)])
        handles = [Line2D([], [], color="grey", linestyle=impl_style(i)[0],
                          marker=impl_style(i)[1]) for i in impls]
        labels = list(impls)
        for run in sorted((r for r in ops_runs if machine_key(r) == mkey),
                          key=lambda r: r["tool"]):
            gbps = run["ceilings"]["copy_gbps"]
            ls = "-" if run["tool"] == "cudl" else "--"
            ax.axhline(gbps, color="black", linestyle=ls, linewidth=1.2)
            handles.append(Line2D([], [], color="black", linestyle=ls))
            labels.append(f"{run['tool']} copy ceiling, {sig(gbps)} GB/s")
        ax.set_xscale("log")
        ax.set_xlabel("bytes moved per call")
        ax.set_ylabel("GB/s")
        ax.set_ylim(bottom=0)
        ax.set_title(f"Memory-bound operators, size {' + '.join(sizes)}, "
                     f"{machine_label(mkey)}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        op_legend = ax.legend(
            [Line2D([], [], color=colour[k], linewidth=2) for k in op_passes],
            [f"{op} {p}" for op, p in op_passes], fontsize=7,
            loc="upper left", bbox_to_anchor=(1.01, 1.0),
            ncol=1 if len(op_passes) <= 20 else 2, title="op, pass")
        ax.add_artist(op_legend)
        extra += [op_legend, ax.legend(handles, labels, fontsize=7,
                                       loc="lower left", title="impl",
                                       bbox_to_anchor=(1.01, 0.0))]
    fig.tight_layout()
    save(fig, path, extra)
    plt.close(fig)
    return True


def ratio_bars(cases):
    """Per (op, pass) the case of the largest size both cudl and a PyTorch
    impl ran (large over cifar over the sweep's biggest): the figure most
    about kernels and least about launch latency."""
    best = {}
    for key, cell in cases.items():
        op, pass_, size, shape, weight = key
        c = cell.get("cudl")
        if not c or not any(ratio(cell[p]["median_ms"], c["median_ms"])
                            for p in pytorch_impls(cell)):
            continue
        rank = ({"sweep": 0, "cifar": 1, "large": 2}.get(size, -1),
                c["bytes"], c["flops"])
        if (op, pass_) not in best or rank > best[(op, pass_)][0]:
            best[(op, pass_)] = (rank, key, cell)
    rows = []
    for (op, pass_), (_, key, cell) in sorted(
            best.items(), key=lambda kv: (order_index(kv[0][0], OP_ORDER),
                                          order_index(kv[0][1], PASS_ORDER))):
        c = cell["cudl"]["median_ms"]
        rows.append((f"{op} {pass_} ({key[2]})",
                     {p: ratio(cell[p]["median_ms"], c)
                      for p in pytorch_impls(cell)}))
    return rows


def plot_ratios(plt, ops, path):
    panels = [(m, ratio_bars(ops[m])) for m in sorted(ops)]
    panels = [p for p in panels if p[1]]
    if not panels:
        return False
    peer_sets = [pytorch_impls({p for _, d in rows for p in d})
                 for _, rows in panels]
    heights = [1.0 + len(rows) * (0.12 + 0.1 * len(peers))
               for (_, rows), peers in zip(panels, peer_sets)]
    fig, axes = plt.subplots(len(panels), 1, squeeze=False,
                             figsize=(9, sum(heights)),
                             gridspec_kw={"height_ratios": heights})
    for ax, (mkey, rows), peers in zip(axes[:, 0], panels, peer_sets):
        width = 0.8 / len(peers)
        ys = range(len(rows))
        values = []
        for j, p in enumerate(peers):
            vals = [d.get(p) for _, d in rows]
            values += [v for v in vals if v]
            # Bars grow from parity: right of 1 cudl is faster, left slower.
            ax.barh([y + (j - (len(peers) - 1) / 2) * width for y in ys],
                    [v - 1 if v else 0 for v in vals], left=1, height=width,
                    label=p, color=impl_colour(p))
        ax.set_yticks(list(ys))
        ax.set_yticklabels([label for label, _ in rows], fontsize=8)
        ax.set_ylim(len(rows) - 0.5, -0.5)  # docs order, top to bottom
        # Log scale: 0.5x and 2x are equally far from parity.
        ax.set_xscale("log")
        reach = max(max(values, default=1), 1 / min(values, default=1)) * 1.15
        ax.set_xlim(1 / reach, reach)
        ticks = [t for t in (0.1, 0.2, 0.25, 0.5, 0.67, 0.8, 1, 1.25, 1.5, 2,
                             4, 5, 10) if 1 / reach <= t <= reach]
        ax.set_xticks(ticks)
        ax.xaxis.set_minor_locator(plt.NullLocator())
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.axvline(1.0, color="black", linewidth=1)
        ax.set_xlabel("PyTorch ms / cudl ms (right of 1: cudl faster)")
        ax.set_title(f"cudl against PyTorch, largest size per op, "
                     f"{machine_label(mkey)}", fontsize=10)
        ax.grid(True, axis="x", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return True


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", metavar="DIR",
                    help="folder of benchmark *.json files")
    ap.add_argument("--out", metavar="DIR",
                    help="where report.md and the PNGs go (default: DIR)")
    ap.add_argument("--title", default="cudl benchmark report",
                    help="the report's heading")
    ap.add_argument("--no-plots", action="store_true",
                    help="write report.md only (no matplotlib needed)")
    args = ap.parse_args()
    out_dir = args.out or args.dir

    if not os.path.isdir(args.dir):
        print(f"report.py: {args.dir}: not a directory", file=sys.stderr)
        return 1
    try:
        ops_runs, train_runs = load_dir(args.dir)
    except Malformed as e:
        print(f"report.py: malformed benchmark file {e}", file=sys.stderr)
        return 1
    if not ops_runs and not train_runs:
        print(f"report.py: no {OPS_SCHEMA} or {TRAIN_SCHEMA} files in "
              f"{args.dir}", file=sys.stderr)
        return 1

    notes = consistency_notes(ops_runs, train_runs)
    ops = join_ops(ops_runs, notes)
    train = join_train(train_runs, notes)

    os.makedirs(out_dir, exist_ok=True)
    status = 0
    plots = []
    plt = None if args.no_plots else import_pyplot()
    if args.no_plots:
        plot_note = "Plots skipped (`--no-plots`)."
    elif plt is None:
        msg = ("python3-matplotlib (Debian) is needed for the plots; "
               "use --no-plots to skip")
        print(f"report.py: {msg}", file=sys.stderr)
        plot_note = "Plots skipped: matplotlib is not installed."
        status = 3
    else:
        def at(name):
            return os.path.join(out_dir, name)
        drawn = [
            ("train_throughput.png", "training throughput against batch size",
             plot_train(plt, train, at("train_throughput.png"))),
            ("bandwidth.png", "GB/s against bytes moved, with the ceilings",
             plot_bandwidth(plt, ops, ops_runs, at("bandwidth.png"))),
            ("ops_ratio.png", "PyTorch ms / cudl ms per op and pass",
             plot_ratios(plt, ops, at("ops_ratio.png"))),
        ]
        plots = [(f, what) for f, what, ok in drawn if ok]
        missing = [f for f, _, ok in drawn if not ok]
        plot_note = (f"Not drawn for lack of data: {', '.join(missing)}."
                     if missing else "")

    md = [f"# {args.title}", ""]
    md += runs_section(ops_runs, train_runs, notes)
    md += targets_section(ops, train)
    if train:
        md += train_section(train)
    if ops:
        md += ops_section(ops)
    md += ["## Plots", ""]
    for f, what in plots:
        md += [f"![{what}]({f})", ""]
    if plot_note:
        md += [plot_note, ""]
    with open(os.path.join(out_dir, "report.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(md).rstrip("\n") + "\n")
    print(f"report.py: wrote {os.path.join(out_dir, 'report.md')}"
          + "".join(f", {f}" for f, _ in plots))
    return status


if __name__ == "__main__":
    sys.exit(main())
