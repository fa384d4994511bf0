#!/usr/bin/python3
"""PyTorch reference of cudl's benchmark harness (docs/benchmarks.md).

Times the operators of `cudl bench ops` and the training steps of
`cudl bench train` in PyTorch, on the same cases, measured the same way, and
writes the same JSON schema with "tool": "pytorch", so that
benchmarks/report.py can put cudl's figures beside PyTorch's.

    python3 benchmarks/torch_ref.py ops [--device cpu|cuda] [--size cifar|large|all]
        [--sweep] [--ops relu,conv2d,...] [--samples N] [--min-sample-ms M]
        [--max-seconds S] [--threads T] [--tf32 [on|off|default]] [--graphs]
        [--compile] --json PATH
    python3 benchmarks/torch_ref.py train [--model small-cnn,resnet20,...]
        [--batch 32,128,512] [--inputs 1x28x28,3x32x32] [--modes eager,graphs,compile]
        [--precisions fp32,bf16,fp16] [--layouts auto|nchw,nhwc] [--classes 10]
        [--steps N --warmup W] [--time-budget S] [--device cpu|cuda] [--threads T]
        [--tf32 [on|off|default]] --json PATH | --json-dir DIR
    python3 benchmarks/torch_ref.py infer [--model resnet20] [--batch 1,8,64]
        [--inputs 3x32x32] [--precision fp32|bf16|fp16] [--layout nchw|nhwc]
        [--samples N --warmup W] [--device cpu|cuda] [--threads T] [--json PATH]

Runs with Debian's python3-torch 1.13 on the CPU (/usr/bin/python3) and with
PyTorch 2.x on a GPU. Modes a version or device lacks (torch.compile before
2.0, CUDA graphs without CUDA, an autocast dtype the device or version does
not compute in) are skipped with a message and give no result, never a
figure under their name; an operator that fails on one version is skipped
the same way.

`train` runs every combination of the models, inputs, batches, modes,
precisions and layouts asked for (a "point") in one process, and writes one
JSON object per point. Its defaults are what users run: on the GPU eager,
the whole step in a CUDA graph, and torch.compile, each in FP32 with
PyTorch's default TF32 setting (recorded, not changed: it allows TF32 in
cuDNN convolutions) and in bf16 and fp16 automatic mixed precision
(torch.autocast, fp16 with a GradScaler) with channels-last; on the CPU eager
FP32 and bf16 autocast, each in NCHW and channels-last.

`infer` times a zoo model's forward on one batch, in one precision (fp32, or
bf16/fp16 under torch.autocast) and layout, the ways PyTorch users deploy it:
eval mode under torch.no_grad, torch.inference_mode, the frozen TorchScript
model (torch.jit.optimize_for_inference in fp32, which folds batch norm into
the convolutions; traced under autocast and frozen in 16 bits) and, on a GPU,
the forward captured in a CUDA graph. A variant this PyTorch cannot run is
listed with its reason and no figures.

What is timed. Eager PyTorch, as a user runs it: Python dispatch included.
Forward passes call the public functions, with out= where ATen has a real
out= kernel for the backend (the generated out= wrappers compute into a new
tensor and copy, which would add a pass over memory, so they are not used);
elsewhere each call allocates from PyTorch's caching allocator (cheap, and
what users get). Backward passes call the aten backward op that autograd
would run (threshold_backward, convolution_backward, ...), so kernel is
compared with kernel; each is checked once against torch.autograd.grad, and
where the direct op is missing or disagrees, torch.autograd.grad itself is
timed and the result says so in "note". --graphs adds each case captured in a
CUDA graph (impl "pytorch-graphs": no Python, no launch overhead beyond the
replay); --compile adds torch.compile of the same functional call
(impl "pytorch-compile").

On the GPU, cuDNN autotuning (torch.backends.cudnn.benchmark) is on, as cudl
times cuDNN's candidate algorithms once per shape (src/cuda/cuda_conv.c);
--no-cudnn-benchmark turns it off. `ops` compares kernels with cudl's, so
TF32 is off for both cuBLAS and cuDNN there unless --tf32; `train` leaves
PyTorch's default in force unless --tf32 on|off.

On the CPU: torch.set_num_threads(--threads, default all cores). The JSON
records the BLAS PyTorch calls (Debian's build goes through the libblas.so.3
alternative, OpenBLAS when libopenblas0 is installed; its convolutions use
the bundled oneDNN) and the malloc in use ("malloc": LD_PRELOAD when it
names an allocator, else "glibc" with any GLIBC_TUNABLES). Eager PyTorch
allocates most outputs per call, and glibc serves blocks over 32 MiB with
mmap and unmaps them on free, so every call on a large tensor page-faults
its output afresh: batch norm's forward on [256, 64, 32, 32] ran 3x slower
than with the glibc tuning below (one thread, on the 2-core development
machine). With Debian's libjemalloc2 installed (it is not on the
development machine as of this writing):

    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \\
        /usr/bin/python3 benchmarks/torch_ref.py ops --json torch_ops.json

or, with glibc alone, keep freed blocks in the heap:

    GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184 \\
        /usr/bin/python3 benchmarks/torch_ref.py ops --json torch_ops.json

Inputs are drawn from torch.manual_seed(0) per case; batches for `train` are
random and already on the device, so data loading is not measured.
"""

import argparse
import contextlib
import datetime
import gc
import json
import math
import os
import platform
import re
import resource
import statistics
import sys
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

aten = torch.ops.aten
F32 = 4  # bytes of every tensor the figures count (float32; labels int32)

# ---------------------------------------------------------------------------
# The cases of docs/benchmarks.md.

X_SHAPES = {"cifar": [128, 16, 32, 32], "large": [256, 64, 64, 64]}
CONV_SHAPES = {
    "cifar": [([128, 16, 32, 32], [16, 16, 3, 3]),
              ([128, 32, 16, 16], [32, 32, 3, 3]),
              ([128, 64, 8, 8], [64, 64, 3, 3])],
    "large": [([64, 64, 56, 56], [64, 64, 3, 3])],
}
LINEAR_SHAPES = {"cifar": ([128, 1024], [1024, 1024]),
                 "large": ([4096, 4096], [4096, 4096])}
LOGITS_SHAPES = {"cifar": [128, 10], "large": [65536, 1000]}
OPTIMIZER_SIZES = {"cifar": 272192, "large": 67108864}
SWEEP_K = [1, 4, 16, 64, 256, 1024]

ACTIVATIONS = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "prelu", "rrelu"]
OPS = ACTIVATIONS + ["dropout", "max_pool2d", "avg_pool2d", "global_avg_pool",
                     "batchnorm", "batchnorm_inference", "add", "mse_loss",
                     "cross_entropy", "conv2d", "linear", "sgd", "adam", "copy"]

LEAKY_ALPHA = 0.01
ELU_ALPHA = 1.0
RRELU_LOWER, RRELU_UPPER = 1.0 / 8, 1.0 / 3
DROPOUT_P = 0.5
BN_MOMENTUM, BN_EPS = 0.1, 1e-5
SGD_LR, SGD_MOMENTUM, SGD_WD = 0.05, 0.9, 5e-4
ADAM_LR = 1e-3

COPY_BYTES = 512 << 20
GEMM_SIZE = {"cuda": 4096, "cpu": 2048}

EPILOG = """\
figures (ops):
  median_ms, min_ms   median and fastest over samples of the time per call; a sample
                      is `iterations` back-to-back calls between two timestamps (CUDA
                      events on the GPU, time.perf_counter on the CPU), `iterations`
                      chosen after warm-up so that a sample lasts >= --min-sample-ms
  samples             samples taken (fewer than --samples when a case passed
                      --max-seconds)
  bytes               what the pass must move, by docs/benchmarks.md's formulas (each
                      input read once, each output written once, f32), not what
                      PyTorch's kernels actually move (max pooling also writes int64
                      indices, cross-entropy uses int64 labels, ...)
  gbps                bytes / median time, 10^9 bytes/s
  flops, gflops       2 x multiply-adds of convolution and linear passes; per second
  ceiling             "copy" (memory-bound) or "gemm" (convolution, linear)
  fraction_of_ceiling gbps / copy_gbps or gflops / gemm_gflops
  ceilings.copy_gbps  dst.copy_(src) of 512 MiB: bytes read + written per second
  ceilings.gemm_gflops torch.mm of two square gemm_size matrices (4096 on the GPU,
                      2048 on the CPU), FP32 (TF32 only with --tf32)
  impl                pytorch (eager), pytorch-graphs (--graphs), pytorch-compile
                      (--compile); "note" says when torch.autograd.grad was timed
                      instead of a direct aten backward op
figures (train), one JSON object per point (model, input, batch, mode,
precision, layout):
  images_per_second   batch / median step time; a step is forward, cross-entropy,
                      backward and SGD (lr 0.05, momentum 0.9, weight decay 5e-4)
  step_ms_median/min/max  over --steps single steps after --warmup untimed ones
  mode, impl          eager (pytorch), graphs (pytorch-graphs: the step replayed
                      from a CUDA graph; "graph_capture" says what it holds),
                      compile (pytorch-compile: torch.compile of the model, default
                      mode; "warmup_seconds" includes the compilation)
  precision           fp32, or bf16/fp16 automatic mixed precision ("autocast";
                      "grad_scaler": fp16's dynamic loss scaling)
  layout              nchw, or nhwc (channels-last weights and input)
  tf32, tf32_settings TF32 allowed in convolutions or matmuls, and the settings
                      read back (PyTorch's default unless --tf32 on|off)
  cudnn               torch.backends.cudnn.version() (91900 = 9.19.0)
  peak_memory_bytes   torch.cuda.max_memory_allocated during the steps on the GPU;
                      the process's peak resident set on the CPU (in a run of
                      several points, the peak so far: "peak_memory_scope")
  peak_host_memory_bytes  the process's peak resident set (getrusage)
  flops_per_image     3 x the forward FLOPs of the convolutions and linear layers
                      (forward, backward data, backward filter), counted by hooks
  achieved_gflops     flops_per_image x images_per_second
  gemm_gflops         the torch.mm ceiling (FP32, or TF32 where matmuls allow it),
                      measured once per run
  flop_utilisation    achieved_gflops / gemm_gflops
"""


def say(*args):
    print(*args, file=sys.stderr, flush=True)


def sig(x, digits=6):
    """Rounded for the JSON: timings are not good to more digits."""
    if x is None or x == 0 or not math.isfinite(x):
        return x
    return float(f"{x:.{digits}g}")


def numel(shape):
    return int(math.prod(shape))


# ---------------------------------------------------------------------------
# What ran: recorded in the JSON beside the figures.

def utc_now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


CPU_FLAGS_OF_NOTE = ["avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16", "amx_fp16"]


def cpu_vector_flags():
    """The vector and 16-bit float instruction sets the kernel reports
    (a virtual machine may hide some of the host's): without avx512_bf16 or
    amx_bf16, oneDNN converts bf16 in software, and bf16 autocast on the
    CPU measures that."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in CPU_FLAGS_OF_NOTE if flag in have]
    except OSError:
        pass
    return None


def blas_name():
    """The BLAS behind torch.mm on the CPU. Debian's build reports
    BLAS_INFO=generic (it links whatever libblas.so.3 the alternatives
    system points to), so the library actually mapped is looked up."""
    info = ""
    m = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    if m:
        info = m.group(1)
    if "mkl" in info.lower():
        return "MKL"
    if info.lower() in ("open", "openblas"):
        return "OpenBLAS"
    a = torch.ones(8, 8)
    a.mm(a)  # the library may be loaded on first use
    try:
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "/" in line})
    except OSError:
        libs = []
    for lib in libs:
        base = os.path.basename(lib).lower()
        if "openblas" in base:
            v = re.search(r"r(\d+\.\d+\.\d+)", base)
            return "OpenBLAS" + (" " + v.group(1) if v else "")
        if "mkl" in base:
            return "MKL"
        if "blis" in base:
            return "BLIS"
    return info or "unknown"


def malloc_name():
    """LD_PRELOAD when it names an allocator, else glibc (with its tunables
    when GLIBC_TUNABLES is set)."""
    pre = os.environ.get("LD_PRELOAD", "")
    if any(k in pre for k in ("jemalloc", "tcmalloc", "mimalloc")):
        return pre
    tunables = os.environ.get("GLIBC_TUNABLES")
    return "glibc" + (f" ({tunables})" if tunables else "")


def set_fp32_math(dev, tf32):
    """FP32 or TF32 in cuBLAS and cuDNN. PyTorch's defaults differ (TF32 off
    in matmul, on in cuDNN convolutions), so both are set either way, as
    cudl's --tf32 sets both. 2.9 added fp32_precision and deprecates
    allow_tf32; 1.13 has only allow_tf32."""
    if dev.type != "cuda":
        return
    mode = "tf32" if tf32 else "ieee"
    try:
        torch.backends.cuda.matmul.fp32_precision = mode
        torch.backends.cudnn.conv.fp32_precision = mode
        return
    except (AttributeError, RuntimeError, TypeError, ValueError):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def tf32_settings(dev):
    """What PyTorch will do with FP32 convolutions and matmuls on this GPU,
    read back after --tf32 (or PyTorch's defaults) took effect: the legacy
    booleans, which every version since 1.7 still answers with the
    effective setting, and 2.9's fp32_precision strings where they exist.
    None on the CPU, which has no TF32."""
    if dev.type != "cuda":
        return None
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 2.9 warns that allow_tf32 will go
        for key, read in (("cudnn_conv_allow_tf32", lambda: torch.backends.cudnn.allow_tf32),
                          ("cuda_matmul_allow_tf32",
                           lambda: torch.backends.cuda.matmul.allow_tf32),
                          ("float32_matmul_precision", torch.get_float32_matmul_precision),
                          ("cudnn_conv_fp32_precision",
                           lambda: torch.backends.cudnn.conv.fp32_precision),
                          ("cuda_matmul_fp32_precision",
                           lambda: torch.backends.cuda.matmul.fp32_precision)):
            try:
                out[key] = read()
            except (AttributeError, RuntimeError):
                pass  # a version without it
    return out


def tf32_on(settings, kind):
    """TF32 allowed for kind ("conv" or "matmul") by the settings read, or
    None when they do not say."""
    legacy = settings.get("cudnn_conv_allow_tf32" if kind == "conv"
                          else "cuda_matmul_allow_tf32")
    if legacy is not None:
        return bool(legacy)
    precision = settings.get(f"cudnn_{kind}_fp32_precision" if kind == "conv"
                             else "cuda_matmul_fp32_precision")
    return None if precision in (None, "none") else precision == "tf32"


def tf32_allowed(settings):
    """True when TF32 may replace FP32 anywhere a training step computes
    (convolutions or matmuls)."""
    return bool(settings) and bool(tf32_on(settings, "conv") or tf32_on(settings, "matmul"))


def tf32_label(settings):
    """"conv on, matmul off" and the like, for tables; "n/a" on the CPU."""
    if not settings:
        return "n/a"
    word = {True: "on", False: "off", None: "?"}
    return (f"conv {word[tf32_on(settings, 'conv')]}, "
            f"matmul {word[tf32_on(settings, 'matmul')]}")


def setup_device(args):
    if args.device == "cuda":
        if not torch.cuda.is_available():
            say(f"torch_ref: CUDA is not available to PyTorch {torch.__version__} here")
            sys.exit(2)
        dev = torch.device("cuda", torch.cuda.current_device())
        torch.backends.cudnn.benchmark = not args.no_cudnn_benchmark
    else:
        dev = torch.device("cpu")
    if args.threads or dev.type == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    if args.tf32 != "default":
        set_fp32_math(dev, args.tf32 == "on")
    return dev


def common_header(dev, args):
    tf32 = tf32_settings(dev)
    h = {
        "version": torch.__version__,
        "device": "cpu" if dev.type == "cpu" else f"cuda:{dev.index}",
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "date": utc_now(),
        "tf32": tf32_allowed(tf32),
        "cpu_model": cpu_model(),
        "blas": blas_name(),
        "malloc": malloc_name(),
    }
    if dev.type == "cuda":
        h["tf32_settings"] = tf32
        h["tf32_source"] = ("PyTorch's default" if args.tf32 == "default"
                            else f"--tf32 {args.tf32}")
        h["cuda"] = torch.version.cuda
        h["cudnn"] = torch.backends.cudnn.version()
        h["cudnn_benchmark"] = bool(torch.backends.cudnn.benchmark)
    else:
        h["mkldnn"] = bool(torch.backends.mkldnn.is_available())
        h["cpu_flags"] = cpu_vector_flags()
    return h


def graphs_unavailable(dev):
    """Why CUDA graphs cannot run here, or None."""
    if dev.type != "cuda":
        return "CUDA graphs need --device cuda"
    if not hasattr(torch.cuda, "CUDAGraph") or not hasattr(torch.cuda, "graph"):
        return f"PyTorch {torch.__version__} has no torch.cuda.graph"
    return None


def compile_unavailable():
    if not hasattr(torch, "compile"):
        return f"torch.compile needs PyTorch 2.x (this is {torch.__version__})"
    return None


# ---------------------------------------------------------------------------
# Timing.

class Clock:
    """Milliseconds taken by n back-to-back calls: CUDA events on the
    current stream (the GPU's time, whatever Python does meanwhile is
    included only where the GPU waits for it), perf_counter on the CPU."""

    def __init__(self, dev):
        self.cuda = dev.type == "cuda"
        if self.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.end = torch.cuda.Event(enable_timing=True)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, fn, n):
        if self.cuda:
            self.start.record()
            for _ in range(n):
                fn()
            self.end.record()
            self.end.synchronize()
            return self.start.elapsed_time(self.end)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - t0) * 1e3


def measure(clock, fn, samples, min_sample_ms, max_seconds, warmup):
    """docs/benchmarks.md's method: warm-up, then `iterations` per sample
    so that a sample lasts >= min_sample_ms, then up to `samples` samples
    (at least one) within max_seconds of the case's start."""
    t_start = time.perf_counter()
    for _ in range(warmup):
        fn()
    clock.sync()
    n = 1
    for _ in range(8):
        ms = clock.run(fn, n)
        if ms >= min_sample_ms or time.perf_counter() - t_start > max_seconds:
            break
        # One call's time overstates a short kernel's (the timestamps'
        # own latency), so grow n from measured runs until one is long enough.
        n = max(n + 1, math.ceil(n * 1.2 * min_sample_ms / max(ms, 1e-4)))
    per_call = []
    while len(per_call) < samples:
        per_call.append(clock.run(fn, n) / n)
        if time.perf_counter() - t_start > max_seconds:
            break
    return {"median_ms": statistics.median(per_call), "min_ms": min(per_call),
            "samples": len(per_call), "iterations": n}


def capture_graph(fn, warm=3):
    """fn captured in a CUDA graph, warmed up on a side stream first as
    PyTorch's documentation asks (lazy initialisation, cuDNN autotuning and
    the allocator's first blocks must not happen during capture)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warm):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g


def compile_fn(fn):
    # A fresh dynamo cache per case: the cases' callables share code objects
    # (lambdas made in one place), and past the recompilation limit dynamo
    # would silently run them eagerly.
    import torch._dynamo  # not imported by `import torch` in every 2.x
    torch._dynamo.reset()
    return torch.compile(fn, dynamic=False)


# ---------------------------------------------------------------------------
# Choosing the call to time.

def real_out(overload, dev):
    """True where the aten out= overload (e.g. "clamp_min.out") has its own
    kernel for dev's backend. Generated out= wrappers (registered from
    RegisterCompositeExplicitAutograd) run the functional op and copy, one
    more pass over memory than the functional call."""
    key = "CUDA" if dev.type == "cuda" else "CPU"
    try:
        table = torch._C._dispatch_dump_table("aten::" + overload)
    except Exception:  # a private API: without it, take the functional call
        return False
    for line in table.splitlines():
        if line.startswith(key + ":"):
            return "CompositeExplicitAutograd" not in line
    return False


def prefer_out(overload, dev, with_out, functional):
    """with_out where it has a real kernel and runs, else functional."""
    if real_out(overload, dev):
        try:
            with_out()
            return with_out
        except Exception:
            pass
    return functional


def _tensors(x):
    if isinstance(x, torch.Tensor):
        return [x]
    return [t for t in x if isinstance(t, torch.Tensor)]


def rel_error(got, want):
    got, want = _tensors(got), _tensors(want)
    if len(got) != len(want):
        return math.inf
    worst = 0.0
    for g, w in zip(got, want):
        if g.shape != w.shape:
            return math.inf
        g, w = g.float(), w.float()
        worst = max(worst, (g - w).norm().item() / (w.norm().item() + 1e-30))
    return worst


def autograd_grads(forward, inputs, wrt, dy):
    """The gradients autograd computes for forward(*inputs) with respect to
    inputs[i] for i in wrt, given dy."""
    leaves = [t.detach().clone().requires_grad_(i in wrt) for i, t in enumerate(inputs)]
    out = forward(*leaves)
    return torch.autograd.grad(out, [leaves[i] for i in wrt], dy)


def autograd_timed(forward, inputs, wrt, dy):
    """torch.autograd.grad over one recorded forward, replayed each call."""
    leaves = [t.detach().clone().requires_grad_(i in wrt) for i, t in enumerate(inputs)]
    out = forward(*leaves)
    chosen = [leaves[i] for i in wrt]
    return lambda: torch.autograd.grad(out, chosen, dy, retain_graph=True)


class Impl:
    """How one pass runs: `eager` is timed (and captured for --graphs),
    `pure` is the functional form torch.compile gets (None: not compiled)."""

    def __init__(self, eager, pure=None, note=None):
        self.eager, self.pure, self.note = eager, pure, note


def backward_impl(direct, direct_pure, reference, fallback, what):
    """The direct aten backward call if it runs and agrees with
    `reference()` (autograd's gradients, or the formula for the random
    ops), else torch.autograd.grad (`fallback()` builds it)."""
    try:
        got = direct()
        err = rel_error(got, reference())
        if err <= 1e-2:
            return Impl(direct, direct_pure)
        why = f"it differs from autograd by {err:.1e}"
    except Exception as e:  # missing or changed signature in this version
        why = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
    say(f"  {what}: timing torch.autograd.grad ({why})")
    return Impl(fallback(), None,
                f"torch.autograd.grad timed: the direct aten op is unusable here ({why})")


# ---------------------------------------------------------------------------
# Setups: each returns {pass: Impl} for one case on dev. `variant` is
# "eager", "graphs" or "compile" (only the optimizers differ).

def rand(shape, dev):
    return torch.randn(shape, device=dev)


def setup_activation(op, shape, dev, variant, passes):
    x, dy = rand(shape, dev), rand(shape, dev)
    y, dx = torch.empty_like(x), torch.empty_like(x)
    out = {}
    if op == "relu":
        # ATen's relu is clamp_min(x, 0), whose out= kernel is real.
        fwd = lambda: F.relu(x)
        fwd_out = prefer_out("clamp_min.out", dev, lambda: torch.clamp_min(x, 0, out=y), fwd)
        agf = F.relu
        bwd = lambda: aten.threshold_backward(dy, x, 0)
        bwd_out = lambda: aten.threshold_backward.grad_input(dy, x, 0, grad_input=dx)
        bwd_name = "threshold_backward.grad_input"
    elif op in ("sigmoid", "tanh"):
        f = torch.sigmoid if op == "sigmoid" else torch.tanh
        fwd = lambda: f(x)
        fwd_out = prefer_out(op + ".out", dev, lambda: f(x, out=y), fwd)
        agf = f
        ys = f(x)  # these backward ops read the output, not the input
        b = aten.sigmoid_backward if op == "sigmoid" else aten.tanh_backward
        bwd = lambda: b(dy, ys)
        bwd_out = lambda: b.grad_input(dy, ys, grad_input=dx)
        bwd_name = op + "_backward.grad_input"
    elif op == "leaky_relu":
        fwd = lambda: F.leaky_relu(x, LEAKY_ALPHA)
        fwd_out = prefer_out("leaky_relu.out", dev,
                             lambda: torch._C._nn.leaky_relu(x, LEAKY_ALPHA, out=y), fwd)
        agf = lambda t: F.leaky_relu(t, LEAKY_ALPHA)
        bwd = lambda: aten.leaky_relu_backward(dy, x, LEAKY_ALPHA, False)
        bwd_out = lambda: aten.leaky_relu_backward.grad_input(dy, x, LEAKY_ALPHA, False,
                                                             grad_input=dx)
        bwd_name = "leaky_relu_backward.grad_input"
    elif op == "elu":
        fwd = lambda: F.elu(x, ELU_ALPHA)
        fwd_out = prefer_out("elu.out", dev,
                             lambda: torch._C._nn.elu(x, ELU_ALPHA, 1, 1, out=y), fwd)
        agf = lambda t: F.elu(t, ELU_ALPHA)
        # is_result False: autograd's not-in-place ELU keeps the input.
        bwd = lambda: aten.elu_backward(dy, ELU_ALPHA, 1, 1, False, x)
        bwd_out = lambda: aten.elu_backward.grad_input(dy, ELU_ALPHA, 1, 1, False, x,
                                                      grad_input=dx)
        bwd_name = "elu_backward.grad_input"
    elif op == "prelu":
        return setup_prelu(shape, dev, passes, x, dy)
    elif op == "rrelu":
        return setup_rrelu(shape, dev, passes, x, dy, y, dx)
    else:
        raise ValueError(op)
    if "forward" in passes:
        out["forward"] = Impl(fwd_out, fwd)
    if "backward" in passes:
        direct = prefer_out(bwd_name, dev, bwd_out, bwd)
        out["backward"] = backward_impl(
            direct, bwd, lambda: autograd_grads(agf, [x], [0], dy),
            lambda: autograd_timed(agf, [x], [0], dy), op + " backward")
    return out


def setup_prelu(shape, dev, passes, x, dy):
    c = shape[1]
    w = torch.full((c,), 0.25, device=dev) + 0.01 * rand((c,), dev)
    out = {}
    fwd = lambda: F.prelu(x, w)  # no out= prelu in either version
    if "forward" in passes:
        out["forward"] = Impl(fwd, fwd)
    if "backward" in passes:
        if hasattr(aten, "_prelu_kernel_backward"):
            # 2.x: prelu reshapes the slope to [C, 1, 1] and calls
            # _prelu_kernel, whose backward writes a full-size slope gradient
            # that autograd then sums to the slope's shape.
            wv = w.reshape([c] + [1] * (len(shape) - 2))
            dims = [0] + list(range(2, len(shape)))

            def bwd():
                gx, gw = aten._prelu_kernel_backward(dy, x, wv)
                return gx, gw.sum(dims)
        else:
            bwd = lambda: aten.prelu_backward(dy, x, w)  # 1.13: one op, dslope [C]
        out["backward"] = backward_impl(
            bwd, bwd, lambda: autograd_grads(F.prelu, [x, w], [0, 1], dy),
            lambda: autograd_timed(F.prelu, [x, w], [0, 1], dy), "prelu backward")
    return out


def setup_rrelu(shape, dev, passes, x, dy, y, dx):
    noise = torch.empty_like(x)
    out = {}
    # rrelu_with_noise is what F.rrelu(training=True) runs, with the noise
    # buffer preallocated instead of made per call.
    fwd = lambda: aten.rrelu_with_noise(x, noise, RRELU_LOWER, RRELU_UPPER, True)
    fwd_out = prefer_out(
        "rrelu_with_noise.out", dev,
        lambda: aten.rrelu_with_noise.out(x, noise, RRELU_LOWER, RRELU_UPPER, True, None, out=y),
        fwd)
    if "forward" in passes:
        out["forward"] = Impl(fwd_out, fwd)
    if "backward" in passes:
        fwd()  # noise of one forward, which the backward reads
        bwd = lambda: aten.rrelu_with_noise_backward(dy, x, noise, RRELU_LOWER, RRELU_UPPER,
                                                     True, False)
        bwd_out = lambda: aten.rrelu_with_noise_backward.out(
            dy, x, noise, RRELU_LOWER, RRELU_UPPER, True, False, out=dx)
        direct = prefer_out("rrelu_with_noise_backward.out", dev, bwd_out, bwd)
        agf = lambda t: F.rrelu(t, RRELU_LOWER, RRELU_UPPER, training=True)
        # Random: autograd would draw other noise, so check the formula.
        out["backward"] = backward_impl(
            direct, bwd, lambda: dy * noise, lambda: autograd_timed(agf, [x], [0], dy),
            "rrelu backward")
    return out


def setup_dropout(shape, dev, variant, passes):
    x, dy = rand(shape, dev), rand(shape, dev)
    out = {}
    # F.dropout: native_dropout (one fused kernel, bool mask) on CUDA; on the
    # CPU a bernoulli_ of a float mask and multiplications. It allocates.
    fwd = lambda: F.dropout(x, DROPOUT_P, training=True)
    if "forward" in passes:
        out["forward"] = Impl(fwd, fwd, "F.dropout" + (
            "" if dev.type == "cuda" else ": bernoulli_ of a float mask, then multiplications"))
    if "backward" in passes:
        _, mask = aten.native_dropout(x, DROPOUT_P, True)
        scale = 1.0 / (1.0 - DROPOUT_P)
        bwd = lambda: aten.native_dropout_backward(dy, mask, scale)
        agf = lambda t: F.dropout(t, DROPOUT_P, training=True)
        impl = backward_impl(
            bwd, bwd, lambda: dy * mask * scale, lambda: autograd_timed(agf, [x], [0], dy),
            "dropout backward")
        impl.note = impl.note or "native_dropout_backward (bool mask)"
        out["backward"] = impl
    return out


def setup_pool(op, shape, dev, variant, passes):
    x = rand(shape, dev)
    k, s, p = [2, 2], [2, 2], [0, 0]
    n, c, h, w = shape
    oshape = [n, c, h // 2, w // 2]
    y, dy, dx = torch.empty(oshape, device=dev), rand(oshape, dev), torch.empty_like(x)
    out = {}
    if op == "max_pool2d":
        # In training F.max_pool2d is max_pool2d_with_indices: it also writes
        # int64 indices, which the backward reads instead of x.
        idx = torch.empty(oshape, dtype=torch.int64, device=dev)
        fwd = lambda: aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)
        fwd_out = prefer_out(
            "max_pool2d_with_indices.out", dev,
            lambda: aten.max_pool2d_with_indices.out(x, k, s, p, [1, 1], False,
                                                     out=y, indices=idx), fwd)
        pure_fwd = fwd
        agf = lambda t: F.max_pool2d(t, 2, 2)
        _, saved_idx = aten.max_pool2d_with_indices(x, k, s, p, [1, 1], False)
        bwd = lambda: aten.max_pool2d_with_indices_backward(dy, x, k, s, p, [1, 1], False,
                                                            saved_idx)
        bwd_out = lambda: aten.max_pool2d_with_indices_backward.grad_input(
            dy, x, k, s, p, [1, 1], False, saved_idx, grad_input=dx)
        bwd_name = "max_pool2d_with_indices_backward.grad_input"
    else:
        fwd = lambda: F.avg_pool2d(x, 2, 2)
        fwd_out = prefer_out("avg_pool2d.out", dev,
                             lambda: aten.avg_pool2d.out(x, k, s, p, False, True, None, out=y),
                             fwd)
        pure_fwd = fwd
        agf = lambda t: F.avg_pool2d(t, 2, 2)
        bwd = lambda: aten.avg_pool2d_backward(dy, x, k, s, p, False, True, None)
        bwd_out = lambda: aten.avg_pool2d_backward.grad_input(dy, x, k, s, p, False, True, None,
                                                             grad_input=dx)
        bwd_name = "avg_pool2d_backward.grad_input"
    note = "max_pool2d_with_indices: also writes / reads int64 indices" \
        if op == "max_pool2d" else None
    if "forward" in passes:
        out["forward"] = Impl(fwd_out, pure_fwd, note)
    if "backward" in passes:
        direct = prefer_out(bwd_name, dev, bwd_out, bwd)
        impl = backward_impl(direct, bwd, lambda: autograd_grads(agf, [x], [0], dy),
                             lambda: autograd_timed(agf, [x], [0], dy), op + " backward")
        impl.note = impl.note or note
        out["backward"] = impl
    return out


def setup_global_avg_pool(shape, dev, variant, passes):
    x = rand(shape, dev)
    n, c, h, w = shape
    y, dy, dx = torch.empty([n, c, 1, 1], device=dev), rand([n, c, 1, 1], dev), torch.empty_like(x)
    out = {}
    # F.adaptive_avg_pool2d(x, 1), as ResNet calls it, is mean over H and W
    # in ATen (both versions), and mean's backward is an expand and a
    # division: no dedicated backward kernel exists to call.
    fwd = lambda: F.adaptive_avg_pool2d(x, 1)
    fwd_out = prefer_out("mean.out", dev, lambda: torch.mean(x, (2, 3), keepdim=True, out=y), fwd)
    if "forward" in passes:
        out["forward"] = Impl(fwd_out, fwd)
    if "backward" in passes:
        bwd = lambda: dy.expand_as(x) / (h * w)
        bwd_out = prefer_out("div.out", dev, lambda: torch.div(dy.expand_as(x), h * w, out=dx), bwd)
        agf = lambda t: F.adaptive_avg_pool2d(t, 1)
        impl = backward_impl(bwd_out, bwd, lambda: autograd_grads(agf, [x], [0], dy),
                             lambda: autograd_timed(agf, [x], [0], dy), "global_avg_pool backward")
        if impl.note is None:
            impl.note = "mean's autograd formula: dy.expand_as(x) / (H*W), one division kernel"
        out["backward"] = impl
    return out


def setup_batchnorm(op, shape, dev, variant, passes):
    x, dy = rand(shape, dev), rand(shape, dev)
    c = shape[1]
    w = 1.0 + 0.1 * rand((c,), dev)
    b = 0.1 * rand((c,), dev)
    rm, rv = torch.zeros(c, device=dev), torch.ones(c, device=dev)
    y = torch.empty_like(x)
    sm, si = torch.empty(c, device=dev), torch.empty(c, device=dev)
    out = {}
    # PyTorch's own batch-norm kernels. On CUDA, F.batch_norm would call
    # cuDNN instead, which `cudl bench ops` already times as impl "cudnn".
    note = "native_batch_norm (PyTorch's kernel, not cuDNN)" if dev.type == "cuda" else None
    training = op == "batchnorm"
    fwd = lambda: aten.native_batch_norm(x, w, b, rm, rv, training, BN_MOMENTUM, BN_EPS)
    if training:
        fwd_out = prefer_out(
            "native_batch_norm.out", dev,
            lambda: aten.native_batch_norm.out(x, w, b, rm, rv, True, BN_MOMENTUM, BN_EPS,
                                               out=y, save_mean=sm, save_invstd=si), fwd)
    else:
        fwd_out = fwd  # in inference the out= form would need empty statistics outputs
    if "forward" in passes:
        out["forward"] = Impl(fwd_out, fwd, note)
    if "backward" in passes:
        _, save_mean, save_invstd = aten.native_batch_norm(x, w, b, rm.clone(), rv.clone(),
                                                           True, BN_MOMENTUM, BN_EPS)
        bwd = lambda: aten.native_batch_norm_backward(dy, x, w, rm, rv, save_mean, save_invstd,
                                                      True, BN_EPS, [True, True, True])
        agf = lambda t, g, bb: F.batch_norm(t, rm.clone(), rv.clone(), g, bb, True,
                                            BN_MOMENTUM, BN_EPS)
        impl = backward_impl(bwd, bwd, lambda: autograd_grads(agf, [x, w, b], [0, 1, 2], dy),
                             lambda: autograd_timed(agf, [x, w, b], [0, 1, 2], dy),
                             "batchnorm backward")
        if impl.note is None:
            impl.note = note
        out["backward"] = impl
    return out


def setup_add(shape, dev, variant, passes):
    a, b = rand(shape, dev), rand(shape, dev)
    c = torch.empty_like(a)
    return {"forward": Impl(lambda: torch.add(a, b, out=c), lambda: a + b)}


def setup_copy(shape, dev, variant, passes):
    src, dst = rand(shape, dev), torch.empty(shape, device=dev)
    return {"forward": Impl(lambda: dst.copy_(src), lambda: src.clone())}


def setup_mse(shape, dev, variant, passes):
    x, t = rand(shape, dev), rand(shape, dev)
    dx = torch.empty_like(x)
    g = torch.ones((), device=dev)  # d(loss)/d(loss)
    out = {}
    # mse_loss.out is no help: 1.13 resizes `out` to the input's shape as
    # scratch for the elementwise loss on every call. The functional form
    # allocates that buffer instead, then reduces it.
    fwd = lambda: F.mse_loss(x, t)
    if "forward" in passes:
        out["forward"] = Impl(fwd, fwd, "allocates the elementwise loss, then its mean")
    if "backward" in passes:
        bwd = lambda: aten.mse_loss_backward(g, x, t, 1)
        direct = prefer_out("mse_loss_backward.grad_input", dev,
                            lambda: aten.mse_loss_backward.grad_input(g, x, t, 1, grad_input=dx),
                            bwd)
        agf = lambda a, b: F.mse_loss(a, b)
        out["backward"] = backward_impl(
            direct, bwd, lambda: autograd_grads(agf, [x, t], [0], g),
            lambda: autograd_timed(agf, [x, t], [0], g), "mse_loss backward")
    return out


def setup_cross_entropy(shape, dev, variant, passes):
    rows, classes = shape
    logits = rand(shape, dev)
    # nll_loss takes int64 labels only (both versions); cudl's are int32.
    labels = torch.randint(0, classes, (rows,), device=dev)
    g = torch.ones((), device=dev)
    out = {}
    # log_softmax then nll_loss, allocating the log-probabilities.
    fwd = lambda: F.cross_entropy(logits, labels)
    note = "int64 labels (PyTorch's nll_loss takes no int32)"
    if "forward" in passes:
        out["forward"] = Impl(fwd, fwd, note)
    if "backward" in passes:
        # Autograd's two kernels: nll_loss_backward (scatters into a zeroed
        # gradient of the log-probabilities), then _log_softmax_backward_data.
        logp = torch.log_softmax(logits, 1)
        _, total_weight = aten.nll_loss_forward(logp, labels, None, 1, -100)
        glogp, dx = torch.empty_like(logits), torch.empty_like(logits)

        def bwd():
            gl = aten.nll_loss_backward(g, logp, labels, None, 1, -100, total_weight)
            return aten._log_softmax_backward_data(gl, logp, 1, logits.dtype)

        def bwd_out():
            aten.nll_loss_backward.grad_input(g, logp, labels, None, 1, -100, total_weight,
                                              grad_input=glogp)
            return aten._log_softmax_backward_data.out(glogp, logp, 1, logits.dtype, out=dx)

        direct = bwd
        if real_out("nll_loss_backward.grad_input", dev) and \
                real_out("_log_softmax_backward_data.out", dev):
            direct = prefer_out("nll_loss_backward.grad_input", dev, bwd_out, bwd)
        agf = lambda t: F.cross_entropy(t, labels)
        impl = backward_impl(direct, bwd, lambda: autograd_grads(agf, [logits], [0], g),
                             lambda: autograd_timed(agf, [logits], [0], g),
                             "cross_entropy backward")
        impl.note = (impl.note + "; " if impl.note else "") + note
        out["backward"] = impl
    return out


def setup_conv(xshape, wshape, dev, variant, passes):
    x, w = rand(xshape, dev), 0.1 * rand(wshape, dev)
    fwd = lambda: F.conv2d(x, w, None, 1, 1)  # PyTorch has no out= convolution
    y = fwd()
    dy = rand(list(y.shape), dev)
    out = {"forward": Impl(fwd, fwd)}
    agf = lambda a, b: F.conv2d(a, b, None, 1, 1)
    for pass_, mask, wrt in (("backward_data", [True, False, False], 0),
                             ("backward_filter", [False, True, False], 1)):
        if pass_ not in passes:
            continue
        # One output requested at a time, so each pass is timed alone.
        bwd = (lambda m: lambda: aten.convolution_backward(
            dy, x, w, None, [1, 1], [1, 1], [1, 1], False, [0, 0], 1, m))(mask)
        out[pass_] = backward_impl(
            bwd, bwd, (lambda i: lambda: autograd_grads(agf, [x, w], [i], dy))(wrt),
            (lambda i: lambda: autograd_timed(agf, [x, w], [i], dy))(wrt), "conv2d " + pass_)
    return out


def setup_linear(xshape, wshape, dev, variant, passes):
    x, w = rand(xshape, dev), 0.03 * rand(wshape, dev)
    y = torch.empty(xshape[0], wshape[0], device=dev)
    dy = rand([xshape[0], wshape[0]], dev)
    dx, dw = torch.empty_like(x), torch.empty_like(w)
    # F.linear without bias is x @ w.t(), and autograd's backward is two
    # products: no aten linear backward op exists for dense tensors.
    note = "torch.mm, as F.linear's forward and autograd's backward formula"
    agf = lambda a, b: F.linear(a, b)
    out = {"forward": Impl(prefer_out("mm.out", dev, lambda: torch.mm(x, w.t(), out=y),
                                      lambda: F.linear(x, w)), lambda: F.linear(x, w), note)}
    for pass_, wrt, mm_out, mm in (
            ("backward_data", 0, lambda: torch.mm(dy, w, out=dx), lambda: dy.mm(w)),
            ("backward_filter", 1, lambda: torch.mm(dy.t(), x, out=dw), lambda: dy.t().mm(x))):
        if pass_ not in passes:
            continue
        impl = backward_impl(
            prefer_out("mm.out", dev, mm_out, mm), mm,
            (lambda i: lambda: autograd_grads(agf, [x, w], [i], dy))(wrt),
            (lambda i: lambda: autograd_timed(agf, [x, w], [i], dy))(wrt), "linear " + pass_)
        impl.note = impl.note or note
        out[pass_] = impl
    return out


def setup_optimizer(op, n, dev, variant, passes):
    p = torch.nn.Parameter(0.1 * rand((n,), dev))
    p.grad = 0.01 * rand((n,), dev)  # fixed: only the step is timed
    kw = {}
    if variant == "graphs" and op == "adam":
        kw["capturable"] = True  # its step count must live on the GPU
    if op == "sgd":
        opt = torch.optim.SGD([p], lr=SGD_LR, momentum=SGD_MOMENTUM, weight_decay=SGD_WD, **kw)
    else:
        opt = torch.optim.Adam([p], lr=ADAM_LR, betas=(0.9, 0.999), eps=1e-8, **kw)
    opt.step()  # creates the momentum / moment buffers outside the timing

    def step():
        opt.step()
    # The optimizers' single-tensor (1.13 CPU) and foreach paths allocate
    # temporaries per step; that is what a user's step costs.
    note = "torch.optim." + type(opt).__name__ + " step (default implementation)"
    return {"step": Impl(step, step, note)}


# ---------------------------------------------------------------------------
# The list of cases.

class Case:
    """One op on one shape: its passes (with bytes and flops) and setup."""

    def __init__(self, op, size, shape, passes, setup, ceiling="copy", weight=None):
        self.op, self.size, self.shape = op, size, shape
        self.passes = passes  # {pass: (bytes, flops)}
        self.setup, self.ceiling, self.weight = setup, ceiling, weight


def activation_case(op, size, shape, passes=("forward", "backward")):
    # prelu's slope ([C]) is not counted, as cudl bench ops does not count it.
    n = numel(shape)
    fb = {"forward": 2 * n, "backward": 3 * n}
    if op in ("rrelu",):
        fb = {"forward": 3 * n, "backward": 3 * n}  # x, noise, y / dy, noise, dx
    return Case(op, size, shape, {p: (F32 * fb[p], 0) for p in passes},
                lambda dev, v, ps: setup_activation(op, shape, dev, v, ps))


def build_cases(sizes, sweep):
    cases = []
    for size in sizes:
        X = X_SHAPES[size]
        n, N, C = numel(X), X[0], X[1]
        for op in ACTIVATIONS:
            cases.append(activation_case(op, size, X))
        cases.append(Case("dropout", size, X, {"forward": (F32 * 3 * n, 0),
                                               "backward": (F32 * 3 * n, 0)},
                          lambda dev, v, ps, X=X: setup_dropout(X, dev, v, ps)))
        q = n // 4
        for op, bwd in (("max_pool2d", 2 * n + q), ("avg_pool2d", n + q)):
            cases.append(Case(op, size, X, {"forward": (F32 * (n + q), 0),
                                            "backward": (F32 * bwd, 0)},
                              lambda dev, v, ps, X=X, op=op: setup_pool(op, X, dev, v, ps)))
        cases.append(Case("global_avg_pool", size, X,
                          {"forward": (F32 * (n + N * C), 0), "backward": (F32 * (n + N * C), 0)},
                          lambda dev, v, ps, X=X: setup_global_avg_pool(X, dev, v, ps)))
        cases.append(Case("batchnorm", size, X, {"forward": (F32 * 2 * n, 0),
                                                 "backward": (F32 * 3 * n, 0)},
                          lambda dev, v, ps, X=X: setup_batchnorm("batchnorm", X, dev, v, ps)))
        cases.append(Case("batchnorm_inference", size, X, {"forward": (F32 * 2 * n, 0)},
                          lambda dev, v, ps, X=X: setup_batchnorm("batchnorm_inference", X,
                                                                  dev, v, ps)))
        cases.append(Case("add", size, X, {"forward": (F32 * 3 * n, 0)},
                          lambda dev, v, ps, X=X: setup_add(X, dev, v, ps)))
        cases.append(Case("mse_loss", size, X, {"forward": (F32 * 2 * n, 0),
                                                "backward": (F32 * 3 * n, 0)},
                          lambda dev, v, ps, X=X: setup_mse(X, dev, v, ps)))
        L = LOGITS_SHAPES[size]
        ln, rows = numel(L), L[0]
        cases.append(Case("cross_entropy", size, L, {"forward": (F32 * (ln + rows), 0),
                                                     "backward": (F32 * (2 * ln + rows), 0)},
                          lambda dev, v, ps, L=L: setup_cross_entropy(L, dev, v, ps)))
        for xs, ws in CONV_SHAPES[size]:
            k, c, r, s = ws
            ys = [xs[0], k, xs[2], xs[3]]  # stride 1, padding 1, 3x3
            flops = 2 * numel(ys) * c * r * s
            xb, wb, yb = F32 * numel(xs), F32 * numel(ws), F32 * numel(ys)
            cases.append(Case("conv2d", size, xs,
                              {"forward": (xb + wb + yb, flops),
                               "backward_data": (yb + wb + xb, flops),
                               "backward_filter": (yb + xb + wb, flops)},
                              lambda dev, v, ps, xs=xs, ws=ws: setup_conv(xs, ws, dev, v, ps),
                              ceiling="gemm", weight=ws))
        xs, ws = LINEAR_SHAPES[size]
        flops = 2 * xs[0] * ws[0] * ws[1]
        b3 = F32 * (numel(xs) + numel(ws) + xs[0] * ws[0])
        cases.append(Case("linear", size, xs,
                          {"forward": (b3, flops), "backward_data": (b3, flops),
                           "backward_filter": (b3, flops)},
                          lambda dev, v, ps, xs=xs, ws=ws: setup_linear(xs, ws, dev, v, ps),
                          ceiling="gemm", weight=ws))
        on = OPTIMIZER_SIZES[size]
        for op, per in (("sgd", 5), ("adam", 7)):
            cases.append(Case(op, size, [on], {"step": (F32 * per * on, 0)},
                              lambda dev, v, ps, op=op, on=on: setup_optimizer(op, on, dev, v, ps)))
    if sweep:
        for k in SWEEP_K:
            X = [k, 64, 32, 32]
            n = numel(X)
            cases.append(activation_case("relu", "sweep", X))
            cases.append(Case("batchnorm", "sweep", X, {"forward": (F32 * 2 * n, 0),
                                                        "backward": (F32 * 3 * n, 0)},
                              lambda dev, v, ps, X=X: setup_batchnorm("batchnorm", X, dev, v, ps)))
            cases.append(Case("dropout", "sweep", X, {"forward": (F32 * 3 * n, 0)},
                              lambda dev, v, ps, X=X: setup_dropout(X, dev, v, ps)))
            cases.append(Case("add", "sweep", X, {"forward": (F32 * 3 * n, 0)},
                              lambda dev, v, ps, X=X: setup_add(X, dev, v, ps)))
            cases.append(Case("copy", "sweep", X, {"forward": (F32 * 2 * n, 0)},
                              lambda dev, v, ps, X=X: setup_copy(X, dev, v, ps)))
    return cases


# ---------------------------------------------------------------------------
# Ceilings.

def measure_ceilings(dev, clock, timing):
    """The copy rate and the square-GEMM rate on this device, this run."""
    # A ceiling that failed is 0 (with a message): the schema wants numbers.
    return {"copy_gbps": copy_ceiling(dev, clock, timing) or 0.0, "copy_bytes": COPY_BYTES,
            "gemm_gflops": gemm_ceiling(dev, clock, timing) or 0.0,
            "gemm_size": GEMM_SIZE[dev.type]}


def copy_ceiling(dev, clock, timing):
    """dst.copy_(src) of COPY_BYTES: bytes read + written per second."""
    try:
        elems = COPY_BYTES // F32
        src = torch.empty(elems, device=dev).fill_(1.0)  # touched: no zero pages on the CPU
        dst = torch.empty(elems, device=dev).fill_(0.0)
        m = measure(clock, lambda: dst.copy_(src), **timing)
        return sig(2 * COPY_BYTES / (m["median_ms"] * 1e-3) / 1e9)
    except Exception as e:
        say(f"copy ceiling failed: {e}")
        return None
    finally:
        src = dst = None
        release(dev)


def gemm_ceiling(dev, clock, timing):
    """torch.mm of two square GEMM_SIZE matrices, FLOP/s."""
    try:
        g = GEMM_SIZE[dev.type]
        a, b = rand((g, g), dev), rand((g, g), dev)
        c = torch.empty(g, g, device=dev)
        m = measure(clock, lambda: torch.mm(a, b, out=c), **timing)
        return sig(2 * g ** 3 / (m["median_ms"] * 1e-3) / 1e9)
    except Exception as e:
        say(f"gemm ceiling failed: {e}")
        return None
    finally:
        a = b = c = None
        release(dev)


def release(dev):
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------
# ops

def table_row(r):
    shape = "x".join(map(str, r["shape"]))
    if "weight" in r:
        shape += "*" + "x".join(map(str, r["weight"]))
    frac = r["fraction_of_ceiling"]
    rate = f"{r['gflops']:9.1f} GF/s" if r["ceiling"] == "gemm" else f"{r['gbps']:9.2f} GB/s"
    return (f"{r['op']:<20} {r['pass']:<16} {r['size']:<6} {shape:<28} {r['impl']:<16} "
            f"{r['median_ms']:10.4f} ms {rate} "
            f"{'' if frac is None else f'{100 * frac:6.1f} %'}")


def run_ops(args):
    dev = setup_device(args)
    clock = Clock(dev)
    timing = {"samples": args.samples, "warmup": args.warmup,
              "min_sample_ms": args.min_sample_ms if args.min_sample_ms is not None
              else (1.0 if dev.type == "cuda" else 5.0),
              "max_seconds": args.max_seconds}
    size = args.size or ("all" if dev.type == "cuda" else "cifar")
    sizes = ["cifar", "large"] if size == "all" else [size]
    wanted = set(args.ops.split(",")) if args.ops else None
    if wanted and wanted - set(OPS):
        say(f"torch_ref: unknown ops {sorted(wanted - set(OPS))}; known: {','.join(OPS)}")
        return 2

    variants = [("eager", "pytorch")]
    if args.graphs:
        why = graphs_unavailable(dev)
        if why:
            say(f"--graphs skipped: {why}")
        else:
            variants.append(("graphs", "pytorch-graphs"))
    if args.compile:
        why = compile_unavailable()
        if why:
            say(f"--compile skipped: {why}")
        else:
            variants.append(("compile", "pytorch-compile"))

    torch.manual_seed(0)
    doc = {"schema": "cudl-bench-ops/1", "tool": "pytorch"}
    doc.update(common_header(dev, args))
    ceil = measure_ceilings(dev, clock, timing)
    doc["ceilings"] = ceil
    print(f"PyTorch {torch.__version__} on {doc['device_name']}, {doc['threads']} threads, "
          f"copy {ceil.get('copy_gbps')} GB/s, gemm {ceil.get('gemm_gflops')} GFLOP/s "
          f"(n={ceil.get('gemm_size')}), blas {doc['blas']}, malloc {doc['malloc']}", flush=True)
    print(f"{'op':<20} {'pass':<16} {'size':<6} {'shape (*weight)':<28} {'impl':<16} "
          f"{'median':>13} {'rate':>14} {'of ceiling':>8}", flush=True)
    results = []
    for case in build_cases(sizes, args.sweep):
        if wanted and case.op not in wanted:
            continue
        for variant, impl_name in variants:
            results.extend(run_case(case, dev, clock, timing, variant, impl_name, ceil))
            release(dev)
    doc["results"] = results
    if args.json:
        write_json(args.json, doc)
    return 0


def run_case(case, dev, clock, timing, variant, impl_name, ceil):
    label = f"{case.op} {case.size} {'x'.join(map(str, case.shape))}"
    torch.manual_seed(0)
    try:
        impls = case.setup(dev, variant, tuple(case.passes))
    except Exception as e:
        say(f"{label} ({impl_name}): setup failed, skipped: {type(e).__name__}: "
            f"{str(e).splitlines()[0][:200] if str(e) else ''}")
        return []
    out = []
    for pass_, (nbytes, flops) in case.passes.items():
        impl = impls.get(pass_)
        if impl is None:
            continue
        try:
            if variant == "graphs":
                g = capture_graph(impl.eager)
                fn = g.replay
            elif variant == "compile":
                if impl.pure is None:
                    say(f"{label} {pass_}: no functional form to compile, skipped")
                    continue
                fn = compile_fn(impl.pure)
            else:
                fn = impl.eager
            m = measure(clock, fn, **timing)
        except Exception as e:
            say(f"{label} {pass_} ({impl_name}) skipped: {type(e).__name__}: "
                f"{str(e).splitlines()[0][:200] if str(e) else ''}")
            continue
        finally:
            g = fn = None
        sec = m["median_ms"] * 1e-3
        gbps = nbytes / sec / 1e9
        gflops = flops / sec / 1e9
        # 0 where the ceiling could not be measured: report.py wants numbers.
        if case.ceiling == "gemm":
            frac = gflops / ceil["gemm_gflops"] if ceil.get("gemm_gflops") else 0.0
        else:
            frac = gbps / ceil["copy_gbps"] if ceil.get("copy_gbps") else 0.0
        r = {"op": case.op, "pass": pass_, "size": case.size, "shape": list(case.shape)}
        if case.weight is not None:
            r["weight"] = list(case.weight)
        r.update({"impl": impl_name, "median_ms": sig(m["median_ms"]), "min_ms": sig(m["min_ms"]),
                  "samples": m["samples"], "iterations": m["iterations"],
                  "bytes": nbytes, "gbps": sig(gbps), "flops": flops, "gflops": sig(gflops),
                  "ceiling": case.ceiling, "fraction_of_ceiling": sig(frac, 4)})
        if impl.note:
            r["note"] = impl.note
        print(table_row(r), flush=True)
        out.append(r)
    return out


# ---------------------------------------------------------------------------
# train

def count_flops_per_image(model, shape, dev):
    """Forward FLOPs of one image through the convolutions and linear layers
    (2 x multiply-adds), counted by hooks on a one-image eval forward."""
    total = [0]

    def conv_hook(mod, inp, out):
        k, cg, r, s = mod.weight.shape
        total[0] += 2 * k * cg * r * s * out.shape[-2] * out.shape[-1] * out.shape[0]

    def linear_hook(mod, inp, out):
        rows = inp[0].numel() // mod.in_features
        total[0] += 2 * mod.in_features * mod.out_features * rows

    hooks = []
    for m in model.modules():
        if isinstance(m, torch.nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, torch.nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()  # eval: the one image leaves batch norm's running statistics alone
    with torch.no_grad():
        model(torch.zeros([1] + list(shape), device=dev))
    model.train(was_training)
    for h in hooks:
        h.remove()
    return total[0]


def time_steps(dev, fn, steps):
    """Milliseconds of each step. On the GPU an event pair per step and one
    synchronisation at the end, so that Python may queue the next step
    while the GPU runs this one, as in a training loop that reads no loss."""
    if dev.type != "cuda":
        times = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
        return times
    events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True))
              for _ in range(steps)]
    for start, end in events:
        start.record()
        fn()
        end.record()
    torch.cuda.synchronize()
    return [start.elapsed_time(end) for start, end in events]


# What `train` runs. fp32 is PyTorch's default: FP32 tensors under whatever
# TF32 setting is in force. bf16 and fp16 are PyTorch's automatic mixed
# precision recipe: FP32 weights and optimizer, torch.autocast running
# convolutions and matmuls in the 16-bit type, and for fp16 a GradScaler
# (dynamic loss scaling). Layouts: NCHW, or channels-last (NHWC) for the
# model's weights and the input batch alike.
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
MODES = ["eager", "graphs", "compile"]
IMPL_OF_MODE = {"eager": "pytorch", "graphs": "pytorch-graphs", "compile": "pytorch-compile"}
LAYOUTS = ["nchw", "nhwc"]
MEMORY_FORMAT = {"nchw": torch.contiguous_format, "nhwc": torch.channels_last}
DEFAULT_MODES = {"cuda": ["eager", "graphs", "compile"], "cpu": ["eager"]}
DEFAULT_PRECISIONS = {"cuda": ["fp32", "bf16", "fp16"], "cpu": ["fp32", "bf16"]}


class Point:
    """One measurement of `train`: a model on one input shape and batch, in
    one mode, precision and layout."""

    def __init__(self, batch, mode, precision, layout, model, shape):
        self.batch, self.mode, self.precision = batch, mode, precision
        self.layout, self.model, self.shape = layout, model, shape

    def label(self):
        return (f"{self.model} {'x'.join(map(str, self.shape))} batch {self.batch} "
                f"{self.mode} {self.precision} {self.layout}")

    def file_name(self, tag=None):
        return (f"train-pytorch-{self.model}-{'x'.join(map(str, self.shape))}-"
                f"b{self.batch}-{self.mode}-{self.precision}-{self.layout}"
                f"{'-' + tag if tag else ''}.json")


def split_list(text, what, allowed=None):
    items = [t.strip() for t in text.split(",") if t.strip()]
    if not items:
        raise ValueError(f"{what}: empty list")
    if allowed is not None:
        bad = [t for t in items if t not in allowed]
        if bad:
            raise ValueError(f"{what}: unknown {', '.join(bad)}; known: {', '.join(allowed)}")
    return items


def parse_shape(text):
    parts = text.lower().split("x")
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"--inputs: {text!r} is not CxHxW (e.g. 1x28x28)")
    return tuple(int(p) for p in parts)


def build_model(name, shape, classes, dropout):
    c, h, w = shape
    name = name.replace("-", "_")
    if name == "small_cnn":
        return models.small_cnn(c, classes, dropout, (h, w))
    return models.by_name(name, in_channels=c, classes=classes, input_size=(h, w))


def layouts_for(precision, dev, choice):
    """--layouts auto: on the GPU, FP32 in NCHW (PyTorch's default) and the
    16-bit precisions channels-last, as NVIDIA's and PyTorch's AMP guides
    advise for tensor cores; on the CPU both layouts for every precision, so
    that the table shows where channels-last helps oneDNN."""
    if choice != "auto":
        return split_list(choice, "--layouts", LAYOUTS)
    if dev.type == "cuda":
        return ["nchw"] if precision == "fp32" else ["nhwc"]
    return list(LAYOUTS)


def make_grad_scaler(dev):
    """The GradScaler fp16 training uses on dev, or None where this PyTorch
    has none (torch.amp.GradScaler(device) arrived in 2.3; before it only
    torch.cuda.amp.GradScaler)."""
    amp_scaler = getattr(torch.amp, "GradScaler", None)
    if amp_scaler is not None:
        try:
            return amp_scaler(dev.type)
        except (RuntimeError, TypeError, ValueError):
            return None
    if dev.type == "cuda":
        return torch.cuda.amp.GradScaler()
    return None


def precision_unavailable(dev, precision):
    """Why a precision cannot run on dev with this PyTorch, or None. A
    convolution under torch.autocast must come out in the 16-bit type, so
    that a version which accepted the dtype but computed in FP32 cannot put
    FP32 figures under a 16-bit label; 1.13 on the CPU refuses float16
    outright."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return None
    if dev.type == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return f"{torch.cuda.get_device_name(dev)} does not support bfloat16"
    conv = torch.nn.Conv2d(2, 2, 3).to(dev)
    x = torch.randn(1, 2, 5, 5, device=dev)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with torch.autocast(dev.type, dtype=dtype):
                y = conv(x)
        except Exception as e:  # noqa: BLE001 - any refusal means unavailable
            return (f"torch.autocast({dev.type!r}, dtype={dtype}) failed in PyTorch "
                    f"{torch.__version__}: {type(e).__name__}: {first_line(e)}")
    if y.dtype != dtype:
        why = "; ".join(first_line(w.message) for w in caught)
        return (f"torch.autocast({dev.type!r}, dtype={dtype}) leaves a convolution in "
                f"{y.dtype} in PyTorch {torch.__version__}" + (f" ({why})" if why else ""))
    if precision == "fp16" and make_grad_scaler(dev) is None:
        return f"PyTorch {torch.__version__} has no GradScaler for {dev.type}"
    return None


def first_line(e, limit=300):
    text = str(e)
    return text.splitlines()[0][:limit] if text else ""


def capture_train_step(step, forward_loss, opt, scaler, warmup):
    """A training step replayed from a CUDA graph, and what the graph holds.
    Warmed up on a side stream first (PyTorch's whole-network capture
    recipe); gradients set to None before capture so that backward
    allocates them from the graph's pool and each replay rewrites them.
    With a GradScaler only forward and backward are captured: its step
    reads the inf check on the host (a synchronisation, which capture
    forbids), so unscale, the SGD step and the scale update run eagerly
    after each replay, as PyTorch's AMP-with-graphs examples do."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warmup):
            step()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    opt.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss = forward_loss()
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
    if scaler is None:
        return graph.replay, "whole step"

    def replay_then_step():
        graph.replay()
        scaler.step(opt)
        scaler.update()
    return replay_then_step, ("forward and backward; GradScaler's unscale, SGD step "
                              "and scale update eager after each replay")


def train_point(p, dev, args, head, gemm, scope_note):
    """Measure one point; the JSON object of it."""
    torch.manual_seed(0)
    model = build_model(p.model, p.shape, args.classes, args.dropout).to(dev)
    flops_per_image = 3 * count_flops_per_image(model, p.shape, dev)
    fmt = MEMORY_FORMAT[p.layout]
    model = model.to(memory_format=fmt)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=SGD_LR, momentum=SGD_MOMENTUM,
                          weight_decay=SGD_WD)
    x = torch.randn([p.batch] + list(p.shape), device=dev).contiguous(memory_format=fmt)
    y = torch.randint(0, args.classes, (p.batch,), device=dev)
    dtype = AUTOCAST_DTYPES[p.precision]
    scaler = make_grad_scaler(dev) if p.precision == "fp16" else None
    net = compile_fn(model) if p.mode == "compile" else model
    # Capture needs autocast's cache of 16-bit weight copies off (PyTorch's
    # CUDA graphs notes); its warm-up runs the same way.
    cache = p.mode != "graphs"

    def forward_loss():
        if dtype is None:
            return F.cross_entropy(net(x), y)
        with torch.autocast(dev.type, dtype=dtype, cache_enabled=cache):
            return F.cross_entropy(net(x), y)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = forward_loss()
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()

    # Graphs and compile need more than one warm-up step: autotuning,
    # compilation of forward then backward, the optimizer's first state.
    warmup = args.warmup if p.mode == "eager" else max(args.warmup, 3)
    t0 = time.perf_counter()
    capture = None
    if p.mode == "graphs":
        fn, capture = capture_train_step(step, forward_loss, opt, scaler, warmup)
    else:
        fn = step
        for _ in range(warmup):
            fn()
    if dev.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
    warmup_seconds = time.perf_counter() - t0
    times = time_steps(dev, fn, args.steps)

    host_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    device_peak = torch.cuda.max_memory_allocated(dev) if dev.type == "cuda" else 0
    median = statistics.median(times)
    ips = p.batch / (median * 1e-3)
    achieved = flops_per_image * ips / 1e9
    doc = {"schema": "cudl-bench-train/1", "tool": "pytorch", "impl": IMPL_OF_MODE[p.mode],
           "version": head["version"], "model": p.model.replace("_", "-"), "batch": p.batch}
    doc.update({k: v for k, v in head.items() if k != "version"})
    doc["date"] = utc_now()
    doc.update({
        "mode": p.mode, "precision": p.precision, "layout": p.layout,
        "autocast": str(dtype).replace("torch.", "") if dtype is not None else None,
        "grad_scaler": scaler is not None,
    })
    if capture:
        doc["graph_capture"] = capture
    if p.mode == "compile":
        doc["compile_mode"] = "default"
    doc.update({
        "input_shape": list(p.shape), "classes": args.classes, "optimizer": "sgd",
        "steps": len(times), "warmup": warmup, "warmup_seconds": sig(warmup_seconds, 3),
        "images_per_second": sig(ips), "step_ms_median": sig(median),
        "step_ms_min": sig(min(times)), "step_ms_max": sig(max(times)),
        "peak_memory_bytes": device_peak if dev.type == "cuda" else host_peak,
        "peak_host_memory_bytes": host_peak, "peak_device_memory_bytes": device_peak,
        "flops_per_image": flops_per_image, "achieved_gflops": sig(achieved),
        "gemm_gflops": gemm or 0.0,
        "flop_utilisation": sig(achieved / gemm, 4) if gemm else 0.0,
    })
    if scope_note:
        doc["peak_memory_scope"] = scope_note
    if p.model.replace("-", "_") == "small_cnn":
        doc["dropout"] = args.dropout
    return doc


def plan_train(args, dev):
    """The points to run, in order (the batches as given outermost, so that
    a --time-budget cut loses the later batches first, then modes,
    precisions, layouts, models, inputs), and the lines saying what is
    skipped and why."""
    kind = dev.type
    batches = split_list(args.batch, "--batch")
    if not all(b.isdigit() and int(b) > 0 for b in batches):
        raise ValueError(f"--batch: {args.batch!r} is not a list of positive integers")
    batches = [int(b) for b in batches]
    model_names = [m.replace("_", "-") for m in split_list(args.model, "--model")]
    for name in model_names:
        build_model(name, (1, 28, 28), args.classes, args.dropout)  # unknown names fail here
    shapes = [parse_shape(t) for t in split_list(args.inputs, "--inputs")]
    modes = split_list(args.modes, "--modes", MODES) if args.modes else DEFAULT_MODES[kind]
    precisions = (split_list(args.precisions, "--precisions", list(AUTOCAST_DTYPES))
                  if args.precisions else DEFAULT_PRECISIONS[kind])
    skipped = []
    why_mode = {"graphs": graphs_unavailable(dev), "compile": compile_unavailable()}
    for m in modes:
        if why_mode.get(m):
            skipped.append(f"mode {m} skipped: {why_mode[m]}")
    modes = [m for m in modes if not why_mode.get(m)]
    usable = []
    for prec in precisions:
        why = precision_unavailable(dev, prec)
        if why:
            skipped.append(f"precision {prec} skipped: {why}")
        else:
            usable.append(prec)
    points = [Point(b, m, prec, lay, name, shape)
              for b in batches for m in modes for prec in usable
              for lay in layouts_for(prec, dev, args.layouts)
              for name in model_names for shape in shapes]
    return points, skipped


def run_train(args):
    dev = setup_device(args)
    try:
        points, skipped = plan_train(args, dev)
    except ValueError as e:
        say(f"torch_ref train: {e}")
        return 2
    for line in skipped:
        print(line, flush=True)
    if args.json and len(points) > 1:
        say(f"torch_ref train: --json takes one point and this run has {len(points)}; "
            "use --json-dir")
        return 2
    if args.json_dir:
        os.makedirs(args.json_dir, exist_ok=True)
    head = common_header(dev, args)
    clock = Clock(dev)
    # The GEMM ceiling once, quickly: the FLOP utilisation needs it.
    gemm = gemm_ceiling(dev, clock, {"samples": 5, "warmup": 2, "max_seconds": 2.0,
                                     "min_sample_ms": 1.0 if dev.type == "cuda" else 5.0})
    extra = ""
    if dev.type == "cuda":
        cudnn = head["cudnn"]
        extra = (f", CUDA {head['cuda']}, cuDNN {cudnn_text(cudnn)}, cudnn.benchmark "
                 f"{'on' if head['cudnn_benchmark'] else 'off'}, TF32 "
                 f"{tf32_label(head['tf32_settings'])} ({head['tf32_source']})")
    if dev.type == "cpu" and head["cpu_flags"] is not None:
        extra = f" ({head['cpu_model']}: {' '.join(head['cpu_flags']) or 'no AVX2'})"
    print(f"PyTorch {torch.__version__} on {head['device_name']}{extra}, {head['threads']} "
          f"threads; GEMM ceiling {gemm} GFLOP/s", flush=True)
    print(f"{len(points)} points, {args.steps} timed steps each after warm-up", flush=True)
    # ru_maxrss never goes down: past the first point, the CPU's figure is
    # the process's peak so far, an upper bound for the point.
    scope_note = "process peak so far" if dev.type == "cpu" and len(points) > 1 else None
    t_start = time.perf_counter()
    done = failed = 0
    for i, p in enumerate(points):
        spent = time.perf_counter() - t_start
        if args.time_budget and spent > args.time_budget:
            left = points[i:]
            print(f"not run, --time-budget {args.time_budget:g} s spent: {len(left)} points: "
                  + "; ".join(q.label() for q in left), flush=True)
            break
        t0 = time.perf_counter()
        try:
            doc = train_point(p, dev, args, head, gemm, scope_note)
        except Exception as e:  # noqa: BLE001 - report the point, go on with the rest
            failed += 1
            print(f"{p.label()}: FAILED, no result: {type(e).__name__}: {first_line(e)}",
                  flush=True)
            continue
        finally:
            release_after_point(dev)
        done += 1
        print(f"{p.label()}: {doc['images_per_second']:.1f} images/s, step "
              f"{doc['step_ms_median']:.3f} ms median ({doc['step_ms_min']:.3f}-"
              f"{doc['step_ms_max']:.3f} min-max) over {doc['steps']} steps; peak "
              f"{doc['peak_memory_bytes'] / 2**20:.1f} MiB; {time.perf_counter() - t0:.1f} s "
              f"(warm-up {doc['warmup_seconds']:g} s)",
              flush=True)
        if args.json:
            write_json(args.json, doc)
        elif args.json_dir:
            write_json(os.path.join(args.json_dir, p.file_name(args.tag)), doc)
    print(f"{done} measured, {failed} failed, in {time.perf_counter() - t_start:.1f} s",
          flush=True)
    return 1 if failed else 0


# ---------------------------------------------------------------------------
# infer: a zoo model's forward, as cudl bench infer times it.

def autocast_context(dev, precision):
    """torch.autocast for a 16-bit precision (its weight-copy cache off, as
    CUDA graph capture and a traced graph need), or a no-op for fp32."""
    dtype = AUTOCAST_DTYPES[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(dev.type, dtype=dtype, cache_enabled=False)


def jit_inference_model(model, x, dev, precision):
    """The TorchScript model PyTorch's deployment guides freeze: traced on x
    without autograd, then, in fp32, torch.jit.optimize_for_inference
    (freezing, batch norm folded into the convolutions, oneDNN layouts on
    the CPU); in 16 bits traced under autocast and frozen, since
    optimize_for_inference drops autocast's casts (its output comes back in
    FP32). None and the reason where the traced model does not compute in
    the precision asked."""
    with torch.no_grad(), autocast_context(dev, precision):
        traced = torch.jit.trace(model, x)
        if precision == "fp32":
            frozen = torch.jit.optimize_for_inference(traced)
        else:
            frozen = torch.jit.freeze(traced.eval())
        y = frozen(x)
    want = AUTOCAST_DTYPES[precision] or torch.float32
    if y.dtype != want:
        return None, (f"the frozen TorchScript model's output is {y.dtype}, not {want}, "
                      f"in PyTorch {torch.__version__}")
    return frozen, None


def graphed_inference(model, x, dev, precision, warmup):
    """One forward captured in a CUDA graph (warmed up on a side stream,
    PyTorch's recipe) and replayed on the same input buffer: what a GPU
    service with a fixed batch runs."""
    def forward():
        with torch.inference_mode(), autocast_context(dev, precision):
            return model(x)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(max(warmup, 3)):
            forward()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        forward()
    return graph.replay


def infer_variants(model, x, dev, args):
    """(impl, call or None, why not) of the ways PyTorch users run a trained
    model: eval mode without autograd (torch.no_grad); torch.inference_mode,
    which also skips version counters and view tracking; the frozen
    TorchScript model (jit_inference_model); and on a GPU the forward in a
    CUDA graph. Each 16-bit variant runs under torch.autocast."""
    precision = args.precision

    def no_grad(x):
        with torch.no_grad(), autocast_context(dev, precision):
            return model(x)

    def inference_mode(x):
        with torch.inference_mode(), autocast_context(dev, precision):
            return model(x)
    out = [("pytorch-eval", no_grad, None), ("pytorch-inference-mode", inference_mode, None)]
    try:
        frozen, why = jit_inference_model(model, x, dev, precision)
    except Exception as e:  # noqa: BLE001 - a refusal is reported, not fatal
        frozen, why = None, f"TorchScript failed: {type(e).__name__}: {first_line(e)}"
    if frozen is None:
        out.append(("pytorch-jit", None, why))
    else:
        def jit(x):
            with torch.no_grad(), autocast_context(dev, precision):
                return frozen(x)
        out.append(("pytorch-jit", jit, None))
    if dev.type == "cuda":
        why = graphs_unavailable(dev)
        replay = None
        if why is None:
            try:
                replay = graphed_inference(model, x, dev, precision, args.warmup)
            except Exception as e:  # noqa: BLE001
                why = f"capture failed: {type(e).__name__}: {first_line(e)}"
        out.append(("pytorch-graphs", (lambda _x: replay()) if replay else None, why))
    return out


def infer_point(name, shape, batch, dev, args, clock):
    """Every variant on one batch: one forward call per sample (a latency,
    as cudl bench infer); the peak memory over the variant's calls (the
    caching allocator's on the GPU; on the CPU the process's peak resident
    set so far, an upper bound that never goes down). A variant this
    PyTorch cannot run is listed with its reason and no figures."""
    torch.manual_seed(0)
    fmt = MEMORY_FORMAT[args.layout]
    model = models.by_name(name.replace("-", "_"), shape[0], args.classes,
                           tuple(shape[1:])).to(dev).eval()
    model = model.to(memory_format=fmt)
    x = torch.randn((batch,) + tuple(shape), device=dev).contiguous(memory_format=fmt)
    results = []
    for impl, call, why in infer_variants(model, x, dev, args):
        if call is None:
            results.append({"impl": impl, "unavailable": why})
            continue
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(dev)
        for _ in range(args.warmup):
            call(x)
        clock.sync()
        per_call = [clock.run(lambda: call(x), 1) for _ in range(args.samples)]
        if dev.type == "cuda":
            peak = torch.cuda.max_memory_allocated(dev)
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        median = statistics.median(per_call)
        results.append({"impl": impl, "latency_ms_median": median,
                        "latency_ms_min": min(per_call), "latency_ms_max": max(per_call),
                        "images_per_second": batch / median * 1e3,
                        "samples": len(per_call), "peak_memory_bytes": peak,
                        "peak_memory_scope": ("torch.cuda.max_memory_allocated"
                                              if dev.type == "cuda"
                                              else "process peak resident set so far")})
    return results


def run_infer(args):
    dev = setup_device(args)
    head = common_header(dev, args)
    clock = Clock(dev)
    shape = tuple(int(v) for v in args.inputs.split("x"))
    batches = [int(b) for b in args.batch.split(",")]
    if len(shape) != 3 or min(shape) < 1 or not batches or min(batches) < 1:
        say("torch_ref infer: --inputs is CxHxW and --batch positive integers")
        return 2
    why = precision_unavailable(dev, args.precision)
    if why is not None:
        say(f"torch_ref infer: {args.precision}: {why}")
        return 2
    docs = []
    for batch in batches:
        results = infer_point(args.model, shape, batch, dev, args, clock)
        for r in results:
            if "unavailable" in r:
                print(f"{args.model} batch {batch} {r['impl']}: not run: {r['unavailable']}",
                      flush=True)
                continue
            print(f"{args.model} batch {batch} {r['impl']}: {r['latency_ms_median']:.3f} ms "
                  f"median ({r['latency_ms_min']:.3f}-{r['latency_ms_max']:.3f} min-max, "
                  f"{r['samples']} calls); peak {r['peak_memory_bytes'] / 2**20:.1f} MiB",
                  flush=True)
        doc = dict(schema="cudl-bench-infer/1", tool="pytorch", **head)
        doc.update(model=args.model, batch=batch, input_shape=list(shape),
                   classes=args.classes, precision=args.precision, layout=args.layout,
                   autocast=(str(AUTOCAST_DTYPES[args.precision]).replace("torch.", "")
                             if AUTOCAST_DTYPES[args.precision] else None),
                   warmup=args.warmup, results=results)
        docs.append(doc)
        release_after_point(dev)
    if args.json:
        write_json(args.json, docs[0] if len(docs) == 1 else docs)
    return 0


def cudnn_text(v):
    """cudnnGetVersion()'s integer as text: 91900 is 9.19.0 (cuDNN 9), 8907
    is 8.9.7 (cuDNN 8)."""
    if not v:
        return "none"
    if v >= 90000:
        return f"{v // 10000}.{v % 10000 // 100}.{v % 100}"
    return f"{v // 1000}.{v % 1000 // 100}.{v % 100}"


def release_after_point(dev):
    gc.collect()
    if dev.type == "cuda":
        release(dev)


def write_json(path, doc):
    with open(path, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    say(f"wrote {path}")


# ---------------------------------------------------------------------------

def main(argv=None):
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where to run (default cpu)")
    common.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads (default: all cores on the CPU)")
    common.add_argument("--no-cudnn-benchmark", action="store_true",
                        help="leave torch.backends.cudnn.benchmark off (PyTorch's default)")
    common.add_argument("--json", metavar="PATH", help="write the results here")

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    o = sub.add_parser("ops", parents=[common], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="operators, as cudl bench ops")
    o.add_argument("--tf32", nargs="?", const="on", default="off",
                   choices=["on", "off", "default"],
                   help="TF32 in cuBLAS and cuDNN: off (default: FP32 in both, as "
                   "cudl bench ops), on (--tf32 alone), or PyTorch's default")
    o.add_argument("--graphs", action="store_true",
                   help="CUDA graphs (impl pytorch-graphs): each case's replay besides eager")
    o.add_argument("--compile", action="store_true",
                   help="torch.compile, PyTorch 2.x (impl pytorch-compile): each case's "
                   "functional call compiled, besides eager")
    o.add_argument("--size", choices=["cifar", "large", "all"],
                   help="case sizes (default: all on cuda, cifar on cpu)")
    o.add_argument("--sweep", action="store_true",
                   help="add relu, batchnorm, dropout, add and copy at [k, 64, 32, 32]")
    o.add_argument("--ops", help="comma-separated subset of: " + ",".join(OPS) +
                   " (copy: --sweep only)")
    o.add_argument("--samples", type=int, default=20, help="samples per case (default 20)")
    o.add_argument("--min-sample-ms", type=float,
                   help="shortest sample (default 1 on the GPU, 5 on the CPU)")
    o.add_argument("--max-seconds", type=float, default=2.0,
                   help="stop sampling a case after this long (at least one sample)")
    o.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    t = sub.add_parser("train", parents=[common], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="training steps of zoo models, as cudl bench train")
    t.add_argument("--tf32", nargs="?", const="on", default="default",
                   choices=["on", "off", "default"],
                   help="TF32 in cuBLAS and cuDNN: PyTorch's default (default: as "
                   "users run it; on the GPU it allows TF32 in cuDNN convolutions, "
                   "not in matmuls), on (--tf32 alone) or off; the JSON records "
                   "the setting in force")
    t.add_argument("--model", default="small-cnn",
                   help="comma-separated: small-cnn, resnet20/32/44/56/110, "
                   "plain20/..., mlp (default small-cnn)")
    t.add_argument("--batch", default="128",
                   help="comma-separated batch sizes (default 128); the first "
                   "ones run first")
    t.add_argument("--inputs", default="1x28x28",
                   help="comma-separated input shapes CxHxW (default 1x28x28; "
                   "3x32x32 is CIFAR's)")
    t.add_argument("--modes",
                   help="comma-separated: eager, graphs (the step in a CUDA graph), "
                   "compile (torch.compile of the model) (default: all three on "
                   "cuda, eager on cpu)")
    t.add_argument("--precisions",
                   help="comma-separated: fp32, bf16, fp16 (autocast; fp16 with a "
                   "GradScaler) (default: all three on cuda, fp32,bf16 on cpu)")
    t.add_argument("--layouts", default="auto",
                   help="comma-separated: nchw, nhwc (channels-last); auto "
                   "(default): on cuda fp32 nchw and bf16/fp16 nhwc, on cpu both "
                   "for every precision")
    t.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    t.add_argument("--dropout", type=float, default=0.0,
                   help="small-cnn's dropout (default 0, as cudl train)")
    t.add_argument("--steps", type=int, default=50,
                   help="timed steps per point (default 50)")
    t.add_argument("--warmup", type=int, default=5,
                   help="untimed steps first (default 5; at least 3 for graphs "
                   "and compile)")
    t.add_argument("--time-budget", type=float, default=0.0, metavar="S",
                   help="start no point after S seconds of the sweep (the rest "
                   "is listed as not run); 0 (default): no limit")
    t.add_argument("--json-dir", metavar="DIR",
                   help="write each point to DIR/train-pytorch-MODEL-CxHxW-bBATCH-"
                   "MODE-PRECISION-LAYOUT[-TAG].json (--json takes a run of one "
                   "point)")
    t.add_argument("--tag", help="appended to --json-dir's file names (e.g. r1 "
                   "for a round of repeated runs, which report.py reduces to "
                   "their median)")
    n = sub.add_parser("infer", parents=[common], epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       help="a zoo model's forward in eval mode and inference_mode, "
                       "as cudl bench infer")
    n.add_argument("--tf32", nargs="?", const="on", default="default",
                   choices=["on", "off", "default"],
                   help="TF32 in cuBLAS and cuDNN (default: PyTorch's)")
    n.add_argument("--model", default="resnet20",
                   help="small-cnn, resnet20/32/..., plain20/..., mlp (default resnet20)")
    n.add_argument("--batch", default="1,8,64",
                   help="comma-separated batch sizes (default 1,8,64)")
    n.add_argument("--inputs", default="3x32x32", help="input shape CxHxW (default 3x32x32)")
    n.add_argument("--classes", type=int, default=10, help="classes (default 10)")
    n.add_argument("--precision", default="fp32", choices=list(AUTOCAST_DTYPES),
                   help="fp32, or bf16/fp16 under torch.autocast (default fp32)")
    n.add_argument("--layout", default="nchw", choices=LAYOUTS,
                   help="nchw, or nhwc: the model and input channels-last (default nchw)")
    n.add_argument("--samples", type=int, default=50,
                   help="timed calls per variant (default 50)")
    n.add_argument("--warmup", type=int, default=5, help="untimed calls first (default 5)")
    args = p.parse_args(argv)
    if args.command == "infer":
        if args.samples < 1 or args.warmup < 0:
            p.error("--samples must be at least 1 and --warmup at least 0")
        return run_infer(args)
    if args.command == "ops":
        return run_ops(args)
    if args.steps < 1 or args.warmup < 0:
        p.error("--steps must be at least 1 and --warmup at least 0")
    return run_train(args)


if __name__ == "__main__":
    sys.exit(main())
