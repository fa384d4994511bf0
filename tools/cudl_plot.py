#!/usr/bin/python3
"""Draw the loss and accuracy curves of cudl training runs to a PNG.

    cudl-plot RUN_DIR|METRICS.jsonl [...] -o curves.png [--title TEXT]

Each input is the metrics file `cudl train --metrics` wrote, or a run
directory holding one as metrics.jsonl (train with --metrics
OUT/metrics.jsonl). Two panels, loss and accuracy against the epoch: the
training curve solid, validation (--val-split) dashed, test dotted (each
epoch with --test-every-epoch, else the one evaluation at the end, a
marker); several runs on one figure, one colour each, for comparison.
The line schema is docs/cli.md's.

The figure is written to a temporary beside the output and renamed over it
when complete; an output that is one of the inputs is refused. A metrics
line that is not what the schema says is a one-line error and exit status
1 (2: a wrong command line). A line a killed run left cut short (it
starts with "{" and has no closing "}") is skipped, with a note.

Needs matplotlib (Debian: python3-matplotlib). Installed as cudl-plot;
examples/experiments/plot.py shares its figure writing (save_figure).
"""
import argparse
import json
import os
import stat
import sys
import tempfile

PROG = "cudl-plot"


class MetricsError(Exception):
    """A metrics file that cannot be drawn: its one-line reason."""


class OutputError(Exception):
    """An output path the figure must not be written to: why."""


def fail(message, status):
    print(f"{PROG}: {message}", file=sys.stderr)
    sys.exit(status)


def metrics_path(arg):
    if os.path.isdir(arg):
        path = os.path.join(arg, "metrics.jsonl")
        if not os.path.exists(path):
            raise MetricsError(f"{arg} is a directory without metrics.jsonl "
                               "(train with --metrics DIR/metrics.jsonl)")
        return path
    return arg


def number(line, where, key, required=True):
    """line[key] as a float: a JSON number, or null (not a number then)."""
    if key not in line:
        if required:
            raise MetricsError(f"{where}: no \"{key}\"")
        return None
    v = line[key]
    if v is None:
        return float("nan")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise MetricsError(f"{where}: \"{key}\" is {json.dumps(v)}, not a number")
    return float(v)


def integer(line, where, key):
    v = line.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise MetricsError(f"{where}: \"{key}\" is {json.dumps(v)}, "
                           "not an integer from 0")
    return v


def read_run(path):
    """The epochs of one metrics file: {epoch: {key: value}}, the end line's
    test figures (or None), and how many cut-short lines were skipped."""
    epochs, end, torn = {}, None, 0
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise MetricsError(f"cannot read {path}: "
                           f"{getattr(e, 'strerror', None) or e}")
    for number_, raw in enumerate(text.split("\n"), start=1):
        where = f"{path}:{number_}"
        if raw.strip() == "":
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError as e:
            if raw.lstrip().startswith("{") and not raw.rstrip().endswith("}"):
                torn += 1
                continue
            raise MetricsError(f"{where}: not JSON ({e.msg} at column {e.colno})")
        if not isinstance(line, dict):
            raise MetricsError(f"{where}: not a JSON object")
        kind = line.get("type")
        if kind is None:  # lines of cudl before the "type" field
            kind = ("epoch" if "train_loss" in line else
                    "diagnostics" if "layers" in line else
                    "step" if "loss" in line else None)
        if kind == "epoch":
            e = integer(line, where, "epoch")
            row = {k: number(line, where, k) for k in ("train_loss", "train_accuracy")}
            for pair in (("val_loss", "val_accuracy"), ("test_loss", "test_accuracy")):
                if pair[0] in line or pair[1] in line:
                    for k in pair:
                        row[k] = number(line, where, k)
            epochs[e] = row
        elif kind == "end":
            e = integer(line, where, "epoch")
            end = {"epoch": e,
                   "test_loss": number(line, where, "test_loss"),
                   "test_accuracy": number(line, where, "test_accuracy")}
        elif kind in ("run", "step", "diagnostics"):
            pass
        else:
            raise MetricsError(f"{where}: a line of unknown type "
                               f"{json.dumps(line.get('type'))}")
    if not epochs and end is None:
        raise MetricsError(f"{path}: no epoch or end line to draw")
    return epochs, end, torn


def label_of(arg):
    arg = arg.rstrip("/")
    base = os.path.basename(arg)
    if base == "metrics.jsonl":
        return os.path.basename(os.path.dirname(os.path.abspath(arg))) or base
    return base[:-6] if base.endswith(".jsonl") else base


def draw(runs, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (label, epochs, end) in enumerate(runs):
        colour = colours[i % len(colours)]
        xs = sorted(epochs)
        for ax, what in ((loss_ax, "loss"), (acc_ax, "accuracy")):
            for split, style in (("train", "-"), ("val", "--"), ("test", ":")):
                key = f"{split}_{what}"
                points = [(e, epochs[e][key]) for e in xs if key in epochs[e]]
                if len(points) > 1:
                    ax.plot([p[0] for p in points], [p[1] for p in points],
                            linestyle=style, color=colour,
                            label=f"{label} {split}")
                elif len(points) == 1:
                    ax.plot([points[0][0]], [points[0][1]], marker="o",
                            linestyle="none", color=colour,
                            label=f"{label} {split}")
            key = f"test_{what}"
            if end is not None and not any(key in epochs[e] for e in xs):
                ax.plot([end["epoch"]], [end[key]], marker="*", markersize=10,
                        linestyle="none", color=colour,
                        label=f"{label} test (end)")
    loss_ax.set_ylabel("cross-entropy loss")
    acc_ax.set_ylabel("accuracy")
    for ax in (loss_ax, acc_ax):
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig, plt


def save_figure(fig, path, inputs=(), dpi=100):
    """Write fig as PNG to path without ever leaving a partial file: to a
    temporary beside it (a link's target), renamed over it once complete.
    A character device or FIFO is written in place (it cannot be replaced);
    anything else that is not a regular file, and any of `inputs`, is
    refused with OutputError."""
    target = os.path.realpath(path)
    for source in inputs:
        if os.path.exists(source) and os.path.exists(target) and \
                os.path.samefile(source, target):
            raise OutputError(f"-o {path} is the input {source}: "
                             "the figure needs a file of its own")
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        with open(target, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
        return
    if mode is not None and not stat.S_ISREG(mode):
        raise OutputError(f"-o {path} is in the way: not a regular file")
    directory = os.path.dirname(target) or "."
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".tmp.",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog=PROG, description="Loss and accuracy curves of cudl training "
        "runs (train, validation, test) to a PNG; several runs on one figure.")
    parser.add_argument("inputs", nargs="+", metavar="RUN_DIR|METRICS.jsonl")
    parser.add_argument("-o", "--output", required=True, metavar="PNG")
    parser.add_argument("--title", default="")
    args = parser.parse_args(argv)
    runs, paths = [], []
    try:
        for arg in args.inputs:
            path = metrics_path(arg)
            epochs, end, torn = read_run(path)
            if torn:
                print(f"{PROG}: {path}: skipped {torn} line(s) a killed run "
                      "cut short", file=sys.stderr)
            runs.append((label_of(arg), epochs, end))
            paths.append(path)
    except MetricsError as e:
        fail(str(e), 1)
    try:
        fig, plt = draw(runs, args.title)
        save_figure(fig, args.output, paths)
        plt.close(fig)
    except OutputError as e:
        fail(str(e), 2)
    except OSError as e:
        fail(f"writing {args.output} failed: {e.strerror or e}", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
