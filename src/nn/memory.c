/* memory.c - what a compiled model holds, by what it is for
 * (cudl_model_memory_usage): the figures that show what an inference
 * compile saves over a training one. */
#include <string.h>

#include "nn/layers.h"

static uint64_t bytes_of(const cudl_tensor *t) {
  return t == NULL ? 0 : (uint64_t)t->nbytes;
}

cudl_status cudl_model_memory_usage(const cudl_model *m,
                                    cudl_model_memory *out) {
  int i;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  memset(out, 0, sizeof *out);
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is not compiled: nothing is planned yet");
  out->parameters = bytes_of(m->param_arena) + bytes_of(m->buffer_arena) +
                    bytes_of(m->compute_arena);
  out->gradients = bytes_of(m->grad_arena) + bytes_of(m->compute_grad_arena) +
                   bytes_of(m->output_grad_f32_full);
  for (i = 0; i < m->slot_count; ++i) out->gradients += bytes_of(m->slots[i]);
  /* An inference compile's outputs are views of the shared buffers. */
  for (i = 0; i < m->act_buffer_count; ++i)
    out->activations += bytes_of(m->act_buffers[i]);
  out->activations += bytes_of(m->output_f32_full);
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    const cudl__layer *layer = cudl__layers[n->kind];
    if (!m->inference) out->activations += bytes_of(n->out_full);
    /* A random layer's mask or noise is kept only for its backward; a
     * reshape's intermediate is the forward's own. */
    if (layer->element_aux)
      out->saved_activations += bytes_of(n->aux_full);
    else
      out->activations += bytes_of(n->aux_full);
    out->saved_activations += bytes_of(n->save_mean) + bytes_of(n->save_invstd);
  }
  out->workspace = bytes_of(m->scratch) + bytes_of(m->loss_value) +
                   bytes_of(m->fold_weight) + bytes_of(m->fold_bias) +
                   bytes_of(m->fold_zeros) + bytes_of(m->fold_weight_compute) +
                   bytes_of(m->fold_bias_compute);
  out->total = out->parameters + out->activations + out->gradients +
               out->saved_activations + out->workspace;
  return CUDL_OK;
}
