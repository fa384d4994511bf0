/*
 * schedule.c - learning-rate schedules: a pure function of the step.
 *
 * The formulas are the closed forms of torch.optim.lr_scheduler (1.13):
 * StepLR and MultiStepLR's `_get_closed_form_lr`, CosineAnnealingLR's
 * eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / T)) / 2, evaluated
 * in double (Python's floats) in PyTorch's order and rounded to float once.
 * PyTorch's schedulers update the rate recursively, epoch by epoch; the
 * two agree to within the last bits of a double, which the rounding to
 * float almost always hides (tests/unit/test_optim.cpp measures it).
 */
#include <math.h>

#include "core/internal.h"

#ifndef M_PI
#  define M_PI 3.14159265358979323846
#endif

static cudl_status invalid(const char *what) {
  return cudl__fail(NULL, CUDL_ERR_INVALID_ARGUMENT, "cudl_lr_schedule_at",
                    "%s", what);
}

static cudl_status check_schedule(const cudl_lr_schedule *s) {
  int i;
  if (!(isfinite(s->base_lr) && s->base_lr > 0.0f))
    return invalid("base_lr must be finite and > 0");
  if (s->warmup_epochs < 0) return invalid("warmup_epochs must be >= 0");
  switch (s->kind) {
    case CUDL_LR_CONSTANT:
      return CUDL_OK;
    case CUDL_LR_STEP:
      if (!(isfinite(s->gamma) && s->gamma > 0.0f))
        return invalid("gamma must be finite and > 0");
      if (s->step_size < 1) return invalid("step_size must be >= 1");
      return CUDL_OK;
    case CUDL_LR_MULTI_STEP:
      if (!(isfinite(s->gamma) && s->gamma > 0.0f))
        return invalid("gamma must be finite and > 0");
      if (s->milestone_count < 0 || s->milestone_count > CUDL_LR_MAX_MILESTONES)
        return invalid(
            "milestone_count must be in [0, CUDL_LR_MAX_MILESTONES]");
      for (i = 0; i < s->milestone_count; ++i) {
        if (s->milestones[i] < 0) return invalid("milestones must be >= 0");
        if (i > 0 && s->milestones[i] <= s->milestones[i - 1])
          return invalid("milestones must be strictly increasing");
      }
      return CUDL_OK;
    case CUDL_LR_COSINE:
      if (s->total_epochs < 1) return invalid("total_epochs must be >= 1");
      if (!(isfinite(s->eta_min) && s->eta_min >= 0.0f))
        return invalid("eta_min must be finite and >= 0");
      return CUDL_OK;
  }
  return invalid("unknown schedule kind");
}

cudl_status cudl_lr_schedule_at(const cudl_lr_schedule *schedule, int64_t step,
                                int64_t steps_per_epoch, float *lr) {
  const double base = schedule != NULL ? (double)schedule->base_lr : 0.0;
  int64_t warmup, epoch;
  double value = base;
  cudl_status status;
  if (schedule == NULL) return invalid("schedule is NULL");
  if (lr == NULL) return invalid("lr is NULL");
  status = check_schedule(schedule);
  if (status != CUDL_OK) return status;
  if (step < 0) return invalid("step must be >= 0");
  if (steps_per_epoch < 1) return invalid("steps_per_epoch must be >= 1");
  if ((int64_t)schedule->warmup_epochs > INT64_MAX / steps_per_epoch)
    return invalid("warmup_epochs * steps_per_epoch overflows");
  warmup = (int64_t)schedule->warmup_epochs * steps_per_epoch;
  if (step < warmup) {
    /* Linear warm-up, per step: base_lr * (s + 1) / W. */
    *lr = (float)(base * (double)(step + 1) / (double)warmup);
    return CUDL_OK;
  }
  epoch = (step - warmup) / steps_per_epoch;
  switch (schedule->kind) {
    case CUDL_LR_CONSTANT:
      break;
    case CUDL_LR_STEP:
      /* base_lr * gamma ** (last_epoch // step_size) */
      value = base * pow((double)schedule->gamma,
                         (double)(epoch / schedule->step_size));
      break;
    case CUDL_LR_MULTI_STEP: {
      /* base_lr * gamma ** bisect_right(milestones, last_epoch) */
      int passed = 0, i;
      for (i = 0; i < schedule->milestone_count; ++i)
        passed += schedule->milestones[i] <= epoch;
      value = base * pow((double)schedule->gamma, (double)passed);
      break;
    }
    case CUDL_LR_COSINE: {
      const double eta_min = (double)schedule->eta_min;
      value = eta_min + (base - eta_min) *
                            (1.0 + cos(M_PI * (double)epoch /
                                       (double)schedule->total_epochs)) /
                            2.0;
      break;
    }
  }
  *lr = (float)value;
  return CUDL_OK;
}
