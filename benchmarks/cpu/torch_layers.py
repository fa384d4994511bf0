#!/usr/bin/env python3
"""PyTorch's CPU convolution and linear layers on the shapes bench_layers
times (benchmarks/cpu/bench_layers.cpp), measured the same way: the median of
repeated calls after two warm-up calls, for at least --min-time seconds and
3 calls, turned into GFLOP/s with the same flop counts.

    /usr/bin/python3 benchmarks/cpu/torch_layers.py [--min-time S] [--threads N] [--json PATH]

Needs Debian's python3-torch (1.13). The backward passes call
torch.ops.aten.convolution_backward with one output requested at a time, so
each pass is timed alone, as bench_layers times cudl's.
"""
import argparse
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# (name, n, c, h, w, k, r, s, stride, pad, groups): keep in step with
# kConvShapes in bench_layers.cpp.
CONV_SHAPES = [
    ("resnet20.conv1 3->16 32x32", 128, 3, 32, 32, 16, 3, 3, 1, 1, 1),
    ("resnet20.stage1 16->16 32x32", 128, 16, 32, 32, 16, 3, 3, 1, 1, 1),
    ("resnet20.stage2.down 16->32 s2", 128, 16, 32, 32, 32, 3, 3, 2, 1, 1),
    ("resnet20.stage2.proj 1x1 s2", 128, 16, 32, 32, 32, 1, 1, 2, 0, 1),
    ("resnet20.stage2 32->32 16x16", 128, 32, 16, 16, 32, 3, 3, 1, 1, 1),
    ("resnet20.stage3.down 32->64 s2", 128, 32, 16, 16, 64, 3, 3, 2, 1, 1),
    ("resnet20.stage3 64->64 8x8", 128, 64, 8, 8, 64, 3, 3, 1, 1, 1),
    ("smallcnn.conv1 1->32 28x28", 128, 1, 28, 28, 32, 3, 3, 1, 1, 1),
    ("smallcnn.conv2 32->64 14x14", 128, 32, 14, 14, 64, 3, 3, 1, 1, 1),
]
# (name, rows, in, out): kLinearShapes.
LINEAR_SHAPES = [
    ("resnet20.fc 64->10", 128, 64, 10),
    ("smallcnn.fc1 3136->128", 128, 3136, 128),
    ("smallcnn.fc2 128->10", 128, 128, 10),
    ("mlp 784->256", 128, 784, 256),
]


def time_it(fn, min_time):
    fn()
    fn()
    times = []
    start = time.perf_counter()
    while len(times) < 3 or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-time", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads (default: all cores)")
    parser.add_argument("--json")
    args = parser.parse_args()
    import os
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    out = open(args.json, "w") if args.json else None
    impl = f"PyTorch {torch.__version__}"
    print(f"threads: {torch.get_num_threads()}, mkldnn: "
          f"{torch.backends.mkldnn.is_available()}", file=sys.stderr)

    def report(layer, pass_, flops, seconds):
        gflops = flops / seconds * 1e-9
        print(f"| {layer:<32} | {pass_:<15} | {impl:<22} | {seconds * 1e3:9.3f}"
              f" | {gflops:8.1f} |")
        if out:
            out.write(json.dumps({"layer": layer, "pass": pass_, "impl": impl,
                                  "ms": round(seconds * 1e3, 4),
                                  "gflops": round(gflops, 2)}) + "\n")

    with torch.no_grad():
        for name, n, c, h, w, k, r, s, stride, pad, groups in CONV_SHAPES:
            x = torch.rand(n, c, h, w) * 2 - 1
            wt = torch.rand(k, c // groups, r, s) * 2 - 1
            b = torch.rand(k) * 2 - 1
            y = F.conv2d(x, wt, b, stride, pad, 1, groups)
            flops = 2.0 * y.numel() * (c // groups) * r * s
            report(name, "forward", flops, time_it(
                lambda: F.conv2d(x, wt, b, stride, pad, 1, groups), args.min_time))
            for pass_, mask in (("backward data", [True, False, False]),
                                ("backward filter", [False, True, False])):
                report(name, pass_, flops, time_it(
                    lambda: torch.ops.aten.convolution_backward(
                        y, x, wt, None, [stride] * 2, [pad] * 2, [1, 1], False,
                        [0, 0], groups, mask), args.min_time))
        for name, rows, fin, fout in LINEAR_SHAPES:
            x = torch.rand(rows, fin)
            wt = torch.rand(fout, fin)
            b = torch.rand(fout)
            dy = torch.rand(rows, fout)
            flops = 2.0 * rows * fin * fout
            report(name, "forward", flops,
                   time_it(lambda: F.linear(x, wt, b), args.min_time))
            report(name, "backward data", flops,
                   time_it(lambda: dy.mm(wt), args.min_time))
            report(name, "backward weight", flops,
                   time_it(lambda: (dy.t().mm(x), dy.sum(0)), args.min_time))
    if out:
        out.close()


if __name__ == "__main__":
    main()
