/* sync_batchnorm.c - batch norm in training mode over the rows of every
 * replica together (cudl_model_set_sync_bn), composed from the batch-norm
 * ops, so that it runs wherever they do (every device and dtype) and the
 * arithmetic over the rows stays in one place:
 *  - forward: the training op gives each replica's own mean and unbiased
 *    variance (momentum 1, into scratch); those are combined over the
 *    replicas with Chan's formula (the sum of squared deviations about the
 *    global mean from each replica's about its own: no cancellation, as
 *    in the ops' statistics), and the inference op normalises with
 *    the global mean and variance;
 *  - backward: the backward op's dx uses the replica's own sums of dy and
 *    dy * xhat over its m rows; dx of the global batch norm uses the sums
 *    over all N rows. The difference,
 *      gamma * invstd * ((a / m - A / N) + xhat * (b / m - B / N)),
 *    is a per-channel affine map of xhat, which the inference op computes,
 *    and is added to dx.
 * Only per-channel values cross the host (the model's bn_sum); the
 * per-channel tensors and the correction are made per call. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

/* Host arrays of one call: doubles for the sums, floats for the tensors'
 * values. */
typedef struct {
  const cudl_allocator *allocator;
  double *d;
  float *f;
  size_t d_bytes, f_bytes;
} host_arrays;

static cudl_status host_arrays_make(cudl_model *m, int64_t channels,
                                    host_arrays *h) {
  const size_t c = (size_t)channels;
  memset(h, 0, sizeof *h);
  h->allocator = &m->allocator;
  h->d_bytes = (3 * c + 1) * sizeof(double);
  h->f_bytes = 6 * c * sizeof(float);
  h->d = (double *)cudl__host_alloc(h->allocator, h->d_bytes, 64);
  h->f = (float *)cudl__host_alloc(h->allocator, h->f_bytes, 64);
  if (h->d == NULL || h->f == NULL) {
    cudl__host_free(h->allocator, h->d, h->d_bytes);
    cudl__host_free(h->allocator, h->f, h->f_bytes);
    return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot allocate synchronised batch norm's sums");
  }
  return CUDL_OK;
}

static void host_arrays_free(host_arrays *h) {
  cudl__host_free(h->allocator, h->d, h->d_bytes);
  cudl__host_free(h->allocator, h->f, h->f_bytes);
}

/* Per-channel f32 tensors of the model's device. */
static cudl_status channel_tensors(cudl_model *m, int64_t channels, int count,
                                   cudl_tensor **out) {
  cudl_status status = CUDL_OK;
  int i;
  for (i = 0; i < count; ++i) out[i] = NULL;
  for (i = 0; i < count && status == CUDL_OK; ++i)
    status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &channels, &out[i]);
  return status;
}

static cudl_status to_host(const cudl_tensor *t, float *values) {
  return cudl_tensor_copy_to_host(t, values, cudl_tensor_nbytes(t));
}

static cudl_status from_host(cudl_tensor *t, const float *values) {
  return cudl_tensor_copy_from_host(t, values, cudl_tensor_nbytes(t));
}

cudl_status cudl__sync_batchnorm_forward(cudl_model *m, node *n,
                                         const cudl_tensor *x) {
  const int64_t channels = n->shape[0];
  /* Values per channel here (m, at least 2: the training op checks). */
  const double local = (double)(cudl_tensor_numel(x) / channels);
  const double momentum = n->momentum;
  cudl_tensor *mean_t, *var_t, *tensors[2];
  cudl_status status;
  host_arrays h;
  double *sums, total;
  float *mean, *var, *run_mean, *run_var, *invstd;
  int64_t c;
  status = host_arrays_make(m, channels, &h);
  if (status != CUDL_OK) return status;
  sums = h.d;
  mean = h.f;
  var = mean + channels;
  run_mean = var + channels;
  run_var = run_mean + channels;
  invstd = run_var + channels;
  status = channel_tensors(m, channels, 2, tensors);
  mean_t = tensors[0];
  var_t = tensors[1];
  /* Zero-filled, so that momentum 1 leaves the bare statistics. */
  if (status == CUDL_OK)
    status = cudl_batchnorm_forward_training(
        m->ctx, x, cudl__param(m, n->weight), cudl__param(m, n->bias), 1.0f,
        n->eps, mean_t, var_t, n->y, n->save_mean, n->save_invstd);
  if (status == CUDL_OK) status = to_host(mean_t, mean);
  if (status == CUDL_OK) status = to_host(var_t, var);
  if (status == CUDL_OK) {
    for (c = 0; c < channels; ++c) sums[c] = local * mean[c];
    sums[channels] = local;
    status = m->bn_sum(m->bn_group, sums, channels + 1);
  }
  if (status == CUDL_OK) {
    double *global_mean = sums + channels + 1,
           *squares = global_mean + channels;
    total = sums[channels];
    for (c = 0; c < channels; ++c) {
      const double d = (double)mean[c] - sums[c] / total;
      global_mean[c] = sums[c] / total;
      squares[c] = (double)var[c] * (local - 1.0) + local * d * d;
    }
    status = m->bn_sum(m->bn_group, squares, channels);
    if (status == CUDL_OK) {
      for (c = 0; c < channels; ++c) {
        const double v = squares[c] / total;
        mean[c] = (float)global_mean[c];
        var[c] = (float)v;
        /* As the inference op forms it from var, so that forward and
         * backward normalise alike. */
        invstd[c] = (float)(1.0 / sqrt((double)var[c] + (double)n->eps));
        squares[c] = v * total / (total - 1.0); /* unbiased, for running */
      }
    }
  }
  if (status == CUDL_OK) status = from_host(mean_t, mean);
  if (status == CUDL_OK) status = from_host(var_t, var);
  if (status == CUDL_OK)
    status = cudl_batchnorm_forward_inference(
        m->ctx, x, cudl__param(m, n->weight), cudl__param(m, n->bias), mean_t,
        var_t, n->eps, n->y);
  if (status == CUDL_OK) status = cudl_tensor_copy(n->save_mean, mean_t);
  if (status == CUDL_OK) status = from_host(n->save_invstd, invstd);
  if (status == CUDL_OK)
    status = to_host(cudl__param(m, n->running_mean), run_mean);
  if (status == CUDL_OK)
    status = to_host(cudl__param(m, n->running_var), run_var);
  if (status == CUDL_OK) {
    const double *unbiased = sums + 2 * channels + 1;
    for (c = 0; c < channels; ++c) {
      run_mean[c] = (float)((1.0 - momentum) * run_mean[c] +
                            momentum * (double)mean[c]);
      run_var[c] =
          (float)((1.0 - momentum) * run_var[c] + momentum * unbiased[c]);
    }
    status = from_host(cudl__param(m, n->running_mean), run_mean);
  }
  if (status == CUDL_OK)
    status = from_host(cudl__param(m, n->running_var), run_var);
  cudl_tensor_destroy(mean_t);
  cudl_tensor_destroy(var_t);
  host_arrays_free(&h);
  return status;
}

cudl_status cudl__sync_batchnorm_backward(cudl_model *m, node *n,
                                          const cudl_tensor *x,
                                          cudl_tensor *dx) {
  const int64_t channels = n->shape[0];
  const double local = (double)(cudl_tensor_numel(x) / channels);
  cudl_tensor *tensors[3], *correction = NULL;
  cudl_status status;
  host_arrays h;
  double *sums, total;
  float *gamma, *mean, *invstd, *coef_xhat, *coef_0, *var;
  int64_t c;
  /* The parameters' gradients are those of this replica's rows (averaged
   * with the others' later, as every gradient); dx needs the global sums. */
  status = cudl_batchnorm_backward(
      m->ctx, x, n->dy, cudl__param(m, n->weight), n->save_mean,
      n->save_invstd, dx != NULL ? dx : n->dx_scratch[0],
      cudl__grad(m, n->weight), cudl__grad(m, n->bias));
  /* Every replica has the same graph, so all of them skip this together. */
  if (status != CUDL_OK || dx == NULL) return status;
  status = host_arrays_make(m, channels, &h);
  if (status != CUDL_OK) return status;
  sums = h.d;
  gamma = h.f;
  mean = gamma + channels;
  invstd = mean + channels;
  coef_xhat = invstd + channels;
  coef_0 = coef_xhat + channels;
  var = coef_0 + channels;
  status = channel_tensors(m, channels, 3, tensors);
  /* sums: [sum dy (a) | sum dy * xhat (b) | rows]; the gradients hold them
   * rounded to f32, as the backward op wrote them. */
  if (status == CUDL_OK) status = to_host(cudl__grad(m, n->bias), coef_0);
  if (status == CUDL_OK) status = to_host(cudl__grad(m, n->weight), coef_xhat);
  if (status == CUDL_OK) status = to_host(cudl__param(m, n->weight), gamma);
  if (status == CUDL_OK) status = to_host(n->save_mean, mean);
  if (status == CUDL_OK) status = to_host(n->save_invstd, invstd);
  if (status == CUDL_OK) {
    for (c = 0; c < channels; ++c) {
      sums[c] = coef_0[c];
      sums[channels + c] = coef_xhat[c];
    }
    sums[2 * channels] = local;
    status = m->bn_sum(m->bn_group, sums, 2 * channels + 1);
  }
  if (status == CUDL_OK) {
    total = sums[2 * channels];
    for (c = 0; c < channels; ++c) {
      const double k = (double)gamma[c] * (double)invstd[c];
      const double v = 1.0 / ((double)invstd[c] * invstd[c]) - (double)n->eps;
      coef_0[c] = (float)(k * ((double)coef_0[c] / local - sums[c] / total));
      coef_xhat[c] = (float)(k * ((double)coef_xhat[c] / local -
                                  sums[channels + c] / total));
      /* The variance the forward normalised with, back from invstd (the
       * inference op forms invstd from it again). */
      var[c] = (float)(v > 0.0 ? v : 0.0);
    }
    status = from_host(tensors[0], coef_xhat);
  }
  if (status == CUDL_OK) status = from_host(tensors[1], coef_0);
  if (status == CUDL_OK) status = from_host(tensors[2], var);
  if (status == CUDL_OK)
    status = cudl_tensor_create(m->ctx, cudl_tensor_dtype(x),
                                cudl_tensor_ndim(x), cudl_tensor_shape(x),
                                &correction);
  /* Only image tensors take a layout: the batch-norm op wants x's. */
  if (status == CUDL_OK && cudl_tensor_layout(x) != CUDL_LAYOUT_NCHW)
    status = cudl_tensor_set_layout(correction, cudl_tensor_layout(x));
  if (status == CUDL_OK)
    status = cudl_batchnorm_forward_inference(m->ctx, x, tensors[0],
                                              tensors[1], n->save_mean,
                                              tensors[2], n->eps, correction);
  if (status == CUDL_OK) status = cudl_add(m->ctx, dx, 1.0f, correction, dx);
  cudl_tensor_destroy(correction);
  for (c = 0; c < 3; ++c) cudl_tensor_destroy(tensors[c]);
  host_arrays_free(&h);
  return status;
}
