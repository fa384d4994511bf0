#!/usr/bin/python3
"""Plot the JSON an experiment of chapter.c wrote (docs/experiments.md).

    python3 examples/experiments/plot.py RESULT.json OUT.png

Needs matplotlib (Debian: python3-matplotlib).
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# The figure is written as cudl-plot writes its own (tools/cudl_plot.py):
# complete or not at all, never over its input.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "tools"))
from cudl_plot import save_figure  # noqa: E402


def boolean(doc, ax):
    """Mean training loss over seeds, per function and model."""
    curves = {}
    for run in doc["runs"]:
        curves.setdefault((run["function"], run["model"]), []).append(run["loss"])
    colours = {"and": "tab:blue", "or": "tab:green", "xor": "tab:red"}
    for (function, model), runs in sorted(curves.items()):
        mean = [sum(v) / len(v) for v in zip(*runs)]
        steps = [50 * i for i in range(len(mean))]
        ax.plot(steps, mean, color=colours[function],
                linestyle="-" if model == "one-hidden" else "--",
                label=f"{function.upper()}, {model} ({len(runs)} seeds)")
    ax.axhline(0.6931, color="grey", linewidth=0.8, linestyle=":")
    ax.text(0, 0.75, "ln 2: p = 0.5 for every input", color="grey", fontsize=8)
    ax.set_yscale("log")
    ax.set_xlabel("SGD step (lr 0.5, all four inputs per step)")
    ax.set_ylabel("binary cross-entropy")
    ax.set_title("Boolean functions with and without a hidden layer")
    ax.legend(fontsize=8)


def vanishing(doc, ax):
    """Weight-gradient norm per layer, input side on the left."""
    styles = {"sigmoid": "tab:red", "tanh": "tab:orange", "relu": "tab:blue"}
    for run in doc["runs"]:
        norms = run["weight_grad_norm"]
        layers = list(range(1, len(norms) + 1))
        ax.plot(layers, norms, marker="o", markersize=3,
                color=styles[run["activation"]],
                linestyle="-" if run["init"] != "default" else "--",
                label=f"{run['activation']}, {run['init']} init")
    ax.set_yscale("log")
    ax.set_xlabel("linear layer (1 = next to the input, 21 = the output layer)")
    ax.set_ylabel("L2 norm of the weight gradient")
    ax.set_title(f"{doc['depth']} hidden layers of {doc['width']}: gradients "
                 f"at initialisation (mean of {doc['batches']} batches)")
    ax.legend(fontsize=8)


def dying(doc, ax):
    """Dead units (mean over the hidden layers) against the learning rate,
    and the final loss on a second axis."""
    styles = {"relu": "tab:blue", "leaky_relu": "tab:orange",
              "prelu": "tab:green"}
    loss_ax = ax.twinx()
    for act, colour in styles.items():
        runs = [r for r in doc["runs"] if r["activation"] == act
                and not r["diverged"]]
        lrs = [r["lr"] for r in runs]
        dead = [100 * sum(r["dead_fraction"]) / len(r["dead_fraction"])
                for r in runs]
        ax.plot(lrs, dead, marker="o", color=colour, label=f"{act}: dead units")
        loss_ax.plot(lrs, [r["final_loss"] for r in runs], marker="x",
                     linestyle=":", color=colour, label=f"{act}: final loss")
    ax.set_xscale("log")
    loss_ax.set_yscale("log")
    ax.set_xlabel(f"learning rate ({doc['optimizer']}, {doc['steps']} steps "
                  f"of {doc['batch']})")
    ax.set_ylabel(f"% units never active in the last {doc['window']} steps")
    loss_ax.set_ylabel("final training loss (dotted)")
    ax.set_title("Dying ReLUs: 784-256x3-10 MLP on Fashion-MNIST")
    lines = ax.get_legend_handles_labels()
    more = loss_ax.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7,
              loc="upper left")


def init(doc, ax):
    """Distinct hidden units and training accuracy, zero against random."""
    runs = doc["runs"]
    names = [r["init"] for r in runs]
    ax.bar([0, 1], [r["distinct_units"] for r in runs], width=0.6,
           color=["tab:red", "tab:blue"])
    for i, r in enumerate(runs):
        ax.text(i, r["distinct_units"] + 0.5,
                f"{r['distinct_units']} of {doc['width']} distinct\n"
                f"train accuracy {r['train_accuracy']:.3f}",
                ha="center", fontsize=9)
    ax.set_xticks([0, 1], [f"{n} initialisation" for n in names])
    ax.set_ylim(0, doc["width"] * 1.3)
    ax.set_ylabel("distinct hidden units after training")
    ax.set_title(f"784-{doc['width']}-10 {doc['activation']} MLP, "
                 f"{doc['steps']} SGD steps: zeros never break the symmetry")


def overfit(doc, ax):
    """Train and test accuracy per regulariser (seed 1), the unregularised
    seeds' spread, and the ensemble."""
    runs = doc["runs"]
    names = []
    train, test = [], []
    for r in runs:
        if r["regulariser"] == "none" and r["seed"] != 1:
            continue
        names.append(r["regulariser"])
        train.append(r["train_accuracy"])
        test.append(r["test_accuracy"])
    plain = [r["test_accuracy"] for r in runs if r["regulariser"] == "none"]
    ens = doc["ensemble"]
    names.append(f"ensemble of {ens['models']}")
    train.append(float("nan"))
    test.append(ens["test_accuracy"])
    xs = range(len(names))
    ax.bar([x - 0.2 for x in xs], train, width=0.4, color="tab:grey",
           label="train accuracy (the 1000 images)")
    ax.bar([x + 0.2 for x in xs], test, width=0.4, color="tab:blue",
           label="test accuracy (10000 images)")
    ax.axhspan(min(plain), max(plain), color="tab:blue", alpha=0.15,
               label=f"test accuracy of {len(plain)} unregularised seeds")
    for x, t in zip(xs, test):
        ax.text(x + 0.2, t + 0.003, f"{t:.3f}", ha="center", fontsize=8)
    ax.set_xticks(list(xs), names, rotation=15, fontsize=8)
    ax.set_ylim(0.75, 1.02)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Overfitting {doc['train_images']} Fashion-MNIST images "
                 f"({doc['epochs']} epochs)")
    ax.legend(fontsize=8, loc="upper right")


def degradation(doc, ax):
    """Training error against steps: plain nets dashed, ResNets solid."""
    colours = {"20": "tab:blue", "56": "tab:red"}
    for run in doc["runs"]:
        kind, depth = run["model"].split("-")
        errors = run["train_error"]
        steps = [doc["every"] * (i + 1) for i in range(len(errors))]
        ax.plot(steps, [100 * e for e in errors], color=colours[depth],
                linestyle="-" if kind == "resnet" else "--", label=run["model"])
    ax.set_xlabel(f"training step (batch {doc['batch']}; {doc['optimizer']})")
    ax.set_ylabel(f"training error %, batches of the last {doc['every']} steps")
    ax.set_title("Degradation: plain nets (dashed) against ResNets (solid), "
                 "Fashion-MNIST")
    ax.set_ylim(0, None)
    ax.legend(fontsize=8)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    doc = json.load(open(sys.argv[1]))
    fig, ax = plt.subplots(figsize=(8, 5))
    {"boolean": boolean, "vanishing": vanishing, "dying": dying,
     "init": init, "overfit": overfit, "degradation": degradation}[doc["experiment"]](doc, ax)
    ax.grid(True, which="major", alpha=0.3)
    fig.tight_layout()
    save_figure(fig, sys.argv[2], [sys.argv[1]], dpi=100)
    print(f"plot.py: wrote {sys.argv[2]}")


if __name__ == "__main__":
    main()
