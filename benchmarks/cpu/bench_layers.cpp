// bench_layers - GFLOP/s of cudl's CPU convolution and linear layers,
// forward and both backward passes, at ResNet-20 (CIFAR) and small-CNN
// (Fashion-MNIST) shapes, next to the machine's sgemm rate on the same
// product (oneDNN's dnnl_sgemm, which cudl uses, and OpenBLAS's when built
// with it) and oneDNN's convolutions called directly, on cudl's NCHW
// layout and on the blocked layouts oneDNN prefers (reorders not timed: the
// ceiling), direct and Winograd, and an im2col + dnnl_sgemm convolution
// (im2col_conv.c), the alternative cudl's CPU backend was chosen over.
// cudl is timed on NCHW tensors and on channels-last ones (its models'
// layout on the CPU), reorders included where it makes them. Before timing,
// cudl's and im2col's results are compared, so the two peers compute the same
// thing. benchmarks/cpu/torch_layers.py measures PyTorch on the same list.
//
//   bench_layers [--min-time SECONDS] [--threads N] [--json PATH]
//
// Each figure is the median time of repeated calls (after two warm-up
// calls, for at least --min-time seconds and 3 calls), turned into GFLOP/s
// with 2 * N * K * OH * OW * (C / groups) * R * S flops for every
// convolution pass and 2 * rows * in * out for every linear pass.
#include <oneapi/dnnl/dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "im2col_conv.h"

#if defined(CUDL_BENCH_OPENBLAS)
#  include <cblas.h>
#endif

namespace {

struct ConvShape {
  const char *name;
  int64_t n, c, h, w, k, r, s;
  int stride, pad, groups;
};

struct LinearShape {
  const char *name;
  int64_t rows, in, out;
};

// Batch 128, as in training. ResNet-20: the first convolution, the 3x3
// convolutions of each stage, the strided ones that open stages 2 and 3 and
// their 1x1 projections. Small CNN: two 3x3 convolutions on 28x28 input.
const ConvShape kConvShapes[] = {
    {"resnet20.conv1 3->16 32x32", 128, 3, 32, 32, 16, 3, 3, 1, 1, 1},
    {"resnet20.stage1 16->16 32x32", 128, 16, 32, 32, 16, 3, 3, 1, 1, 1},
    {"resnet20.stage2.down 16->32 s2", 128, 16, 32, 32, 32, 3, 3, 2, 1, 1},
    {"resnet20.stage2.proj 1x1 s2", 128, 16, 32, 32, 32, 1, 1, 2, 0, 1},
    {"resnet20.stage2 32->32 16x16", 128, 32, 16, 16, 32, 3, 3, 1, 1, 1},
    {"resnet20.stage3.down 32->64 s2", 128, 32, 16, 16, 64, 3, 3, 2, 1, 1},
    {"resnet20.stage3 64->64 8x8", 128, 64, 8, 8, 64, 3, 3, 1, 1, 1},
    {"smallcnn.conv1 1->32 28x28", 128, 1, 28, 28, 32, 3, 3, 1, 1, 1},
    {"smallcnn.conv2 32->64 14x14", 128, 32, 14, 14, 64, 3, 3, 1, 1, 1},
};

const LinearShape kLinearShapes[] = {
    {"resnet20.fc 64->10", 128, 64, 10},
    {"smallcnn.fc1 3136->128", 128, 3136, 128},
    {"smallcnn.fc2 128->10", 128, 128, 10},
    {"mlp 784->256", 128, 784, 256},
};

double g_min_time = 1.0;
FILE *g_json = nullptr;

// Median seconds per call of fn.
double TimeIt(const std::function<void()> &fn) {
  using clock = std::chrono::steady_clock;
  fn();
  fn();
  std::vector<double> times;
  const auto start = clock::now();
  while (times.size() < 3 ||
         std::chrono::duration<double>(clock::now() - start).count() <
             g_min_time) {
    const auto t0 = clock::now();
    fn();
    times.push_back(std::chrono::duration<double>(clock::now() - t0).count());
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void Check(cudl_status s, cudl_context *ctx, const char *what) {
  if (s != CUDL_OK) {
    std::fprintf(stderr, "bench_layers: %s failed: %s (%s)\n", what,
                 cudl_status_string(s), cudl_context_last_error(ctx));
    std::exit(1);
  }
}

cudl_tensor *Tensor(cudl_context *ctx, std::initializer_list<int64_t> dims) {
  std::vector<int64_t> shape(dims);
  cudl_tensor *t = nullptr;
  Check(cudl_tensor_create(ctx, CUDL_DTYPE_F32, (int)shape.size(), shape.data(),
                           &t),
        ctx, "cudl_tensor_create");
  Check(cudl_tensor_uniform(t, -1.0f, 1.0f), ctx, "cudl_tensor_uniform");
  return t;
}

void Report(const char *layer, const char *pass, const char *impl, double flops,
            double seconds) {
  const double gflops = flops / seconds * 1e-9;
  std::printf("| %-32s | %-15s | %-22s | %9.3f | %8.1f |\n", layer, pass, impl,
              seconds * 1e3, gflops);
  if (g_json != nullptr)
    std::fprintf(g_json,
                 "{\"layer\": \"%s\", \"pass\": \"%s\", \"impl\": \"%s\", "
                 "\"ms\": %.4f, \"gflops\": %.2f}\n",
                 layer, pass, impl, seconds * 1e3, gflops);
}

// The machine's sgemm on a square problem and on the product one
// convolution pass is made of.
void BenchSgemm(int64_t m, int64_t n, int64_t k, const char *label) {
  std::vector<float> a(m * k, 0.5f), b(k * n, 0.25f), c(m * n);
  Report(label, "sgemm", "oneDNN dnnl_sgemm", 2.0 * m * n * k, TimeIt([&] {
           dnnl_sgemm('N', 'N', m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f,
                      c.data(), n);
         }));
#if defined(CUDL_BENCH_OPENBLAS)
  Report(label, "sgemm", "OpenBLAS cblas_sgemm", 2.0 * m * n * k, TimeIt([&] {
           cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m,
                       (int)n, (int)k, 1.0f, a.data(), (int)k, b.data(), (int)n,
                       0.0f, c.data(), (int)n);
         }));
#endif
}

// oneDNN's convolution on the same shape. plain: NCHW / OIHW tensors, as
// cudl stores them; otherwise the memory layouts oneDNN prefers
// (format_tag::any, reorders not timed), its best case. winograd: its
// Winograd algorithm (in its preferred layouts; nothing where oneDNN has
// no Winograd kernel for the shape) instead of the direct one.
void BenchOneDnnConv(const ConvShape &sh, double flops, bool plain,
                     bool winograd = false) {
  using namespace dnnl;
  const algorithm alg = winograd ? algorithm::convolution_winograd
                                 : algorithm::convolution_direct;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const int64_t oh = (sh.h + 2 * sh.pad - sh.r) / sh.stride + 1;
  const int64_t ow = (sh.w + 2 * sh.pad - sh.s) / sh.stride + 1;
  const memory::dims src_dims = {sh.n, sh.c, sh.h, sh.w};
  const memory::dims wei_dims = {sh.k, sh.c, sh.r, sh.s};
  const memory::dims dst_dims = {sh.n, sh.k, oh, ow};
  const memory::dims strides = {sh.stride, sh.stride};
  const memory::dims pads = {sh.pad, sh.pad};
  // nchw is plain row-major order for every 4-D tensor, OIHW weights too.
  auto any = [plain](const memory::dims &d) {
    return memory::desc(
        d, memory::data_type::f32,
        plain ? memory::format_tag::nchw : memory::format_tag::any);
  };
  const char *impl = winograd ? "oneDNN Winograd (best)"
                     : plain  ? "oneDNN (NCHW)"
                              : "oneDNN (best layout)";
  convolution_forward::desc fwd_d(prop_kind::forward_training, alg,
                                  any(src_dims), any(wei_dims), any(dst_dims),
                                  strides, pads, pads);
  convolution_forward::primitive_desc fwd_pd;
  try {
    fwd_pd = convolution_forward::primitive_desc(fwd_d, eng);
  } catch (const dnnl::error &) {
    if (winograd) return;  // no Winograd kernel for this shape or CPU
    throw;
  }
  memory src(fwd_pd.src_desc(), eng), wei(fwd_pd.weights_desc(), eng),
      dst(fwd_pd.dst_desc(), eng);
  std::memset(src.get_data_handle(), 0, fwd_pd.src_desc().get_size());
  std::memset(wei.get_data_handle(), 0, fwd_pd.weights_desc().get_size());
  convolution_forward fwd(fwd_pd);
  Report(sh.name, "forward", impl, flops, TimeIt([&] {
           fwd.execute(strm, {{DNNL_ARG_SRC, src},
                              {DNNL_ARG_WEIGHTS, wei},
                              {DNNL_ARG_DST, dst}});
           strm.wait();
         }));

  convolution_backward_data::desc bwd_d_d(alg, any(src_dims), any(wei_dims),
                                          any(dst_dims), strides, pads, pads);
  convolution_backward_data::primitive_desc bwd_d_pd(bwd_d_d, eng, fwd_pd);
  memory dsrc(bwd_d_pd.diff_src_desc(), eng),
      ddst(bwd_d_pd.diff_dst_desc(), eng), wei2(bwd_d_pd.weights_desc(), eng);
  std::memset(ddst.get_data_handle(), 0, bwd_d_pd.diff_dst_desc().get_size());
  std::memset(wei2.get_data_handle(), 0, bwd_d_pd.weights_desc().get_size());
  convolution_backward_data bwd_d(bwd_d_pd);
  Report(sh.name, "backward data", impl, flops, TimeIt([&] {
           bwd_d.execute(strm, {{DNNL_ARG_DIFF_DST, ddst},
                                {DNNL_ARG_WEIGHTS, wei2},
                                {DNNL_ARG_DIFF_SRC, dsrc}});
           strm.wait();
         }));

  convolution_backward_weights::desc bwd_w_d(
      alg, any(src_dims), any(wei_dims), any(dst_dims), strides, pads, pads);
  convolution_backward_weights::primitive_desc bwd_w_pd(bwd_w_d, eng, fwd_pd);
  memory src3(bwd_w_pd.src_desc(), eng), ddst3(bwd_w_pd.diff_dst_desc(), eng),
      dwei(bwd_w_pd.diff_weights_desc(), eng);
  std::memset(src3.get_data_handle(), 0, bwd_w_pd.src_desc().get_size());
  std::memset(ddst3.get_data_handle(), 0, bwd_w_pd.diff_dst_desc().get_size());
  convolution_backward_weights bwd_w(bwd_w_pd);
  Report(sh.name, "backward filter", impl, flops, TimeIt([&] {
           bwd_w.execute(strm, {{DNNL_ARG_SRC, src3},
                                {DNNL_ARG_DIFF_DST, ddst3},
                                {DNNL_ARG_DIFF_WEIGHTS, dwei}});
           strm.wait();
         }));
}

std::vector<float> Host(const cudl_tensor *t) {
  std::vector<float> v(cudl_tensor_numel(t));
  cudl_tensor_copy_to_host(t, v.data(), v.size() * sizeof(float));
  return v;
}

// The largest difference between a and b, relative to b's largest
// magnitude.
double RelativeDifference(const std::vector<float> &a,
                          const std::vector<float> &b) {
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff = std::max(diff, std::fabs((double)a[i] - b[i]));
    scale = std::max(scale, std::fabs((double)b[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

// The im2col peer on the same tensors as cudl's conv. Its results are first
// compared with cudl's (which the tests check against float64): a peer that
// computed something else would make its timing meaningless.
void BenchIm2col(cudl_context *ctx, const cudl_conv2d_desc &desc,
                 const ConvShape &sh, const int64_t ys[4], cudl_tensor *x,
                 cudl_tensor *w, cudl_tensor *y, cudl_tensor *dx,
                 cudl_tensor *dw, double flops) {
  const im2col_geometry g = {sh.n,   sh.c,  sh.h,  sh.w,      sh.k,      sh.r,
                             sh.s,   ys[2], ys[3], sh.stride, sh.stride, sh.pad,
                             sh.pad, 1,     1,     sh.groups};
  Check(cudl_conv2d_forward(ctx, &desc, x, w, nullptr, y), ctx, "fwd");
  Check(cudl_conv2d_backward_data(ctx, &desc, w, y, dx), ctx, "bwd data");
  Check(cudl_conv2d_backward_filter(ctx, &desc, x, y, dw), ctx, "bwd filter");
  const std::vector<float> hx = Host(x), hw = Host(w), hy_cudl = Host(y),
                           hdx_cudl = Host(dx), hdw_cudl = Host(dw);
  std::vector<float> hy(hy_cudl.size()), hdx(hx.size()), hdw(hw.size());
  if (im2col_conv2d_forward(&g, hx.data(), hw.data(), hy.data()) != 0 ||
      im2col_conv2d_backward_data(&g, hw.data(), hy_cudl.data(), hdx.data()) !=
          0 ||
      im2col_conv2d_backward_filter(&g, hx.data(), hy_cudl.data(),
                                    hdw.data()) != 0) {
    std::fprintf(stderr, "bench_layers: im2col: out of memory\n");
    std::exit(1);
  }
  const double d[3] = {RelativeDifference(hy, hy_cudl),
                       RelativeDifference(hdx, hdx_cudl),
                       RelativeDifference(hdw, hdw_cudl)};
  for (double e : d)
    if (!(e < 1e-4)) {
      std::fprintf(stderr,
                   "bench_layers: %s: im2col and cudl differ (relative %g %g "
                   "%g)\n",
                   sh.name, d[0], d[1], d[2]);
      std::exit(1);
    }
  const char *impl = "im2col+dnnl_sgemm";
  Report(sh.name, "forward", impl, flops, TimeIt([&] {
           im2col_conv2d_forward(&g, hx.data(), hw.data(), hy.data());
         }));
  Report(sh.name, "backward data", impl, flops, TimeIt([&] {
           im2col_conv2d_backward_data(&g, hw.data(), hy_cudl.data(),
                                       hdx.data());
         }));
  Report(sh.name, "backward filter", impl, flops, TimeIt([&] {
           im2col_conv2d_backward_filter(&g, hx.data(), hy_cudl.data(),
                                         hdw.data());
         }));
}

// A convolution's tensors for cudl, in `layout`.
struct ConvTensors {
  cudl_tensor *x, *w, *b, *y, *dx, *dw;
};

ConvTensors MakeConvTensors(cudl_context *ctx, const ConvShape &sh,
                            const int64_t xs[4], const int64_t ws[4],
                            const int64_t ys[4], cudl_layout layout) {
  ConvTensors t = {Tensor(ctx, {xs[0], xs[1], xs[2], xs[3]}),
                   Tensor(ctx, {ws[0], ws[1], ws[2], ws[3]}),
                   Tensor(ctx, {sh.k}),
                   Tensor(ctx, {ys[0], ys[1], ys[2], ys[3]}),
                   Tensor(ctx, {xs[0], xs[1], xs[2], xs[3]}),
                   Tensor(ctx, {ws[0], ws[1], ws[2], ws[3]})};
  for (cudl_tensor *u : {t.x, t.w, t.y, t.dx, t.dw})
    Check(cudl_tensor_set_layout(u, layout), ctx, "set_layout");
  return t;
}

void DestroyConvTensors(const ConvTensors &t) {
  for (cudl_tensor *u : {t.x, t.w, t.b, t.y, t.dx, t.dw})
    cudl_tensor_destroy(u);
}

// cudl's three passes on t, reported as `impl`.
void TimeCudlConv(cudl_context *ctx, const cudl_conv2d_desc &desc,
                  const ConvShape &sh, const ConvTensors &t, const char *impl,
                  double flops) {
  Report(sh.name, "forward", impl, flops, TimeIt([&] {
           Check(cudl_conv2d_forward(ctx, &desc, t.x, t.w, t.b, t.y), ctx,
                 "fwd");
         }));
  Report(sh.name, "backward data", impl, flops, TimeIt([&] {
           Check(cudl_conv2d_backward_data(ctx, &desc, t.w, t.y, t.dx), ctx,
                 "bwd data");
         }));
  Report(sh.name, "backward filter", impl, flops, TimeIt([&] {
           Check(cudl_conv2d_backward_filter(ctx, &desc, t.x, t.y, t.dw), ctx,
                 "bwd filter");
         }));
}

void BenchConv(cudl_context *ctx, const ConvShape &sh) {
  cudl_conv2d_desc desc = CUDL_CONV2D_DESC_DEFAULT;
  desc.stride_h = desc.stride_w = sh.stride;
  desc.pad_h = desc.pad_w = sh.pad;
  desc.groups = sh.groups;
  const int64_t xs[4] = {sh.n, sh.c, sh.h, sh.w};
  const int64_t ws[4] = {sh.k, sh.c / sh.groups, sh.r, sh.s};
  int64_t ys[4];
  Check(cudl_conv2d_output_shape(&desc, xs, ws, ys), ctx, "output shape");
  const double flops =
      2.0 * ys[0] * ys[1] * ys[2] * ys[3] * ws[1] * ws[2] * ws[3];
  BenchSgemm(sh.k / sh.groups, sh.n * ys[2] * ys[3],
             sh.c / sh.groups * sh.r * sh.s, sh.name);
  // NCHW, then channels-last (the layout cudl's models use on the CPU),
  // reorders included where cudl makes them.
  const ConvTensors t = MakeConvTensors(ctx, sh, xs, ws, ys, CUDL_LAYOUT_NCHW);
  TimeCudlConv(ctx, desc, sh, t, "cudl", flops);
  BenchIm2col(ctx, desc, sh, ys, t.x, t.w, t.y, t.dx, t.dw, flops);
  DestroyConvTensors(t);
  const ConvTensors cl = MakeConvTensors(ctx, sh, xs, ws, ys, CUDL_LAYOUT_NHWC);
  TimeCudlConv(ctx, desc, sh, cl, "cudl (NHWC)", flops);
  DestroyConvTensors(cl);
  if (sh.groups == 1) {
    BenchOneDnnConv(sh, flops, true);
    BenchOneDnnConv(sh, flops, false);
    BenchOneDnnConv(sh, flops, false, true);
  }
}

void BenchLinear(cudl_context *ctx, const LinearShape &sh) {
  cudl_tensor *x = Tensor(ctx, {sh.rows, sh.in});
  cudl_tensor *w = Tensor(ctx, {sh.out, sh.in});
  cudl_tensor *b = Tensor(ctx, {sh.out});
  cudl_tensor *y = Tensor(ctx, {sh.rows, sh.out});
  cudl_tensor *dx = Tensor(ctx, {sh.rows, sh.in});
  cudl_tensor *dw = Tensor(ctx, {sh.out, sh.in});
  cudl_tensor *db = Tensor(ctx, {sh.out});
  const double flops = 2.0 * sh.rows * sh.in * sh.out;
  Report(sh.name, "forward", "cudl", flops, TimeIt([&] {
           Check(cudl_linear_forward(ctx, x, w, b, y), ctx, "fwd");
         }));
  Report(sh.name, "backward data", "cudl", flops, TimeIt([&] {
           Check(cudl_linear_backward(ctx, nullptr, w, y, dx, nullptr, nullptr),
                 ctx, "bwd data");
         }));
  Report(sh.name, "backward weight", "cudl", flops, TimeIt([&] {
           Check(cudl_linear_backward(ctx, x, w, y, nullptr, dw, db), ctx,
                 "bwd weight");
         }));
  for (cudl_tensor *t : {x, w, b, y, dx, dw, db}) cudl_tensor_destroy(t);
}

}  // namespace

int main(int argc, char **argv) {
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--min-time") == 0 && i + 1 < argc) {
      g_min_time = std::atof(argv[++i]);
    } else if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) {
      g_json = std::fopen(argv[++i], "w");
      if (g_json == nullptr) {
        std::perror(argv[i]);
        return 1;
      }
    } else {
      std::fprintf(stderr,
                   "usage: %s [--min-time SECONDS] [--json PATH]\n"
                   "threads: OPENBLAS_NUM_THREADS and OMP_NUM_THREADS\n",
                   argv[0]);
      return 2;
    }
  }
  cudl_context *ctx = nullptr;
  if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) return 1;
  std::printf("| %-32s | %-15s | %-22s | %9s | %8s |\n", "layer", "pass",
              "implementation", "ms", "GFLOP/s");
  std::printf("|%s|%s|%s|%s|%s|\n", std::string(34, '-').c_str(),
              std::string(17, '-').c_str(), std::string(24, '-').c_str(),
              std::string(11, '-').c_str(), std::string(10, '-').c_str());
  BenchSgemm(1024, 1024, 1024, "square 1024");
  for (const ConvShape &sh : kConvShapes) BenchConv(ctx, sh);
  for (const LinearShape &sh : kLinearShapes) {
    BenchSgemm(sh.rows, sh.out, sh.in, sh.name);
    BenchLinear(ctx, sh);
  }
  cudl_context_destroy(ctx);
  if (g_json != nullptr) std::fclose(g_json);
  return 0;
}
