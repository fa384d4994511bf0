/*
 * cuda_optim.c - the CUDA backend's optimizer updates and gradient-norm
 * clipping: launches of kernels/optim_kernels.cu on the context's stream.
 * Nothing here synchronises the host: the norm's scratch comes from the
 * context's pool and goes back to it stream-ordered, and the scaling reads
 * the norm from device memory.
 */
#include "cuda/cuda_internal.h"
#include "kernels/optim_kernels.h"

cudl_status cudl__cuda_sgd_step(cudl_context *ctx, float *params,
                                const float *grads, float *momentum_buffer,
                                int64_t n, const cudl_sgd_step_args *args) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_sgd_step(s->stream, params, grads,
                                          momentum_buffer, n, args));
  return CUDL_OK;
}

cudl_status cudl__cuda_adam_step(cudl_context *ctx, float *params,
                                 const float *grads, float *exp_avg,
                                 float *exp_avg_sq, int64_t n,
                                 const cudl_adam_step_args *args) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_adam_step(s->stream, params, grads, exp_avg,
                                           exp_avg_sq, n, args));
  return CUDL_OK;
}

cudl_status cudl__cuda_l2_norm_f32(cudl_context *ctx, const float *x,
                                   float *norm, int64_t n) {
  void *workspace = NULL;
  cudaError_t err;
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl__cuda_pool_alloc(ctx, s, &workspace,
                                 cudl_l2_norm_workspace(n) * sizeof(double)));
  err = cudl_launch_l2_norm_f32(s->stream, x, norm, n, (double *)workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_l2_norm_f32", __FILE__,
                          __LINE__);
}

cudl_status cudl__cuda_clip_scale_f32(cudl_context *ctx, float *x, int64_t n,
                                      const float *norm, float max_norm) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx,
                cudl_launch_clip_scale_f32(s->stream, x, n, norm, max_norm));
  return CUDL_OK;
}
