/* sync_bn.c - cudl_model_set_sync_bn: hands a model's batch-norm layers
 * (nn/sync_batchnorm.c) the communicator's sum, so that the layers do not
 * depend on the communicator. */
#include "dist/comm_internal.h"
#include "nn/graph.h"

static cudl_status comm_sum(void *group, double *values, int64_t count) {
  return cudl_comm_allreduce_sum_f64((cudl_comm *)group, values, count);
}

cudl_status cudl_model_set_sync_bn(cudl_model *model, cudl_comm *comm) {
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (comm != NULL && comm->ctx != model->ctx)
    return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the communicator records its errors in another context "
                     "than the model's: make both with one context");
  /* One rank's statistics are already the whole batch's: the plain layer
   * gives them, bit for bit, without the round trips. */
  if (comm == NULL || comm->size == 1) {
    model->bn_sum = NULL;
    model->bn_group = NULL;
  } else {
    model->bn_sum = comm_sum;
    model->bn_group = comm;
  }
  return CUDL_OK;
}
