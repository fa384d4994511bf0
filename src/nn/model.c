/* model.c - the model graph once built (graph.c builds it): memory
 * planning (arenas, shared gradient buffers), forward and backward through
 * the layer table (layers.h), parameters by name, diagnostics and
 * check-numerics. What a node of each kind does is in layers*.c. */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/layers.h"

/* Arena offsets are rounded up to this many floats (64 bytes), so every
 * parameter is aligned for vector loads. */
#define ARENA_ALIGN 16

/* ---- small helpers ---- */

static const char *kind_name(const node *n) {
  return cudl__layers[n->kind]->name;
}

static void destroy_views(cudl_model *m) {
  int i, k;
  for (i = 0; i < m->node_count; ++i) {
    node *n = &m->nodes[i];
    cudl_tensor **views[] = {&n->y, &n->dy, &n->aux, &n->flat_in};
    for (k = 0; k < (int)(sizeof views / sizeof views[0]); ++k) {
      cudl_tensor_destroy(*views[k]);
      *views[k] = NULL;
    }
    for (k = 0; k < NODE_MAX_INPUTS; ++k) {
      cudl_tensor_destroy(n->dx_view[k]);
      cudl_tensor_destroy(n->dx_scratch[k]);
      n->dx_view[k] = n->dx_scratch[k] = NULL;
    }
  }
  cudl_tensor_destroy(m->output_f32);
  cudl_tensor_destroy(m->output_grad_f32);
  m->output_f32 = m->output_grad_f32 = NULL;
  m->rows = 0;
}

cudl_context *cudl_model_context(const cudl_model *m) {
  return m == NULL ? NULL : m->ctx;
}

void cudl_model_destroy(cudl_model *m) {
  cudl_allocator allocator;
  int i;
  if (m == NULL) return;
  /* Its bucket views of the gradient arena go before the arena. */
  if (m->grad_sync != NULL) m->grad_sync->release(m->grad_sync_state);
  destroy_views(m);
  cudl_model_set_diagnostics(m, 0);
  for (i = 0; i < m->node_count; ++i) {
    cudl_tensor_destroy(m->nodes[i].out_full);
    cudl_tensor_destroy(m->nodes[i].aux_full);
    cudl_tensor_destroy(m->nodes[i].save_mean);
    cudl_tensor_destroy(m->nodes[i].save_invstd);
  }
  for (i = 0; i < m->param_count; ++i) {
    cudl_tensor_destroy(m->params[i].value);
    cudl_tensor_destroy(m->params[i].grad);
    cudl_tensor_destroy(m->params[i].compute_value);
    cudl_tensor_destroy(m->params[i].compute_grad);
  }
  for (i = 0; i < m->slot_count; ++i) cudl_tensor_destroy(m->slots[i]);
  cudl__replay_release(m->ctx, &m->replay);
  cudl__inference_release(m);
  cudl_tensor_destroy(m->compute_arena);
  cudl_tensor_destroy(m->compute_grad_arena);
  cudl_tensor_destroy(m->output_f32_full);
  cudl_tensor_destroy(m->output_grad_f32_full);
  cudl_tensor_destroy(m->scratch);
  cudl_tensor_destroy(m->loss_value);
  cudl_tensor_destroy(m->target_view);
  cudl_tensor_destroy(m->param_arena);
  cudl_tensor_destroy(m->grad_arena);
  cudl_tensor_destroy(m->buffer_arena);
  allocator = m->allocator;
  cudl__host_free(&allocator, m->slots,
                  (size_t)m->slot_count * sizeof *m->slots);
  cudl__host_free(&allocator, m->slot_numel,
                  (size_t)m->slot_count * sizeof *m->slot_numel);
  cudl__host_free(&allocator, m->nodes,
                  (size_t)m->node_capacity * sizeof *m->nodes);
  cudl__host_free(&allocator, m->params,
                  (size_t)m->param_capacity * sizeof *m->params);
  cudl__host_free(&allocator, m, sizeof *m);
}

cudl_status cudl_model_set_output(cudl_model *m, int output,
                                  cudl_model_loss loss) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled; the output cannot change");
  if (output < 1 || output >= m->node_count)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "output node %d does not exist or is the input", output);
  if ((int)loss < (int)CUDL_MODEL_LOSS_CROSS_ENTROPY ||
      (int)loss > (int)CUDL_MODEL_LOSS_BCE_WITH_LOGITS)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "unknown loss %d",
                     (int)loss);
  if (loss == CUDL_MODEL_LOSS_CROSS_ENTROPY && m->nodes[output].ndim != 1)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "cross-entropy needs logits [K] per sample; node %d has "
                     "%d dimensions (add a flatten)",
                     output, m->nodes[output].ndim);
  m->output = output;
  m->loss = loss;
  m->has_output = 1;
  return CUDL_OK;
}

/* ---- compiling ---- */

/* Whether node n's output is a view of an input's (cudl__layer). */
static int is_view(const cudl_model *m, const node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  if (m->inference && cudl__inference_viewed_input(m, n) >= 0) return 1;
  return layer->output_is_view != NULL && layer->output_is_view(m, n);
}

/* The input whose output a view node's is: the first, but where an
 * inference compile says otherwise. */
static int viewed_input(const cudl_model *m, const node *n) {
  const int k = m->inference ? cudl__inference_viewed_input(m, n) : -1;
  return k >= 0 ? k : 0;
}

/* Whether node n has n->aux, an element buffer of its output's shape. */
static int has_aux(const cudl_model *m, const node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  /* element_aux is what a random forward keeps for backward: the
   * evaluation forward of an inference compile draws nothing. */
  return (layer->element_aux && !m->inference) ||
         (layer->needs_aux != NULL && layer->needs_aux(m, n));
}

/* The layout of batches of a per-sample shape of ndim dimensions: the
 * model's for images, [C, H, W]; NCHW (row-major) for the rest. */
static cudl_layout layout_of(const cudl_model *m, int ndim) {
  return ndim == 3 ? m->layout : CUDL_LAYOUT_NCHW;
}

static cudl_status make_batch_tensor(cudl_model *m, int64_t rows, const node *n,
                                     cudl_tensor **out) {
  int64_t shape[4];
  int i;
  cudl_status status;
  shape[0] = rows;
  for (i = 0; i < n->ndim; ++i) shape[i + 1] = n->shape[i];
  status = cudl_tensor_create(m->ctx, m->dtype, n->ndim + 1, shape, out);
  if (status == CUDL_OK)
    status = cudl_tensor_set_layout(*out, layout_of(m, n->ndim));
  return status;
}

/* A gradient slot of numel floats per sample: a free one, or a new one. */
static cudl_status take_slot(cudl_model *m, int64_t numel, char *in_use,
                             int *slot) {
  int i, cap;
  for (i = 0; i < m->slot_count; ++i)
    if (!in_use[i] && m->slot_numel[i] == numel) {
      in_use[i] = 1;
      *slot = i;
      return CUDL_OK;
    }
  /* slots and slot_numel grow together, one at a time (few dozen). */
  cap = m->slot_count;
  {
    cudl_tensor **slots = (cudl_tensor **)cudl__host_alloc(
        &m->allocator, (size_t)(cap + 1) * sizeof *slots, 16);
    int64_t *nums = (int64_t *)cudl__host_alloc(
        &m->allocator, (size_t)(cap + 1) * sizeof *nums, 16);
    int64_t shape[1];
    cudl_status status;
    if (slots == NULL || nums == NULL) {
      cudl__host_free(&m->allocator, slots, (size_t)(cap + 1) * sizeof *slots);
      cudl__host_free(&m->allocator, nums, (size_t)(cap + 1) * sizeof *nums);
      return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot plan gradient buffers");
    }
    if (cap > 0) {
      memcpy(slots, m->slots, (size_t)cap * sizeof *slots);
      memcpy(nums, m->slot_numel, (size_t)cap * sizeof *nums);
    }
    cudl__host_free(&m->allocator, m->slots, (size_t)cap * sizeof *slots);
    cudl__host_free(&m->allocator, m->slot_numel, (size_t)cap * sizeof *nums);
    m->slots = slots;
    m->slot_numel = nums;
    shape[0] = m->max_batch * numel;
    m->slots[cap] = NULL;
    m->slot_numel[cap] = numel;
    m->slot_count = cap + 1;
    status = cudl_tensor_create(m->ctx, m->dtype, 1, shape, &m->slots[cap]);
    if (status != CUDL_OK) return status;
  }
  in_use[cap] = 1;
  *slot = cap;
  return CUDL_OK;
}

/* Gradient buffers by liveness: walking backward from the last node, an
 * input's gradient is live from the step of its last consumer down to its
 * own step; a buffer is reused once its node's step is done. A fused
 * ReLU's step (fusion.c) writes the gradients of its batch norm's input
 * and of the residual, a fused dropout's that of its activation's input:
 * theirs are live from that step, so that either path, fused or not, finds
 * its buffers free. */
static cudl_status plan_gradients(cudl_model *m) {
  char in_use[4096];
  int i, k;
  cudl_status status;
  memset(in_use, 0, sizeof in_use);
  status = take_slot(m, m->nodes[m->output].numel, in_use,
                     &m->nodes[m->output].grad_slot);
  for (i = m->node_count - 1; i >= 1 && status == CUDL_OK; --i) {
    node *n = &m->nodes[i];
    int early[2], count = 0;
    if (n->grad_slot < 0) continue; /* no gradient reaches it */
    if (n->fused_bn != 0) early[count++] = m->nodes[n->fused_bn].in[0];
    if (n->fused_add != 0) early[count++] = n->fused_residual;
    if (n->fused_act != 0) early[count++] = m->nodes[n->fused_act].in[0];
    for (k = 0; k < n->n_in + count && status == CUDL_OK; ++k) {
      const int in = k < n->n_in ? n->in[k] : early[k - n->n_in];
      node *src = &m->nodes[in];
      if (in == 0 || src->grad_slot >= 0) continue;
      if (m->slot_count >= (int)sizeof in_use)
        return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                         "too many gradient buffers");
      status = take_slot(m, src->numel, in_use, &src->grad_slot);
    }
    in_use[n->grad_slot] = 0;
  }
  return status;
}

/* a + b and a * b, stuck at UINT64_MAX rather than wrapping. */
static uint64_t add_saturated(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
static uint64_t mul_saturated(uint64_t a, uint64_t b) {
  return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* What compiling for max_batch takes at least (parameters, their
 * gradients, buffers, every node's output and mask for max_batch rows, the
 * scratch; the gradient buffers come on top), against the context's memory
 * limit before anything is allocated: a batch far too large fails at once,
 * instead of after the memory it did get has been filled (zeroed) almost
 * to the limit, where the operating system may end the process first. */
static cudl_status check_compile_memory(const cudl_model *m,
                                        int64_t max_batch) {
  cudl_context *ctx = m->ctx;
  cudl_memory_stats stats;
  uint64_t per_row = 0, floats, bytes, max_numel = 1;
  int i;
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (!is_view(m, n))
      per_row = add_saturated(per_row, (uint64_t)n->numel);
    if (has_aux(m, n)) per_row = add_saturated(per_row, (uint64_t)n->numel);
    if ((uint64_t)n->numel > max_numel) max_numel = (uint64_t)n->numel;
  }
  per_row = add_saturated(per_row, max_numel); /* the scratch */
  floats =
      add_saturated(mul_saturated((uint64_t)max_batch, per_row),
                    add_saturated(mul_saturated(m->inference ? 1 : 2,
                                                (uint64_t)m->param_floats),
                                  (uint64_t)m->buffer_floats));
  bytes = mul_saturated(floats, sizeof(float));
  if (cudl_context_memory_stats(ctx, &stats) != CUDL_OK) return CUDL_OK;
  if (bytes <= (uint64_t)SIZE_MAX &&
      !cudl__memory_limit_exceeded(ctx, (size_t)bytes, stats.bytes_in_use))
    return CUDL_OK;
  return cudl__fail(
      ctx, CUDL_ERR_OUT_OF_MEMORY, "cudl_model_compile",
      "batches of %lld need at least %.1f MiB (parameters, gradients and "
      "every layer's output), with %.1f MiB in use: more than the "
      "context's memory limit of %.1f MiB; a smaller batch needs less "
      "(cudl_context_set_memory_limit changes the limit)",
      (long long)max_batch, (double)bytes / 1048576.0,
      (double)stats.bytes_in_use / 1048576.0,
      (double)cudl__memory_limit(ctx) / 1048576.0);
}

/* The layout a parameter of a dtype_weights layer computes in: its
 * layer's data layout for a convolution weight, [K, C, R, S] (4-D), so
 * that cuDNN and oneDNN read channels-last filters; NCHW otherwise. */
static cudl_layout param_layout(const cudl_model *m, const param_entry *p) {
  return p->ndim == 4 ? m->layout : CUDL_LAYOUT_NCHW;
}

/* Whether the dtype_weights layers compute with working copies of their
 * parameters rather than the f32 masters: in mixed precision, or with a
 * channels-last convolution weight. */
static int needs_compute_arenas(const cudl_model *m) {
  int i;
  if (m->dtype != CUDL_DTYPE_F32) return 1;
  for (i = 1; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (cudl__layers[n->kind]->dtype_weights && n->weight >= 0 &&
        param_layout(m, &m->params[n->weight]) != CUDL_LAYOUT_NCHW)
      return 1;
  }
  return 0;
}

/* The working copies of the parameter and gradient arenas (the whole
 * arenas, at the masters' offsets, so that in mixed precision one
 * conversion a step refreshes every weight), and the views of them for the
 * parameters that differ from their masters in dtype or layout; the rest
 * (batch norm, PReLU, and in f32 every non-convolution weight) keep
 * reading their f32 masters. */
static cudl_status make_compute_arenas(cudl_model *m) {
  int64_t shape[1];
  int i, k;
  cudl_status status;
  shape[0] = m->param_floats;
  status = cudl_tensor_create(m->ctx, m->dtype, 1, shape, &m->compute_arena);
  if (status == CUDL_OK && !m->inference)
    status =
        cudl_tensor_create(m->ctx, m->dtype, 1, shape, &m->compute_grad_arena);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const node *n = &m->nodes[i];
    const int owned[2] = {n->weight, n->bias};
    if (!cudl__layers[n->kind]->dtype_weights) continue;
    for (k = 0; k < 2 && status == CUDL_OK; ++k) {
      param_entry *p;
      cudl_layout layout;
      if (owned[k] < 0) continue;
      p = &m->params[owned[k]];
      layout = param_layout(m, p);
      if (m->dtype == CUDL_DTYPE_F32 && layout == CUDL_LAYOUT_NCHW) continue;
      status = cudl__tensor_view(m->compute_arena, p->offset, p->ndim, p->shape,
                                 &p->compute_value);
      if (status == CUDL_OK)
        status = cudl_tensor_set_layout(p->compute_value, layout);
      if (status == CUDL_OK && m->compute_grad_arena != NULL)
        status = cudl__tensor_view(m->compute_grad_arena, p->offset, p->ndim,
                                   p->shape, &p->compute_grad);
      if (status == CUDL_OK && p->compute_grad != NULL)
        status = cudl_tensor_set_layout(p->compute_grad, layout);
    }
  }
  return status;
}

/* Channels-last puts an image's values in [H, W, C] order: a linear layer
 * reading them flat would see another order than its weights were made
 * for (PyTorch's [C, H, W]). A flatten puts them back (layers.c). */
static cudl_status check_layout_rules(cudl_model *m) {
  int i;
  if (m->layout == CUDL_LAYOUT_NCHW) return CUDL_OK;
  for (i = 1; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    const node *src = &m->nodes[n->in[0]];
    if (cudl__layers[n->kind]->flat_input && src->ndim == 3 &&
        src->shape[0] > 1 && src->shape[1] * src->shape[2] > 1)
      return cudl__fail(m->ctx, CUDL_ERR_SHAPE, "cudl_model_compile",
                       "node %d (%s%s%s) reads the [%lld, %lld, %lld] output "
                       "of node %d flat; in the nhwc layout add a flatten "
                       "between them (cudl_model_add_flatten), which puts "
                       "the values in the [C, H, W] order its weights expect",
                       i, cudl__layers[n->kind]->name, n->name[0] ? " " : "",
                       n->name, (long long)src->shape[0],
                       (long long)src->shape[1], (long long)src->shape[2],
                       n->in[0]);
  }
  return CUDL_OK;
}

cudl_status cudl_model_compile(cudl_model *m, int64_t max_batch) {
  cudl_context *ctx;
  int64_t shape[1], max_numel = 1;
  int i;
  cudl_status status = CUDL_OK;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = m->ctx;
  if (m->compiled)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is already compiled");
  if (!m->has_output)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "no output: call cudl_model_set_output first");
  if (max_batch < 1 || max_batch > (int64_t)1 << 31)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "max_batch is %lld: must be in [1, 2^31]",
                     (long long)max_batch);
  status = check_layout_rules(m);
  if (status != CUDL_OK) return status;
  m->max_batch = max_batch;

  /* Arenas: trainable parameters, then buffers, each aligned. Each count
   * is below 2^63 (the layers bound their factors); the sums are checked
   * here, before anything is allocated. */
  m->param_floats = m->buffer_floats = 0;
  for (i = 0; i < m->param_count; ++i) {
    param_entry *p = &m->params[i];
    int64_t *cursor = p->trainable ? &m->param_floats : &m->buffer_floats;
    int64_t aligned;
    if (p->numel > INT64_MAX - (ARENA_ALIGN - 1) ||
        (aligned = (p->numel + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN) >
            INT64_MAX - *cursor)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "the %s overflow a 64-bit count at \"%s\" (%lld "
                       "values)",
                       p->trainable ? "parameters" : "buffers", p->name,
                       (long long)p->numel);
    p->offset = *cursor;
    *cursor += aligned;
  }
  status = check_compile_memory(m, max_batch);
  if (status != CUDL_OK) return status;
  shape[0] = m->param_floats;
  status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->param_arena);
  if (status == CUDL_OK && !m->inference)
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->grad_arena);
  shape[0] = m->buffer_floats;
  if (status == CUDL_OK)
    status =
        cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->buffer_arena);
  for (i = 0; i < m->param_count && status == CUDL_OK; ++i) {
    param_entry *p = &m->params[i];
    status = cudl__tensor_view(p->trainable ? m->param_arena : m->buffer_arena,
                               p->offset, p->ndim, p->shape, &p->value);
    if (status == CUDL_OK && p->trainable && m->grad_arena != NULL)
      status = cudl__tensor_view(m->grad_arena, p->offset, p->ndim, p->shape,
                                 &p->grad);
  }
  if (status == CUDL_OK && needs_compute_arenas(m))
    status = make_compute_arenas(m);

  /* Node memory. */
  for (i = 0; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    const cudl__layer *layer = cudl__layers[n->kind];
    if (n->numel > max_numel) max_numel = n->numel;
    /* An inference compile shares the outputs' buffers
     * (cudl__inference_plan, below) and keeps no batch statistics. */
    if (!is_view(m, n) && !m->inference)
      status = make_batch_tensor(m, max_batch, n, &n->out_full);
    if (status == CUDL_OK && has_aux(m, n))
      status = make_batch_tensor(m, max_batch, n, &n->aux_full);
    if (status == CUDL_OK && layer->channel_stats && !m->inference) {
      shape[0] = n->shape[0];
      status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &n->save_mean);
      if (status == CUDL_OK)
        status =
            cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &n->save_invstd);
    }
  }
  if (status == CUDL_OK && m->inference) status = cudl__inference_plan(m);
  if (m->inference)
    cudl__fusion_clear(m);
  else
    cudl__fusion_mark(m);
  if (status == CUDL_OK && !m->inference) status = plan_gradients(m);
  shape[0] = max_batch * max_numel;
  if (status == CUDL_OK && !m->inference)
    status = cudl_tensor_create(ctx, m->dtype, 1, shape, &m->scratch);
  if (status == CUDL_OK && (m->dtype != CUDL_DTYPE_F32 ||
                            layout_of(m, m->nodes[m->output].ndim) !=
                                CUDL_LAYOUT_NCHW)) {
    shape[0] = max_batch * m->nodes[m->output].numel;
    status =
        cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->output_f32_full);
    if (status == CUDL_OK && !m->inference)
      status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape,
                                  &m->output_grad_f32_full);
  }
  shape[0] = 1;
  if (status == CUDL_OK)
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 0, shape, &m->loss_value);
  if (status != CUDL_OK) {
    /* Leave the model as it was before compiling: release what was made. */
    cudl_status kept = status;
    for (i = 0; i < m->node_count; ++i) {
      node *n = &m->nodes[i];
      cudl_tensor_destroy(n->out_full);
      cudl_tensor_destroy(n->aux_full);
      cudl_tensor_destroy(n->save_mean);
      cudl_tensor_destroy(n->save_invstd);
      n->out_full = n->aux_full = n->save_mean = n->save_invstd = NULL;
      n->grad_slot = -1;
    }
    for (i = 0; i < m->param_count; ++i) {
      param_entry *p = &m->params[i];
      cudl_tensor_destroy(p->value);
      cudl_tensor_destroy(p->grad);
      cudl_tensor_destroy(p->compute_value);
      cudl_tensor_destroy(p->compute_grad);
      p->value = p->grad = p->compute_value = p->compute_grad = NULL;
    }
    cudl__replay_release(m->ctx, &m->replay);
    cudl__inference_release(m);
    cudl__fusion_clear(m);
    cudl_tensor_destroy(m->compute_arena);
    cudl_tensor_destroy(m->compute_grad_arena);
    cudl_tensor_destroy(m->output_f32_full);
    cudl_tensor_destroy(m->output_grad_f32_full);
    m->compute_arena = m->compute_grad_arena = NULL;
    m->output_f32_full = m->output_grad_f32_full = NULL;
    for (i = 0; i < m->slot_count; ++i) cudl_tensor_destroy(m->slots[i]);
    cudl__host_free(&m->allocator, m->slots,
                    (size_t)m->slot_count * sizeof *m->slots);
    cudl__host_free(&m->allocator, m->slot_numel,
                    (size_t)m->slot_count * sizeof *m->slot_numel);
    m->slots = NULL;
    m->slot_numel = NULL;
    m->slot_count = 0;
    cudl_tensor_destroy(m->scratch);
    cudl_tensor_destroy(m->loss_value);
    cudl_tensor_destroy(m->param_arena);
    cudl_tensor_destroy(m->grad_arena);
    cudl_tensor_destroy(m->buffer_arena);
    m->scratch = m->loss_value = NULL;
    m->param_arena = m->grad_arena = m->buffer_arena = NULL;
    return kept;
  }
  m->compiled = 1;
  return cudl_model_init(m, CUDL_INIT_ZEROS);
}

cudl_status cudl_model_compile_inference(cudl_model *m, int64_t max_batch) {
  int training;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is already compiled");
  if (!m->has_output)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "no output: call cudl_model_set_output first");
  status = cudl__inference_mark(m);
  if (status != CUDL_OK) return status;
  training = m->training;
  m->inference = 1;
  m->training = 0;
  status = cudl_model_compile(m, max_batch);
  if (status != CUDL_OK) {
    /* As before the call: a model that can still be compiled either way. */
    m->inference = 0;
    m->training = training;
    cudl__inference_unmark(m);
  }
  return status;
}

/* ---- parameters ---- */

static int find_param(const cudl_model *m, const char *name) {
  int i;
  if (m == NULL || name == NULL) return -1;
  for (i = 0; i < m->param_count; ++i)
    if (strcmp(m->params[i].name, name) == 0) return i;
  return -1;
}

/* Parameters are registered per layer; list the trainable ones first. */
static int param_by_listing(const cudl_model *m, int index) {
  int i, seen = 0, pass;
  for (pass = 1; pass >= 0; --pass)
    for (i = 0; i < m->param_count; ++i)
      if (m->params[i].trainable == pass && seen++ == index) return i;
  return -1;
}

int cudl_model_param_count(const cudl_model *m) {
  return m == NULL ? 0 : m->param_count;
}

const char *cudl_model_param_name(const cudl_model *m, int index,
                                  int *trainable) {
  int i;
  if (m == NULL || index < 0 || index >= m->param_count) return NULL;
  i = param_by_listing(m, index);
  if (trainable != NULL) *trainable = m->params[i].trainable;
  return m->params[i].name;
}

cudl_tensor *cudl_model_param(cudl_model *m, const char *name) {
  int i = find_param(m, name);
  return i < 0 ? NULL : m->params[i].value;
}

cudl_tensor *cudl_model_grad(cudl_model *m, const char *name) {
  int i = find_param(m, name);
  return i < 0 ? NULL : m->params[i].grad;
}

cudl_tensor *cudl_model_params(cudl_model *m) {
  return m == NULL ? NULL : m->param_arena;
}

cudl_tensor *cudl_model_grads(cudl_model *m) {
  return m == NULL ? NULL : m->grad_arena;
}

cudl_status cudl_model_init(cudl_model *m, cudl_init_scheme scheme) {
  int i;
  cudl_status status = CUDL_OK;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model before initialising it");
  if ((int)scheme < (int)CUDL_INIT_KAIMING_NORMAL ||
      (int)scheme > (int)CUDL_INIT_ZEROS)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown initialisation scheme %d", (int)scheme);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const cudl__layer *layer = cudl__layers[m->nodes[i].kind];
    if (layer->init != NULL) status = layer->init(m, &m->nodes[i], scheme);
  }
  return status;
}

/* ---- views for the current batch size ---- */

/* [rows, shape] at the start of base, in `layout`. */
static cudl_status batch_view(const cudl_tensor *base, int64_t rows, int ndim,
                              const int64_t *shape, cudl_layout layout,
                              cudl_tensor **out) {
  int64_t full[4];
  int i;
  cudl_status status;
  full[0] = rows;
  for (i = 0; i < ndim; ++i) full[i + 1] = shape[i];
  status = cudl__tensor_view(base, 0, ndim + 1, full, out);
  if (status == CUDL_OK) status = cudl_tensor_set_layout(*out, layout);
  return status;
}

/* A node's batch of its own shape, in the model's layout for images. */
static cudl_status node_view(const cudl_model *m, const cudl_tensor *base,
                             int64_t rows, const node *n, cudl_tensor **out) {
  return batch_view(base, rows, n->ndim, n->shape, layout_of(m, n->ndim), out);
}

static cudl_status build_views(cudl_model *m, int64_t rows) {
  int i, k;
  cudl_status status = CUDL_OK;
  destroy_views(m);
  for (i = 0; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    const int flat_input = cudl__layers[n->kind]->flat_input;
    /* A view of its input's values (built before it: nodes are in
     * topological order). */
    if (is_view(m, n))
      status =
          node_view(m, m->nodes[n->in[viewed_input(m, n)]].y, rows, n, &n->y);
    else
      status = node_view(m, n->out_full, rows, n, &n->y);
    if (status == CUDL_OK && n->aux_full != NULL)
      status = node_view(m, n->aux_full, rows, n, &n->aux);
    if (status == CUDL_OK && n->grad_slot >= 0)
      status = node_view(m, m->slots[n->grad_slot], rows, n, &n->dy);
    if (status == CUDL_OK && flat_input)
      status = batch_view(m->nodes[n->in[0]].y, rows, 1,
                          &m->nodes[n->in[0]].numel, CUDL_LAYOUT_NCHW,
                          &n->flat_in);
    for (k = 0; k < n->n_in && status == CUDL_OK && i > 0; ++k) {
      const node *src = &m->nodes[n->in[k]];
      int ndim = flat_input ? 1 : src->ndim;
      const int64_t *shape = flat_input ? &src->numel : src->shape;
      if (src->grad_slot >= 0)
        status = batch_view(m->slots[src->grad_slot], rows, ndim, shape,
                            layout_of(m, ndim), &n->dx_view[k]);
      if (status == CUDL_OK && m->scratch != NULL)
        status = batch_view(m->scratch, rows, ndim, shape, layout_of(m, ndim),
                            &n->dx_scratch[k]);
    }
  }
  if (status == CUDL_OK && m->output_f32_full != NULL) {
    const node *o = &m->nodes[m->output];
    status = batch_view(m->output_f32_full, rows, o->ndim, o->shape,
                        CUDL_LAYOUT_NCHW, &m->output_f32);
    if (status == CUDL_OK && m->output_grad_f32_full != NULL)
      status = batch_view(m->output_grad_f32_full, rows, o->ndim, o->shape,
                          CUDL_LAYOUT_NCHW, &m->output_grad_f32);
  }
  if (status == CUDL_OK)
    m->rows = rows;
  else
    destroy_views(m);
  return status;
}

/* ---- forward ---- */

cudl_status cudl_model_set_fusion(cudl_model *m, int enabled) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m->fusion_off = !enabled;
  return CUDL_OK;
}

int cudl_model_fusion(const cudl_model *m) {
  return m != NULL && !m->fusion_off;
}

cudl_status cudl_model_set_training(cudl_model *m, int training) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (m->inference && training)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled for inference "
                     "(cudl_model_compile_inference): it has no training "
                     "mode; compile another with cudl_model_compile");
  m->training = training != 0;
  return CUDL_OK;
}

static cudl_status forward_node(cudl_model *m, node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  if (m->inference) return cudl__inference_forward_node(m, n);
  if (layer->forward == NULL) return CUDL_OK; /* copied in, or a view */
  return layer->forward(m, n, m->nodes[n->in[0]].y);
}

/* The output as the loss sees it: f32 (the 16-bit output converted, in
 * mixed precision). */
static const cudl_tensor *output_f32(const cudl_model *m) {
  return m->output_f32 != NULL ? m->output_f32 : m->nodes[m->output].y;
}

static cudl_status compute_loss(cudl_model *m, const cudl_tensor *target) {
  const cudl_tensor *out = output_f32(m);
  switch (m->loss) {
    case CUDL_MODEL_LOSS_CROSS_ENTROPY:
      return cudl_cross_entropy_forward(m->ctx, out, target, 0.0f,
                                        CUDL_REDUCTION_MEAN, m->loss_value);
    case CUDL_MODEL_LOSS_MSE:
      return cudl_mse_loss_forward(m->ctx, out, target, CUDL_REDUCTION_MEAN,
                                   m->loss_value);
    case CUDL_MODEL_LOSS_BCE_WITH_LOGITS:
      return cudl_bce_with_logits_forward(m->ctx, out, target,
                                          CUDL_REDUCTION_MEAN, m->loss_value);
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL, "unknown loss");
}

/* ---- diagnostics ---- */

/* Units of a node's per-sample shape: channels of [C, H, W], else every
 * feature; *inner the elements of one unit in one sample. */
static int64_t units_of(const node *n, int64_t *inner) {
  if (n->ndim == 3) {
    *inner = n->shape[1] * n->shape[2];
    return n->shape[0];
  }
  *inner = 1;
  return n->numel;
}

/* ReLU-family nodes, whose dead units the diagnostics count. */
static int has_dead_units(const node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  return layer->has_dead_units != NULL && layer->has_dead_units(n);
}

static cudl_status record_activity(cudl_model *m, node *n) {
  const node *src = &m->nodes[n->in[0]];
  int64_t inner, units = units_of(src, &inner), outer = m->rows;
  cudl_context *ctx = m->ctx;
  if (src->y->layout == CUDL_LAYOUT_NHWC) { /* [rows * H * W, C, 1] */
    outer *= inner;
    inner = 1;
  }
  return CUDL_OP_CALL(ctx, __func__, src->y->dtype, unit_activity, src->y->data,
                      (float *)n->activity->data, outer, units, inner);
}

/* diag_norms[slot] = the L2 norm of t, on the device (no waiting). */
static cudl_status norm_into(cudl_model *m, const cudl_tensor *t, int slot) {
  cudl_context *ctx = m->ctx;
  return CUDL_OP_CALL(ctx, __func__, t->dtype, l2_norm, t->data,
                      (float *)m->diag_norms->data + slot, t->numel);
}

cudl_status cudl_model_set_diagnostics(cudl_model *m, int every) {
  return cudl_model_set_diagnostics_after(m, every, 0);
}

cudl_status cudl_model_set_diagnostics_after(cudl_model *m, int every,
                                             int64_t steps_done) {
  cudl_status status = CUDL_OK;
  int i;
  const int64_t two = 2;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < m->node_count; ++i) {
    cudl_tensor_destroy(m->nodes[i].activity);
    m->nodes[i].activity = NULL;
  }
  cudl_tensor_destroy(m->diag_norms);
  m->diag_norms = NULL;
  m->diagnostics = 0;
  m->diag_steps = m->diag_forwards = 0;
  m->diag_norms_now = 0;
  if (every == 0) return CUDL_OK;
  if (every < 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "every is %d: the period must be at least 1 (0: off)",
                     every);
  if (steps_done < 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "steps_done is %" PRId64 ": it must be at least 0",
                     steps_done);
  if (m->inference)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "diagnostics need training steps; the model is compiled "
                     "for inference (cudl_model_compile_inference)");
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model before switching diagnostics on");
  {
    const int64_t slots = two * m->node_count;
    status =
        cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &slots, &m->diag_norms);
  }
  if (status == CUDL_OK) status = cudl_tensor_fill(m->diag_norms, NAN);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    int64_t inner, units;
    if (!has_dead_units(n)) continue;
    units = units_of(&m->nodes[n->in[0]], &inner);
    status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &units,
                                &n->activity); /* zero-filled */
  }
  if (status != CUDL_OK) {
    cudl_model_set_diagnostics(m, 0);
    return status;
  }
  m->diagnostics = every;
  m->diag_forwards = steps_done % every;
  return CUDL_OK;
}

/* y's values as f32 on the host, converted first in mixed precision. */
static cudl_status output_to_host(cudl_model *m, const cudl_tensor *y,
                                  float *host) {
  cudl_tensor *wide = NULL;
  cudl_status status;
  if (y->dtype == CUDL_DTYPE_F32)
    return cudl_tensor_copy_to_host(y, host, y->nbytes);
  status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, y->ndim, y->shape, &wide);
  if (status == CUDL_OK) status = cudl_tensor_convert(wide, y);
  if (status == CUDL_OK)
    status = cudl_tensor_copy_to_host(wide, host, wide->nbytes);
  cudl_tensor_destroy(wide);
  return status;
}

static const char *diagnostics_kind(const node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  return layer->diagnostics_kind != NULL ? layer->diagnostics_kind(n)
                                         : layer->name;
}

cudl_status cudl_model_diagnostics(cudl_model *m, cudl_layer_diagnostics *rows,
                                   int capacity, int *count, int64_t *steps) {
  cudl_status status = CUDL_OK;
  float *host = NULL, *norms = NULL;
  size_t host_bytes = 0, norm_bytes;
  int i, out = 0;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (rows == NULL || count == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "rows and count must not be NULL");
  *count = 0;
  if (!m->diagnostics)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "diagnostics are off (cudl_model_set_diagnostics)");
  if (!m->forward_done)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "diagnostics need a forward first");
  if (capacity < m->node_count - 1)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "capacity %d is below the %d layers", capacity,
                     m->node_count - 1);
  /* One host buffer large enough for any node's output in f32, or its
   * activity. */
  for (i = 1; i < m->node_count; ++i)
    if (m->nodes[i].y != NULL &&
        (size_t)m->nodes[i].y->numel * sizeof(float) > host_bytes)
      host_bytes = (size_t)m->nodes[i].y->numel * sizeof(float);
  norm_bytes = m->diag_norms->nbytes;
  host = (float *)cudl__host_alloc(&m->allocator, host_bytes, 64);
  norms = (float *)cudl__host_alloc(&m->allocator, norm_bytes, 64);
  if (host == NULL || norms == NULL)
    status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot allocate %zu bytes for the diagnostics",
                       host_bytes + norm_bytes);
  if (status == CUDL_OK)
    status = cudl_tensor_copy_to_host(m->diag_norms, norms, norm_bytes);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const node *n = &m->nodes[i];
    const cudl__layer *layer = cudl__layers[n->kind];
    cudl_layer_diagnostics *r;
    double sum = 0.0, sum_sq = 0.0, mean;
    int64_t k, count_y;
    /* Reshaping layers have nothing to report, in every layout (a
     * channels-last flatten's copy is the same values). */
    if (layer->output_is_view != NULL) continue;
    r = &rows[out++];
    r->node = i;
    r->name = n->name;
    r->kind = diagnostics_kind(n);
    r->output_mean = r->output_std = NAN;
    r->saturated_fraction = r->dead_fraction = NAN;
    r->weight_grad_norm =
        n->weight >= 0 ? (double)norms[m->node_count + i] : NAN;
    r->input_grad_norm = n->in[0] > 0 ? (double)norms[n->in[0]] : NAN;
    status = output_to_host(m, n->y, host);
    if (status != CUDL_OK) break;
    count_y = n->y->numel;
    for (k = 0; k < count_y; ++k) sum += host[k];
    mean = count_y > 0 ? sum / (double)count_y : NAN;
    for (k = 0; k < count_y; ++k) {
      const double d = host[k] - mean;
      sum_sq += d * d;
    }
    r->output_mean = mean;
    r->output_std = count_y > 0 ? sqrt(sum_sq / (double)count_y) : NAN;
    if (layer->saturated_fraction != NULL)
      r->saturated_fraction = layer->saturated_fraction(n, host, count_y);
    if (n->activity != NULL && m->diag_steps > 0) {
      const int64_t units = n->activity->numel;
      int64_t dead = 0;
      status = cudl_tensor_copy_to_host(n->activity, host, n->activity->nbytes);
      for (k = 0; status == CUDL_OK && k < units; ++k) dead += host[k] == 0.0f;
      r->dead_fraction = (double)dead / (double)units;
      if (status == CUDL_OK) status = cudl_tensor_fill(n->activity, 0.0f);
    }
  }
  cudl__host_free(&m->allocator, host, host_bytes);
  cudl__host_free(&m->allocator, norms, norm_bytes);
  if (status != CUDL_OK) return status;
  *count = out;
  if (steps != NULL) *steps = m->diag_steps;
  m->diag_steps = 0;
  return CUDL_OK;
}

/* ---- numerics ---- */

static const char *node_label(const node *n) {
  return n->name[0] ? n->name : kind_name(n);
}

static void clear_report(cudl_numerics_report *r, int64_t step) {
  memset(r, 0, sizeof *r);
  r->step = step;
  r->node = -1;
  r->layer = r->what = "";
}

/* Check-numerics mode: CUDL_ERR_NUMERICS, with the report, when t (what
 * node `index` wrote) holds NaN or infinite values. */
static cudl_status check_values(cudl_model *m, const cudl_tensor *t, int index,
                                const char *layer, const char *what) {
  int64_t nan = 0, inf = 0;
  cudl_numerics_report *r = &m->numerics;
  cudl_status status = cudl_count_nonfinite(m->ctx, t, &nan, &inf);
  if (status != CUDL_OK || (nan == 0 && inf == 0)) return status;
  clear_report(r, m->backward_passes);
  r->node = index;
  r->layer = layer;
  r->what = what;
  r->nan_count = r->total_nan = nan;
  r->inf_count = r->total_inf = inf;
  r->numel = t->numel;
  return cudl__fail(m->ctx, CUDL_ERR_NUMERICS, "check-numerics",
                    "step %lld: the %s of node %d (%s %s) has %lld NaN and "
                    "%lld infinite of %lld values",
                    (long long)r->step, what, index,
                    kind_name(&m->nodes[index]), layer, (long long)nan,
                    (long long)inf, (long long)t->numel);
}

cudl_status cudl_model_set_check_numerics(cudl_model *m, int enabled) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m->check_numerics = enabled != 0;
  clear_report(&m->numerics, m->backward_passes);
  return CUDL_OK;
}

cudl_status cudl_model_numerics_report(const cudl_model *m,
                                       cudl_numerics_report *report) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (report == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "report is NULL");
  *report = m->numerics;
  if (report->layer == NULL) clear_report(report, m->backward_passes);
  return CUDL_OK;
}

/* The node a parameter belongs to (-1 if none). */
static int owner_of(const cudl_model *m, int param) {
  int i;
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (n->weight == param || n->bias == param) return i;
  }
  return -1;
}

cudl_status cudl_model_check_gradients(cudl_model *m,
                                       cudl_numerics_report *report) {
  int64_t nan = 0, inf = 0;
  int i;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (report == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "report is NULL");
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model first");
  /* The step whose gradients these are: the last backward's. */
  clear_report(report, m->backward_passes > 0 ? m->backward_passes - 1 : 0);
  /* An FP16 overflow is the loss scale's to handle (the step is skipped and
   * the scale halved), not a failure of training. */
  if (m->step_skipped) return CUDL_OK;
  status = cudl_count_nonfinite(m->ctx, m->grad_arena, &nan, &inf);
  if (status != CUDL_OK || (nan == 0 && inf == 0)) return status;
  report->total_nan = nan;
  report->total_inf = inf;
  report->what = "parameter gradient";
  for (i = 0; i < m->param_count; ++i) {
    const param_entry *p = &m->params[i];
    if (p->grad == NULL) continue;
    status = cudl_count_nonfinite(m->ctx, p->grad, &nan, &inf);
    if (status != CUDL_OK) return status;
    if (nan != 0 || inf != 0) {
      report->node = owner_of(m, i);
      report->layer = p->name;
      report->nan_count = nan;
      report->inf_count = inf;
      report->numel = p->numel;
      return CUDL_OK;
    }
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL,
                   "non-finite gradients found in no parameter");
}

/* x (f32, NCHW, checked against the input shape) into node 0's output, in
 * the model's dtype and layout. */
static cudl_status batch_in(cudl_model *m, const cudl_tensor *x) {
  node *in = &m->nodes[0];
  cudl_context *ctx = m->ctx;
  if (in->y->dtype == CUDL_DTYPE_F32 && in->y->layout == CUDL_LAYOUT_NCHW)
    return cudl__copy_on_device(ctx, in->y->data, x->data, x->nbytes);
  if (in->y->layout == CUDL_LAYOUT_NCHW)
    return CUDL_OP_CALL(ctx, "cudl_model_forward", m->dtype, convert, x->data,
                        x->dtype, in->y->data, x->numel, 1.0f);
  /* An [N, H, W] batch of a [1, H, W] input has the same bytes: the
   * transpose goes by the input node's shape, not x's. */
  return CUDL_OP_CALL(ctx, "cudl_model_forward", m->dtype, transpose, x->data,
                      x->dtype, in->y->data, m->rows, in->shape[0],
                      in->shape[1] * in->shape[2], 1.0f);
}

/* The master weights into the working copies: in mixed precision the
 * whole arena in one conversion, then each channels-last weight again,
 * transposed over the values just converted in NCHW order. */
static cudl_status refresh_weights(cudl_model *m) {
  int i;
  cudl_status status = CUDL_OK;
  if (m->dtype != CUDL_DTYPE_F32)
    status = CUDL_OP_CALL(m->ctx, "cudl_model_forward", m->dtype, convert,
                          m->param_arena->data, CUDL_DTYPE_F32,
                          m->compute_arena->data, m->param_floats, 1.0f);
  for (i = 0; i < m->param_count && status == CUDL_OK; ++i) {
    param_entry *p = &m->params[i];
    if (p->compute_value != NULL && p->compute_value->layout != p->value->layout)
      status = cudl__convert_scaled(m->ctx, "cudl_model_forward",
                                    p->compute_value, p->value, 1.0f);
  }
  return status;
}

/* A forward's checks of its arguments and the model's views for x's rows:
 * what a replayed graph needs as much as a forward run op by op. */
static cudl_status forward_prepare(cudl_model *m, const cudl_tensor *x,
                                   const cudl_tensor *target) {
  cudl_context *ctx;
  const node *in;
  int64_t rows;
  cudl_status status;
  ctx = m->ctx;
  m->forward_done = 0;
  m->target = NULL;
  cudl_tensor_destroy(m->target_view);
  m->target_view = NULL;
  if (!m->compiled)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_model_forward",
                      "compile the model before running it");
  if (x == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_model_forward",
                      "x is NULL");
  in = &m->nodes[0];
  if (x->ctx != ctx || x->dtype != CUDL_DTYPE_F32)
    return cudl__fail(
        ctx, x->ctx != ctx ? CUDL_ERR_DEVICE_MISMATCH : CUDL_ERR_DTYPE,
        "cudl_model_forward", "x must be an f32 tensor of the model's context");
  /* x is [rows, input shape]; an [N, H, W] batch also fits a [1, H, W]
   * input, since the bytes are the same. */
  rows = x->ndim >= 1 ? x->shape[0] : 0;
  if (rows < 1 || rows > m->max_batch || x->numel != rows * in->numel)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, "cudl_model_forward",
                      "x must hold 1 to %lld rows of %lld values (the input "
                      "shape); it has %lld elements in %lld rows",
                      (long long)m->max_batch, (long long)in->numel,
                      (long long)x->numel, (long long)rows);
  if (rows != m->rows) {
    status = build_views(m, rows);
    if (status != CUDL_OK) return status;
  }
  if (target != NULL) {
    const node *o = &m->nodes[m->output];
    int ok = target->ctx == ctx;
    if (m->loss == CUDL_MODEL_LOSS_CROSS_ENTROPY)
      ok = ok && target->dtype == CUDL_DTYPE_I32 && target->ndim == 1 &&
           target->shape[0] == rows;
    else
      ok = ok && target->dtype == CUDL_DTYPE_F32 && target->ndim >= 1 &&
           target->shape[0] == rows && target->numel == rows * o->numel;
    if (!ok)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, "cudl_model_forward",
                        "target must be %s of the model's context",
                        m->loss == CUDL_MODEL_LOSS_CROSS_ENTROPY
                            ? "i32 labels [rows]"
                            : "f32 of the output's shape");
  }
  return CUDL_OK;
}

/* The forward's work, queued on the device after forward_prepare. */
static cudl_status forward_run(cudl_model *m, const cudl_tensor *x,
                               const cudl_tensor *target, float *loss) {
  cudl_context *ctx = m->ctx;
  const int64_t rows = m->rows;
  int i;
  cudl_status status;
  /* The input batch into node 0's buffer, and the master weights into
   * their working copies (the optimizer changed them). */
  status = batch_in(m, x);
  if (status == CUDL_OK && m->compute_arena != NULL)
    status = refresh_weights(m);
  m->fused_forward = cudl__fusion_active(m);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    if (m->fused_forward && cudl__fusion_involves(&m->nodes[i]))
      status = cudl__fusion_forward(m, &m->nodes[i]);
    else
      status = forward_node(m, &m->nodes[i]);
    if (status == CUDL_OK && m->diagnostics && m->training &&
        m->nodes[i].activity != NULL)
      status = record_activity(m, &m->nodes[i]);
    if (status != CUDL_OK) {
      const char *detail = cudl_context_last_error(ctx);
      char copy[CUDL_ERROR_TEXT_SIZE];
      strncpy(copy, detail, sizeof copy - 1);
      copy[sizeof copy - 1] = '\0';
      return cudl__fail(ctx, status, "cudl_model_forward",
                        "node %d (%s%s%s): %s", i, kind_name(&m->nodes[i]),
                        m->nodes[i].name[0] ? " " : "", m->nodes[i].name, copy);
    }
    if (m->check_numerics && !is_view(m, &m->nodes[i])) {
      status =
          check_values(m, m->nodes[i].y, i, node_label(&m->nodes[i]), "output");
      if (status != CUDL_OK) return status;
    }
  }
  if (m->output_f32 != NULL)
    status = cudl__convert_scaled(ctx, "cudl_model_forward", m->output_f32,
                                  m->nodes[m->output].y, 1.0f);
  if (status == CUDL_OK && target != NULL) {
    /* A target of another shape (e.g. [N] for one output): seen in the
     * output's shape, and kept for backward. */
    const node *o = &m->nodes[m->output];
    const cudl_tensor *t = target;
    if (m->loss != CUDL_MODEL_LOSS_CROSS_ENTROPY &&
        (target->ndim != o->ndim + 1 ||
         memcmp(target->shape + 1, o->shape,
                (size_t)o->ndim * sizeof o->shape[0]))) {
      status = batch_view(target, rows, o->ndim, o->shape, CUDL_LAYOUT_NCHW,
                          &m->target_view);
      t = m->target_view;
    }
    if (status == CUDL_OK) status = compute_loss(m, t);
    if (status == CUDL_OK && m->check_numerics)
      status = check_values(m, m->loss_value, m->output,
                            node_label(&m->nodes[m->output]), "loss");
    if (status == CUDL_OK && loss != NULL)
      status = cudl_tensor_copy_to_host(m->loss_value, loss, sizeof *loss);
    if (status != CUDL_OK) return status;
    m->target = t;
  }
  if (m->diagnostics && m->training) {
    ++m->diag_steps;
    m->diag_norms_now = ++m->diag_forwards % m->diagnostics == 0;
  }
  if (status != CUDL_OK) return status;
  m->forward_done = 1;
  return CUDL_OK;
}

/* A model call's TF32 setting: allowed for the TF32 precision, the
 * context's own otherwise; returns the context's, to restore after. */
static int tf32_begin(cudl_model *m) {
  const int saved = cudl_context_allow_tf32(m->ctx);
  if (m->precision == CUDL_PRECISION_TF32)
    (void)cudl_context_set_allow_tf32(m->ctx, 1);
  return saved;
}
static void tf32_end(cudl_model *m, int saved) {
  (void)cudl_context_set_allow_tf32(m->ctx, saved);
}

/* A forward without a target, as cudl__replay_run's work. */
typedef struct graph_forward {
  cudl_model *m;
  const cudl_tensor *x;
} graph_forward;

static cudl_status run_graph_forward(void *arg) {
  const graph_forward *g = (const graph_forward *)arg;
  return forward_run(g->m, g->x, NULL, NULL);
}

cudl_status cudl_model_forward(cudl_model *m, const cudl_tensor *x,
                               const cudl_tensor *target, float *loss) {
  int tf32;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  tf32 = tf32_begin(m);
  status = forward_prepare(m, x, target);
  if (status == CUDL_OK && m->graphs && target == NULL) {
    graph_forward g;
    g.m = m;
    g.x = x;
    status = cudl__replay_run(
        m->ctx, &m->replay, x->data, m->rows,
        m->check_numerics
            ? "check-numerics mode waits for the device after each layer"
            : NULL,
        run_graph_forward, &g);
    /* forward_run sets it, and a replay does not pass through it. */
    m->forward_done = status == CUDL_OK;
  } else if (status == CUDL_OK) {
    status = forward_run(m, x, target, loss);
  }
  tf32_end(m, tf32);
  return status;
}

cudl_status cudl_model_set_graphs(cudl_model *m, int on) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!m->inference)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "graphs are for models compiled for inference "
                     "(cudl_model_compile_inference)");
  cudl__replay_release(m->ctx, &m->replay);
  m->graphs = on != 0;
  return CUDL_OK;
}

cudl_status cudl_model_graph_stats(const cudl_model *m,
                                   cudl_graph_stats *stats) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (stats == NULL)
    return cudl__fail_const(m->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "stats is NULL");
  memset(stats, 0, sizeof *stats);
  stats->recorded = m->replay.recorded;
  stats->replayed = m->replay.replayed;
  stats->direct = m->replay.direct;
  snprintf(stats->reason, sizeof stats->reason, "%s", m->replay.reason);
  return CUDL_OK;
}

/* ---- backward ---- */

static cudl_status backward_node(cudl_model *m, node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  cudl_status status = CUDL_OK;
  int k;
  if (m->fused_forward && cudl__fusion_leads(n))
    return cudl__fusion_backward(m, n);
  for (k = 0; k < n->n_in && status == CUDL_OK; ++k) {
    n->backward_input = k;
    if (layer->backward != NULL)
      status = layer->backward(m, n, m->nodes[n->in[k]].y,
                               cudl__input_grad_target(m, n, k));
    if (status == CUDL_OK) status = cudl__finish_input(m, n, k);
  }
  return status;
}

/* The loss gradient, in f32, into dy. */
static cudl_status loss_gradient(cudl_model *m, cudl_tensor *dy) {
  const cudl_tensor *out = output_f32(m);
  const cudl_tensor *target = m->target; /* already in the output's shape */
  switch (m->loss) {
    case CUDL_MODEL_LOSS_CROSS_ENTROPY:
      return cudl_cross_entropy_backward(m->ctx, out, target, 0.0f,
                                         CUDL_REDUCTION_MEAN, 1.0f, dy);
    case CUDL_MODEL_LOSS_MSE:
      return cudl_mse_loss_backward(m->ctx, out, target, CUDL_REDUCTION_MEAN,
                                    1.0f, dy);
    case CUDL_MODEL_LOSS_BCE_WITH_LOGITS:
      return cudl_bce_with_logits_backward(m->ctx, out, target,
                                           CUDL_REDUCTION_MEAN, 1.0f, dy);
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL, "unknown loss");
}

/* The output node's gradient: the loss's, in mixed precision computed in
 * f32 and converted times the loss scale. */
static cudl_status loss_backward(cudl_model *m) {
  node *o = &m->nodes[m->output];
  cudl_status status;
  if (m->output_grad_f32 == NULL) return loss_gradient(m, o->dy);
  status = loss_gradient(m, m->output_grad_f32);
  if (status != CUDL_OK) return status;
  return cudl__convert_scaled(m->ctx, "cudl_model_backward", o->dy,
                              m->output_grad_f32, m->loss_scale);
}

/* With working copies, node n's weight gradients into the f32 arena
 * (converted from 16 bits, transposed back from channels-last), as soon
 * as the node's backward has written them, so that they are final there
 * before the earlier nodes run (what an attached gradient sync waits for). */
static cudl_status convert_node_grads(cudl_model *m, const node *n) {
  const int owned[2] = {n->weight, n->bias};
  cudl_status status = CUDL_OK;
  int k;
  for (k = 0; k < 2 && status == CUDL_OK; ++k)
    if (owned[k] >= 0 && m->params[owned[k]].compute_grad != NULL)
      status = cudl_tensor_convert(m->params[owned[k]].grad,
                                   m->params[owned[k]].compute_grad);
  return status;
}

/* FP16, after every layer (and the replicas' averaging, when attached):
 * every gradient divided by the loss scale, and the scale updated from
 * whether they stayed finite. */
static cudl_status unscale_fp16_gradients(cudl_model *m) {
  /* S is a power of two: 1 / S is exact, and so is the product. */
  cudl_status status =
      cudl_scale(m->ctx, m->grad_arena, 1.0f / m->loss_scale, m->grad_arena);
  if (status == CUDL_OK) {
    int64_t nan = 0, inf = 0;
    status = cudl_count_nonfinite(m->ctx, m->grad_arena, &nan, &inf);
    if (status != CUDL_OK) return status;
    if (nan != 0 || inf != 0) {
      m->step_skipped = 1;
      m->loss_scale *= 0.5f;
      m->clean_steps = 0;
    } else if (++m->clean_steps >= CUDL__LOSS_SCALE_GROWTH_INTERVAL) {
      if (isfinite(m->loss_scale * 2.0f)) m->loss_scale *= 2.0f;
      m->clean_steps = 0;
    }
  }
  return status;
}

/* Zero the gradients of node n's parameters when no gradient reached it
 * this pass (a dead branch): every reached layer overwrites its own, so
 * the whole arena need not be cleared each step. Nodes run in reverse
 * order and every consumer of n comes after it, so when n's turn comes
 * whether a gradient reached it is settled. */
static cudl_status zero_unreached(cudl_model *m, const node *n) {
  const int owned[2] = {n->weight, n->bias};
  cudl_status status = CUDL_OK;
  int k;
  for (k = 0; k < 2 && status == CUDL_OK; ++k)
    if (owned[k] >= 0 && m->params[owned[k]].grad != NULL)
      status = cudl_tensor_fill(m->params[owned[k]].grad, 0.0f);
  return status;
}

/* Check-numerics mode after node n's backward: the gradients it wrote into
 * its inputs' gradient buffers, and into its parameters'. An input's
 * buffer may hold other consumers' contributions too, but those were
 * checked when written, so a non-finite value there is n's. */
static cudl_status check_backward(cudl_model *m, const node *n, int index) {
  /* A fused ReLU's backward wrote its batch norm's gradients instead, a
   * fused dropout's its activation's. */
  const int fused = m->fused_forward && cudl__fusion_leads(n);
  const node *owner = fused ? cudl__fusion_owner(m, n) : n;
  const int params[2] = {owner->weight, owner->bias};
  int inputs[NODE_MAX_INPUTS], count = 0;
  cudl_status status = CUDL_OK;
  int k;
  if (fused) {
    inputs[count++] = owner->in[0];
    if (n->fused_add != 0) inputs[count++] = n->fused_residual;
  } else {
    for (k = 0; k < n->n_in; ++k) inputs[count++] = n->in[k];
  }
  for (k = 0; k < count && status == CUDL_OK; ++k) {
    const node *src = &m->nodes[inputs[k]];
    if (inputs[k] > 0 && src->dy != NULL)
      status = check_values(m, src->dy, index, node_label(n), "input gradient");
  }
  for (k = 0; k < 2 && status == CUDL_OK; ++k)
    if (params[k] >= 0 && cudl__grad(m, params[k]) != NULL)
      status = check_values(m, cudl__grad(m, params[k]), index,
                            m->params[params[k]].name, "parameter gradient");
  return status;
}

static cudl_status backward_pass(cudl_model *m) {
  int i, norms;
  cudl_status status;
  if (!m->forward_done || m->target == NULL)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_model_backward",
                      "backward needs a forward with a target first");
  for (i = 0; i < m->node_count; ++i) m->nodes[i].grad_written = 0;
  status = loss_backward(m);
  m->nodes[m->output].grad_written = 1;
  if (status == CUDL_OK && m->check_numerics)
    status = check_values(m, m->nodes[m->output].dy, m->output,
                          node_label(&m->nodes[m->output]), "loss gradient");
  /* Nodes no gradient reaches keep NaN norms. */
  norms = m->diagnostics && m->diag_norms_now;
  if (status == CUDL_OK && norms) status = cudl_tensor_fill(m->diag_norms, NAN);
  m->step_skipped = 0;
  if (status == CUDL_OK && m->grad_sync != NULL)
    status = m->grad_sync->begin(m->grad_sync_state, m);
  for (i = m->node_count - 1; i >= 1 && status == CUDL_OK; --i) {
    node *n = &m->nodes[i];
    if (!n->grad_written) { /* no gradient reaches this node */
      status = zero_unreached(m, n);
    } else if (m->fused_forward && n->fused_into != 0) {
      /* A batch norm, addition or activation whose backward its group's
       * leader did. */
    } else {
      /* Its output gradient is complete: every consumer has added to it. */
      if (norms) status = norm_into(m, n->dy, i);
      if (status == CUDL_OK) status = backward_node(m, n);
      if (status != CUDL_OK) {
        char copy[CUDL_ERROR_TEXT_SIZE];
        strncpy(copy, cudl_context_last_error(m->ctx), sizeof copy - 1);
        copy[sizeof copy - 1] = '\0';
        return cudl__fail(m->ctx, status, "cudl_model_backward",
                          "backward of node %d (%s%s%s): %s", i, kind_name(n),
                          n->name[0] ? " " : "", n->name, copy);
      }
      if (m->check_numerics) {
        status = check_backward(m, n, i);
        if (status != CUDL_OK) return status;
      }
      status = convert_node_grads(m, n);
    }
    if (status == CUDL_OK && m->grad_sync != NULL)
      status = m->grad_sync->node_done(m->grad_sync_state, m, i);
  }
  if (status == CUDL_OK && m->grad_sync != NULL)
    status = m->grad_sync->finish(m->grad_sync_state, m);
  if (status == CUDL_OK && m->compute_grad_arena != NULL &&
      m->precision == CUDL_PRECISION_FP16)
    status = unscale_fp16_gradients(m);
  for (i = 1; i < m->node_count && status == CUDL_OK && norms; ++i)
    if (m->nodes[i].weight >= 0 && m->nodes[i].grad_written)
      status =
          norm_into(m, cudl__grad(m, m->nodes[i].weight), m->node_count + i);
  if (status == CUDL_OK) ++m->backward_passes;
  return status;
}

cudl_status cudl_model_backward(cudl_model *m) {
  int tf32;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (m->inference)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled for inference "
                     "(cudl_model_compile_inference): it has no gradients; "
                     "compile it with cudl_model_compile to train");
  tf32 = tf32_begin(m);
  status = backward_pass(m);
  tf32_end(m, tf32);
  return status;
}

/* ---- inspection ---- */

const cudl_tensor *cudl_model_output(cudl_model *m) {
  if (m == NULL || !m->forward_done) return NULL;
  return output_f32(m);
}

const cudl_tensor *cudl_model_loss_value(const cudl_model *m) {
  if (m == NULL || !m->forward_done || m->target == NULL) return NULL;
  return m->loss_value;
}

cudl_status cudl_model_flops(const cudl_model *m, int64_t *flops) {
  int i;
  int64_t total = 0;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (flops == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "flops is NULL");
  for (i = 0; i < m->node_count; ++i) {
    const cudl__layer *layer = cudl__layers[m->nodes[i].kind];
    if (layer->flops != NULL) total += layer->flops(m, &m->nodes[i]);
  }
  *flops = total;
  return CUDL_OK;
}

int cudl_model_node_count(const cudl_model *m) {
  return m == NULL ? 0 : m->node_count;
}

int cudl_model_node_shape(const cudl_model *m, int index, int64_t shape[3]) {
  int i;
  if (m == NULL || shape == NULL || index < 0 || index >= m->node_count)
    return -1;
  for (i = 0; i < m->nodes[index].ndim; ++i)
    shape[i] = m->nodes[index].shape[i];
  return m->nodes[index].ndim;
}

int cudl_model_output_node(const cudl_model *m) {
  if (m == NULL || !m->has_output) return -1;
  return m->output;
}

const cudl_tensor *cudl_model_node_output(cudl_model *m, int index) {
  if (m == NULL || !m->forward_done || index < 0 || index >= m->node_count)
    return NULL;
  /* An inference compile reuses the buffers of values no longer needed. */
  if (m->inference && !m->nodes[index].value_kept) return NULL;
  /* The fused path computes no value for a batch norm, an addition or an
   * activation fused into a dropout. */
  if (m->fused_forward && m->nodes[index].fused_into != 0) return NULL;
  return m->nodes[index].y;
}

cudl_status cudl_model_first_nonfinite(cudl_model *m, int *node_out,
                                       const char **description) {
  int i;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (node_out == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "node is NULL");
  *node_out = -1;
  if (description != NULL) *description = "";
  if (!m->forward_done)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "no forward yet");
  for (i = 0; i < m->node_count; ++i) {
    int64_t nan = 0, inf = 0;
    cudl_status status;
    if (m->inference && !m->nodes[i].value_kept) continue; /* overwritten */
    if (m->fused_forward && m->nodes[i].fused_into != 0) continue; /* none */
    status = cudl_count_nonfinite(m->ctx, m->nodes[i].y, &nan, &inf);
    if (status != CUDL_OK) return status;
    if (nan != 0 || inf != 0) {
      *node_out = i;
      if (description != NULL)
        *description =
            m->nodes[i].name[0] ? m->nodes[i].name : kind_name(&m->nodes[i]);
      return CUDL_OK;
    }
  }
  return CUDL_OK;
}
