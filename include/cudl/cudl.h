/*
 * cudl/cudl.h - umbrella header: everything a program using cudl needs.
 *
 * C99 and C++ compatible. Conventions: every fallible call returns a
 * cudl_status; outputs are the last arguments and are written only on
 * success; destroy(NULL) is a no-op; the library never prints, exits or
 * aborts - messages go to the log callback, error details to
 * cudl_context_last_error().
 */
#ifndef CUDL_CUDL_H
#define CUDL_CUDL_H

#include "cudl/version.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/context.h"
#include "cudl/tensor.h"
#include "cudl/safetensors.h"
#include "cudl/activation.h"
#include "cudl/dropout.h"
#include "cudl/pooling.h"
#include "cudl/concat.h"
#include "cudl/batchnorm.h"
#include "cudl/loss.h"
#include "cudl/elementwise.h"
#include "cudl/conv.h"
#include "cudl/linear.h"
#include "cudl/data.h"
#include "cudl/image.h"
#include "cudl/nn.h"
#include "cudl/model_file.h"
#include "cudl/onnx.h"
#include "cudl/optim.h"
#include "cudl/checkpoint.h"
#include "cudl/dist.h"
#include "cudl/zoo.h"

#endif /* CUDL_CUDL_H */
