/*
 * layers.h - the layer table: one descriptor per node kind (graph.h), for
 * the graph that runs them (model.c). The layers themselves (layers*.c)
 * include only graph.h, so the table depends on them and not back.
 */
#ifndef CUDL_NN_LAYERS_H
#define CUDL_NN_LAYERS_H

#include "nn/graph.h"

/* The descriptors, indexed by node_kind (layers.c, where the size is
 * checked against NODE_KIND_COUNT: a size here would hide a missing row). */
extern const cudl__layer *const cudl__layers[];

extern const cudl__layer cudl__layer_input, cudl__layer_conv2d,
    cudl__layer_linear, cudl__layer_batchnorm, cudl__layer_activation,
    cudl__layer_prelu, cudl__layer_rrelu, cudl__layer_dropout,
    cudl__layer_pool2d, cudl__layer_global_avg_pool, cudl__layer_flatten,
    cudl__layer_add, cudl__layer_concat, cudl__layer_reshape;

#endif /* CUDL_NN_LAYERS_H */
