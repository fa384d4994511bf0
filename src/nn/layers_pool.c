/* layers_pool.c - pooling over images: a window (max or average) and the
 * global average of each channel. */
#include "nn/graph.h"

cudl_status cudl_model_add_pool2d(cudl_model *m, int input, int is_max,
                                  const cudl_pool2d_desc *desc, int *node_out) {
  int64_t in_shape[4], out_shape[4];
  BUILD_PRELUDE(input);
  if (desc == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "desc is NULL");
  status = cudl__model_check_image(m, __func__, input);
  if (status != CUDL_OK) return status;
  in_shape[0] = 1;
  in_shape[1] = src->shape[0];
  in_shape[2] = src->shape[1];
  in_shape[3] = src->shape[2];
  status = cudl_pool2d_output_shape(desc, in_shape, out_shape);
  if (status != CUDL_OK)
    return CUDL_FAIL(m->ctx, status,
                     "pool2d: the window does not fit a %lldx%lld input (%s)",
                     (long long)in_shape[2], (long long)in_shape[3],
                     cudl_status_string(status));
  status = cudl__model_new_node(m, NODE_POOL, input, -1, &n);
  if (status != CUDL_OK) return status;
  n->is_max = is_max != 0;
  n->pool = *desc;
  cudl__node_set_shape(n, 3, out_shape[1], out_shape[2], out_shape[3]);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status pool2d_forward(cudl_model *m, node *n,
                                  const cudl_tensor *x) {
  return n->is_max ? cudl_max_pool2d_forward(m->ctx, &n->pool, x, n->y)
                   : cudl_avg_pool2d_forward(m->ctx, &n->pool, x, n->y);
}

static cudl_status pool2d_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                   cudl_tensor *dx) {
  if (dx == NULL) return CUDL_OK;
  return n->is_max ? cudl_max_pool2d_backward(m->ctx, &n->pool, x, n->dy, dx)
                   : cudl_avg_pool2d_backward(m->ctx, &n->pool, n->dy, dx);
}

const cudl__layer cudl__layer_pool2d = {
    .name = "pool2d",
    .forward = pool2d_forward,
    .backward = pool2d_backward,
};

cudl_status cudl_model_add_global_avg_pool(cudl_model *m, int input,
                                           int *node_out) {
  BUILD_PRELUDE(input);
  status = cudl__model_check_image(m, __func__, input);
  if (status != CUDL_OK) return status;
  status = cudl__model_new_node(m, NODE_GLOBAL_AVG_POOL, input, -1, &n);
  if (status != CUDL_OK) return status;
  cudl__node_set_shape(n, 3, m->nodes[input].shape[0], 1, 1);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status global_avg_pool_forward(cudl_model *m, node *n,
                                           const cudl_tensor *x) {
  return cudl_global_avg_pool_forward(m->ctx, x, n->y);
}

static cudl_status global_avg_pool_backward(cudl_model *m, node *n,
                                            const cudl_tensor *x,
                                            cudl_tensor *dx) {
  (void)x;
  if (dx == NULL) return CUDL_OK;
  return cudl_global_avg_pool_backward(m->ctx, n->dy, dx);
}

const cudl__layer cudl__layer_global_avg_pool = {
    .name = "global_avg_pool",
    .forward = global_avg_pool_forward,
    .backward = global_avg_pool_backward,
};
