#!/usr/bin/python3
"""Training throughput of PyTorch on the CPU for a zoo model, the peer of
`cudl train`'s images/s (benchmarks/models.py holds the same models).

    /usr/bin/python3 benchmarks/cpu/torch_train.py --model small-cnn \\
        --channels 1 --size 28 --batch 128 --steps 100 [--threads N]

Times training steps (forward, cross-entropy, backward, SGD with momentum
0.9 and weight decay 5e-4: what `cudl train` runs by default) on random
batches already in memory, so that data loading is not measured (cudl's
loader prepares batches on a background thread). Reports the median
images/s over the steps after 5 warm-up steps. Needs Debian's
python3-torch.
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import models  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="small-cnn")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--size", type=int, default=28)
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args()
    torch.set_num_threads(args.threads or os.cpu_count())
    torch.manual_seed(0)
    name = args.model.replace("-", "_")
    model = models.by_name(name, in_channels=args.channels,
                           classes=args.classes,
                           input_size=(args.size, args.size))
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9,
                          weight_decay=5e-4)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    times = []
    for step in range(args.steps + 5):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()
        if step >= 5:
            times.append(time.perf_counter() - t0)
    median = statistics.median(times)
    print(f"PyTorch {torch.__version__} {args.model} batch {args.batch}, "
          f"{torch.get_num_threads()} threads: {args.batch / median:.0f} "
          f"images/s (median of {len(times)} steps, {median * 1e3:.1f} ms)")


if __name__ == "__main__":
    main()
