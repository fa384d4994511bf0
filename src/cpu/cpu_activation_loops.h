/* cpu_activation_loops.h - the activation entries of one storage type
 * (cpu_activation.c), included once per type with
 *   ACT_T          the element type (float, or uint16_t holding bf16/f16)
 *   ACT_LOAD(v)    an element widened to float (exact)
 *   ACT_STORE(v)   a float rounded to an element
 *   ACT_NAME(f)    f's name for this type
 * Each element is computed in f32 by forward_one / backward_one and
 * rounded once, so a 16-bit tensor gets the bits an f32 copy would give,
 * reading and writing only its own memory. No include guard: included
 * once per type. */

/* FORWARD_ONE(KIND): y[i] from x[i], in f32, rounded once. One loop per
 * kind (see ELEMENTWISE_LOOP). */
#define FORWARD_ONE(KIND) \
  ELEMENTWISE_LOOP(y[i] = ACT_STORE(forward_one(KIND, alpha, ACT_LOAD(x[i]))))

CUDL_CPU_WIDE_CLONES
cudl_status ACT_NAME(cudl__cpu_activation_forward)(cudl_context *ctx,
                                                   cudl_activation_type kind,
                                                   float alpha, const void *x_,
                                                   void *y_, int64_t n) {
  const ACT_T *x = x_;
  ACT_T *y = y_;
  int64_t i;
  (void)ctx;
  switch (kind) {
    case CUDL_ACT_SIGMOID:
      FORWARD_ONE(CUDL_ACT_SIGMOID);
      break;
    case CUDL_ACT_TANH:
      FORWARD_ONE(CUDL_ACT_TANH);
      break;
    case CUDL_ACT_RELU:
      FORWARD_ONE(CUDL_ACT_RELU);
      break;
    case CUDL_ACT_LEAKY_RELU:
      FORWARD_ONE(CUDL_ACT_LEAKY_RELU);
      break;
    case CUDL_ACT_ELU:
      FORWARD_ONE(CUDL_ACT_ELU);
      break;
    case CUDL_ACT_GELU:
      FORWARD_ONE(CUDL_ACT_GELU);
      break;
    case CUDL_ACT_SILU:
      FORWARD_ONE(CUDL_ACT_SILU);
      break;
    case CUDL_ACT_COUNT:
      break;
  }
  return CUDL_OK;
}

/* BACKWARD_ONE(KIND): dx[i] from saved[i] and dy[i], in f32, rounded once. */
#define BACKWARD_ONE(KIND)                         \
  ELEMENTWISE_LOOP(dx[i] = ACT_STORE(backward_one( \
                       KIND, alpha, ACT_LOAD(saved[i]), ACT_LOAD(dy[i]))))

CUDL_CPU_WIDE_CLONES
cudl_status ACT_NAME(cudl__cpu_activation_backward)(
    cudl_context *ctx, cudl_activation_type kind, float alpha,
    const void *saved_, const void *dy_, void *dx_, int64_t n) {
  const ACT_T *saved = saved_;
  const ACT_T *dy = dy_;
  ACT_T *dx = dx_;
  int64_t i;
  (void)ctx;
  switch (kind) {
    case CUDL_ACT_SIGMOID:
      BACKWARD_ONE(CUDL_ACT_SIGMOID);
      break;
    case CUDL_ACT_TANH:
      BACKWARD_ONE(CUDL_ACT_TANH);
      break;
    case CUDL_ACT_RELU:
      BACKWARD_ONE(CUDL_ACT_RELU);
      break;
    case CUDL_ACT_LEAKY_RELU:
      BACKWARD_ONE(CUDL_ACT_LEAKY_RELU);
      break;
    case CUDL_ACT_ELU:
      BACKWARD_ONE(CUDL_ACT_ELU);
      break;
    case CUDL_ACT_GELU:
      BACKWARD_ONE(CUDL_ACT_GELU);
      break;
    case CUDL_ACT_SILU:
      BACKWARD_ONE(CUDL_ACT_SILU);
      break;
    case CUDL_ACT_COUNT:
      break;
  }
  return CUDL_OK;
}

#undef FORWARD_ONE
#undef BACKWARD_ONE
