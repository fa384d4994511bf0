/*
 * train.c - `cudl train`: the training loop over the library (model zoo,
 * data loader, optimizer, schedule, checkpoints). Its setup is
 * train_setup.c, what it reports report.c, the files it saves
 * run_files.c.
 *
 * Errors are one line on stderr that starts with "cudl train: ". Exit
 * status (docs/cli.md): 2 when the command line itself is wrong, 1 when
 * something it names fails (a file, the device, the run itself), 130 on
 * Ctrl-C. A run that fails before its first checkpoint leaves nothing
 * behind: no run directory it made, no metrics file it made and left
 * empty; no file it was not told to write is touched.
 *
 * Test hook: CUDL_TEST_INTERRUPT_AT_STEP=N makes the run interrupt itself
 * (SIGINT, as Ctrl-C) during step N, after its backward and before its
 * exchange, so that the run stops once step N is done: a test puts the
 * interrupt exactly where it wants it, the end of an epoch included, and
 * in one rank of a data-parallel run the others learn of it in that
 * step's exchange.
 * CUDL_TEST_HANG_AT_STEP=N makes rank 1 of a data-parallel run stop
 * forever (alive, in pause()) before step N's backward and its exchanges,
 * the rank that hangs which --dist-timeout is for.
 */
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>
#include <cudl/data.h>

#include "cli.h"
#include "commands.h"
#include "report.h"
#include "run.h"
#include "run_files.h"
#include "settings.h"
#include "step_queue.h"
#include "train_setup.h"

/* The first Ctrl-C (SIGINT) or SIGTERM stops the run at the next batch,
 * with a checkpoint: SIGTERM is what a batch system sends before it ends a
 * job, and what mpirun sends every rank after a Ctrl-C (docs/
 * distributed.md). A second one ends a single process at once (the last
 * checkpoint stays whole: saves are atomic). A rank of a data-parallel
 * run keeps catching them: the ranks stop together, at the first step
 * whose exchange carries the request (run_dist_step), and the launcher
 * sends SIGKILL itself if they take too long. */
static volatile sig_atomic_t g_interrupted = 0;
static volatile sig_atomic_t g_keep_catching = 0;
static void on_stop_signal(int sig) {
  (void)sig;
  g_interrupted = 1;
  if (!g_keep_catching) {
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
  }
}

/* Whether the run stops at this point: with several ranks, only where
 * the ranks agreed on it (the last step's exchange), so that all stop at
 * the same step. */
static int stop_requested(const trainer *t) {
  return t->dist.world > 1 ? t->stopping : g_interrupted;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* What one epoch has done so far. */
typedef struct epoch_totals {
  double start, loss_sum;
  int64_t hits, seen;
  int64_t skipped; /* fp16 steps whose gradients overflowed */
} epoch_totals;

/* ---- training ---- */

/* Stop on step m's non-finite loss. Its layer is named only when m is the
 * last forward: later steps have moved the weights since. */
static int stop_on_loss(trainer *t, const step_entry *m, int latest) {
  char kept[1300], where[256];
  int node = -1;
  const char *what = "";
  if (latest) {
    cudl_model_first_nonfinite(t->r.model, &node, &what);
    snprintf(where, sizeof where, "the first non-finite output is node %d (%s)",
             node, what);
  } else {
    snprintf(where, sizeof where,
             "read %" PRId64
             " steps later (--sync-every %d), when the "
             "weights had moved on, so no layer is named "
             "(--sync-every 1 stops at the step itself and names it)",
             t->st.step + 1 - m->step, t->queue.capacity);
  }
  cli_error("the loss is %g at step %" PRId64 " (epoch %" PRId64
            ", batch %" PRId64
            "); %s. Stopping; %s. Try a lower --lr (--check-numerics finds "
            "the first layer and pass).",
            (double)m->loss, m->step, m->epoch, m->batch, where,
            run_files_kept(&t->files, t->r.rank, kept, sizeof kept));
  return CLI_EXIT_FAILED;
}

/* Stop on step m's non-finite gradient norm, naming the parameter when m
 * is the last backward (its gradients are still there). */
static int stop_on_gradients(trainer *t, const step_entry *m, int latest) {
  cudl_numerics_report numerics;
  char kept[1300];
  memset(&numerics, 0, sizeof numerics);
  numerics.node = -1;
  if (latest) {
    cudl_status s = cudl_model_check_gradients(t->r.model, &numerics);
    if (s != CUDL_OK)
      return cli_fail(t->r.ctx, s, "checking the gradients of step %" PRId64,
                      m->step);
  }
  if (numerics.node >= 0)
    cli_error("the gradients are not finite at step %" PRId64 " (epoch %" PRId64
              ", batch %" PRId64 "): %s has %" PRId64 " NaN and %" PRId64
              " infinite of %" PRId64 " values (all parameters: %" PRId64
              " NaN, %" PRId64
              " infinite). Stopping; %s. Try a lower --lr or --clip.",
              m->step, m->epoch, m->batch, numerics.layer, numerics.nan_count,
              numerics.inf_count, numerics.numel, numerics.total_nan,
              numerics.total_inf,
              run_files_kept(&t->files, t->r.rank, kept, sizeof kept));
  else
    cli_error("the gradients' norm is %g at step %" PRId64 " (epoch %" PRId64
              ", batch %" PRId64
              ")%s. Stopping; %s. Try a lower --lr or "
              "--clip.",
              (double)m->grad_norm, m->step, m->epoch, m->batch,
              latest ? ", beyond what a float holds"
                     : " (read later: --sync-every 1 names the parameter)",
              run_files_kept(&t->files, t->r.rank, kept, sizeof kept));
  return CLI_EXIT_FAILED;
}

/* Read the queued steps (one wait for the device) and account for them in
 * the order they ran: a non-finite loss or gradient stops the run; with
 * several ranks each step's loss, rows and hits are summed over them, with
 * whether a rank was asked to stop (the queue then holds one step, so
 * that every step is exchanged); a metrics line each --log-every steps.
 * 0, or the exit status with one line printed. */
static int drain_steps(trainer *t, epoch_totals *e) {
  step_queue *q = &t->queue;
  int i;
  cudl_status s = step_queue_read(q);
  if (s != CUDL_OK)
    return cli_fail(t->r.ctx, s, "reading the losses of step %" PRId64,
                    q->entries[q->count - 1].step);
  for (i = 0; i < q->count; ++i) {
    const step_entry *m = &q->entries[i];
    float loss = m->loss;
    int64_t rows = m->rows, hits = m->hits;
    if (!isfinite(loss)) return stop_on_loss(t, m, i == q->count - 1);
    if (m->has_grad_norm && !isfinite(m->grad_norm))
      return stop_on_gradients(t, m, i == q->count - 1);
    t->stopping = g_interrupted;
    s = run_dist_step(&t->dist, &loss, &rows, &hits, &t->stopping);
    if (s != CUDL_OK)
      return cli_fail(t->r.ctx, s, "training step %" PRId64, m->step);
    e->loss_sum += (double)loss * (double)rows;
    e->hits += hits;
    e->seen += rows;
    if (run_dist_root(&t->dist) && t->o.log_every > 0 &&
        m->step % t->o.log_every == 0) {
      int rc = report_step(&t->rep, m->step, m->epoch, (double)loss, m->lr,
                           (double)m->loss_scale);
      if (rc != 0) return rc;
    }
  }
  step_queue_clear(q);
  return 0;
}

/* The progress line, for the batches since *shown (updated). */
static void show_progress(trainer *t, const epoch_totals *e, int done,
                          int64_t *shown) {
  const double elapsed = now_seconds() - e->start;
  report_progress_values v;
  if (e->seen == 0 || t->st.batch == *shown) return;
  v.since = t->st.batch - *shown;
  *shown = t->st.batch;
  v.epoch = t->st.epoch + 1;
  v.epochs = t->o.epochs;
  v.batch = t->st.batch;
  v.batches = t->batches;
  v.batch_size = t->o.batch;
  v.batches_left = (t->o.epochs - t->st.epoch) * t->batches - t->st.batch;
  if (t->o.steps > 0 && t->o.steps - t->st.step < v.batches_left)
    v.batches_left = t->o.steps - t->st.step;
  v.loss = e->loss_sum / (double)e->seen;
  v.accuracy = (double)e->hits / (double)e->seen;
  v.images_per_second = (double)e->seen / (elapsed > 0.0 ? elapsed : 1e-9);
  report_progress(&t->rep, &v, done);
}

/* Train the batches of the current epoch until it ends (*done) or an
 * interrupt stops it; 0, or the exit status with one line printed. Nothing
 * in a step waits for the device but the read of the queued steps, each
 * --sync-every steps, before the epoch's end, a stop or a diagnostics
 * line; it comes before the step's update, so that with --sync-every 1 a
 * non-finite loss or gradient stops the run before it reaches the
 * weights (fp16 still waits each step for its overflow check). */
static int train_batches(trainer *t, epoch_totals *e, int *done) {
  run *r = &t->r;
  int64_t shown = t->st.batch;
  while (!*done && !stop_requested(t) &&
         !(t->o.steps > 0 && t->st.step >= t->o.steps)) {
    const int64_t step = t->st.step + 1;
    int64_t rows = 0;
    int skipped = 0, drain;
    const int diagnose =
        t->rep.diag_rows != NULL && step % t->o.diagnostics == 0;
    float lr = t->oc.lr;
    step_entry m;
    cudl_tensor *xv = NULL, *lv = NULL;
    cudl_status s =
        cudl_loader_next(r->train_loader, r->x, r->labels, &rows, done);
    if (s == CUDL_OK) s = run_batch_views(r, rows, &xv, &lv);
    if (s == CUDL_OK) s = cudl_model_forward(r->model, xv, lv, NULL);
    if (t->hang_at > 0 && step == t->hang_at && r->rank == 1)
      for (;;) pause();
    if (step == t->interrupt_at) raise(SIGINT);
    /* Data parallel: backward averages the gradients over the ranks. */
    if (s == CUDL_OK) s = cudl_model_backward(r->model);
    /* fp16: gradients that overflowed the loss scale are not applied; the
     * model has halved the scale for the next step. */
    skipped = s == CUDL_OK && cudl_model_step_skipped(r->model);
    if (s == CUDL_OK)
      s = cudl_lr_schedule_at(&t->sched, t->st.step, t->batches, &lr);
    if (s == CUDL_OK) {
      memset(&m, 0, sizeof m);
      m.step = step;
      m.epoch = t->st.epoch + 1;
      m.batch = t->st.batch + 1;
      m.rows = rows;
      m.lr = (double)lr;
      m.loss_scale = cudl_model_loss_scale(r->model);
      /* --clip clips here, the norm it computes queued. */
      s = step_queue_push(&t->queue, r->model, lv,
                          skipped ? NULL : cudl_model_grads(r->model),
                          (float)t->o.clip, &m);
    }
    cudl_tensor_destroy(xv);
    cudl_tensor_destroy(lv);
    if (s != CUDL_OK)
      return cli_fail(r->ctx, s, "training step %" PRId64, step);
    drain = step_queue_full(&t->queue) || *done || g_interrupted ||
            (t->o.steps > 0 && step >= t->o.steps) || diagnose;
    if (drain) {
      int rc = drain_steps(t, e);
      if (rc != 0) return rc;
    }
    if (!skipped)
      s = cudl_optimizer_step(r->opt, cudl_model_params(r->model),
                              cudl_model_grads(r->model), lr);
    if (s != CUDL_OK)
      return cli_fail(r->ctx, s, "training step %" PRId64, step);
    ++t->st.step;
    ++t->st.batch;
    e->skipped += skipped;
    if (!run_dist_root(&t->dist)) continue;
    if (diagnose) {
      int rc = report_diagnostics(&t->rep, r->ctx, r->model, t->st.step,
                                  t->st.epoch + 1);
      if (rc != 0) return rc;
    }
    if (drain) show_progress(t, e, *done, &shown);
  }
  /* A signal that came after the step's own check. */
  if (t->queue.count > 0) {
    int rc = drain_steps(t, e);
    if (rc != 0) return rc;
    if (run_dist_root(&t->dist)) show_progress(t, e, *done, &shown);
  }
  return 0;
}

/* The test set's loss and accuracy, into *v. */
static int evaluate_test(trainer *t, report_end_values *v) {
  cudl_status s;
  if (t->r.test_loader == NULL) return 0; /* a folder without test/ */
  if (!run_dist_root(&t->dist)) return 0;
  s = run_evaluate(&t->r, t->r.test_loader, &v->test_loss, &v->test_accuracy);
  if (s != CUDL_OK)
    return cli_fail(t->r.ctx, s, "evaluating the test set at step %" PRId64,
                    t->st.step);
  v->has_test = 1;
  return 0;
}

/* The end of an epoch whose batches are all done: its validation (and
 * test, when asked every epoch or when it is the last), the best weights,
 * its summary and metrics line, and the checkpoint at the next epoch's
 * start. The best weights are saved before the checkpoint that records
 * them: a run killed between the two redoes the epoch and finds the same
 * best. */
static int finish_epoch(trainer *t, const epoch_totals *e,
                        report_end_values *end) {
  const double seconds = now_seconds() - e->start;
  const int last = t->st.epoch + 1 == t->o.epochs ||
                   (t->o.steps > 0 && t->st.step >= t->o.steps);
  report_epoch_values v;
  cudl_status s;
  int rc;
  if (!run_dist_root(&t->dist)) { /* rank 0 evaluates and saves */
    ++t->st.epoch;
    t->st.batch = 0;
    return 0;
  }
  memset(&v, 0, sizeof v);
  v.epoch = t->st.epoch + 1;
  v.epochs = t->o.epochs;
  v.step = t->st.step;
  v.train_loss = e->loss_sum / (double)e->seen;
  v.train_accuracy = (double)e->hits / (double)e->seen;
  v.images_per_second = (double)e->seen / seconds;
  v.seconds = seconds;
  v.precision = t->o.precision;
  v.layout = t->o.layout;
  v.loss_scale = (double)cudl_model_loss_scale(t->r.model);
  v.skipped_steps = e->skipped;
  if (t->r.val_loader != NULL) {
    s = run_evaluate(&t->r, t->r.val_loader, &v.val_loss, &v.val_accuracy);
    if (s != CUDL_OK)
      return cli_fail(t->r.ctx, s, "validating epoch %" PRId64, v.epoch);
    v.has_val = 1;
    /* Strictly better: a tie keeps the earlier epoch. */
    if (t->best.epoch == 0 || v.val_accuracy > t->best.val_accuracy) {
      s = run_files_save_best(&t->files, &t->r, &t->o);
      if (s != CUDL_OK)
        return cli_fail(t->r.ctx, s,
                        "saving the best weights (epoch %" PRId64 ")", v.epoch);
      t->best.epoch = v.epoch;
      t->best.val_loss = v.val_loss;
      t->best.val_accuracy = v.val_accuracy;
    }
    v.best_epoch = t->best.epoch;
    t->rep.last_val_loss = v.val_loss;
    t->rep.last_val_accuracy = v.val_accuracy;
    t->rep.has_last_val = 1;
  }
  if ((t->o.test_every_epoch || last) && t->r.test_loader != NULL) {
    if ((rc = evaluate_test(t, end)) != 0) return rc;
    v.has_test = 1;
    v.test_loss = end->test_loss;
    v.test_accuracy = end->test_accuracy;
  }
  if ((rc = report_epoch(&t->rep, &v)) != 0) return rc;
  ++t->st.epoch;
  t->st.batch = 0;
  s = run_files_save(&t->files, &t->r, &t->o, &t->st, &t->best);
  if (s != CUDL_OK)
    return cli_fail(t->r.ctx, s, "saving the checkpoint of epoch %" PRId64,
                    t->st.epoch);
  return 0;
}

/* The run's end: its last line, the final summary. */
static int finish_run(trainer *t, report_end_values *end, double run_start) {
  if (!run_dist_root(&t->dist)) return 0;
  end->epoch = t->st.epoch;
  end->step = t->st.step;
  end->best = t->best;
  end->seconds = now_seconds() - run_start;
  end->weights = t->files.weights;
  end->best_weights = t->best.epoch > 0 ? t->files.best : NULL;
  return report_end(&t->rep, end);
}

static int train(trainer *t) {
  double run_start;
  report_end_values end;
  const int root = run_dist_root(&t->dist);
  int stale = root ? run_files_remove_stale(&t->files) : 0;
  memset(&end, 0, sizeof end);
  if (t->o.resume != NULL)
    cli_note("resuming %s at epoch %" PRId64 ", batch %" PRId64
             ", step %" PRId64,
             t->o.resume, t->st.epoch + 1, t->st.batch, t->st.step);
  if (stale > 0)
    cli_note(
        "removed %d temporary file%s left in %s by a run that was killed "
        "while saving",
        stale, stale == 1 ? "" : "s", t->files.dir);
  if (root && t->o.val_split <= 0.0 && access(t->files.best, F_OK) == 0)
    cli_note(
        "keeping %s, an earlier run's: this run has no --val-split "
        "and does not replace it",
        t->files.best);
  cli_note("training %s on %s (%" PRId64 " images, %" PRId64
           " batches of %" PRId64 ") on %s, %lld parameters",
           t->o.model, t->o.data, cudl_dataset_count(t->r.train_set),
           t->batches, t->r.batch, cudl_context_device_name(t->r.ctx),
           (long long)cudl_tensor_numel(cudl_model_params(t->r.model)));
  {
    run_settings *settings = &t->settings;
    int rc;
    settings->o = &t->o;
    settings->r = &t->r;
    settings->optimizer = &t->oc;
    settings->schedule = &t->sched;
    settings->batches = t->batches;
    settings->parameters = cudl_tensor_numel(cudl_model_params(t->r.model));
    settings_note(settings);
    if (root && (rc = report_run(&t->rep, settings)) != 0) return rc;
  }
  g_keep_catching = t->dist.world > 1;
  signal(SIGINT, on_stop_signal);
  signal(SIGTERM, on_stop_signal);
  run_start = now_seconds();
  while (t->st.epoch < t->o.epochs) {
    epoch_totals e;
    int done = 0, rc;
    memset(&e, 0, sizeof e);
    e.start = now_seconds();
    if ((rc = train_batches(t, &e, &done)) != 0) return rc;
    if (!done) { /* interrupted, or --steps reached, within the epoch */
      cudl_status s =
          root ? run_files_save(&t->files, &t->r, &t->o, &t->st, &t->best)
               : CUDL_OK;
      if (root) report_end_progress();
      if (s != CUDL_OK)
        return cli_fail(t->r.ctx, s, "saving the checkpoint at step %" PRId64,
                        t->st.step);
      if (stop_requested(t)) {
        cli_note("interrupted at epoch %" PRId64 ", batch %" PRId64
                 "; saved %s (continue with --resume)",
                 t->st.epoch + 1, t->st.batch, t->files.checkpoint);
        return CLI_EXIT_INTERRUPTED;
      }
      end.reason = "steps";
      if ((rc = evaluate_test(t, &end)) != 0) return rc;
      return finish_run(t, &end, run_start);
    }
    if ((rc = finish_epoch(t, &e, &end)) != 0) return rc;
    if (t->o.steps > 0 && t->st.step >= t->o.steps) {
      end.reason = "steps";
      return finish_run(t, &end, run_start);
    }
    if (stop_requested(t) && t->st.epoch < t->o.epochs) {
      cli_note("interrupted after epoch %" PRId64
               "; saved %s (continue with --resume)",
               t->st.epoch, t->files.checkpoint);
      return CLI_EXIT_INTERRUPTED;
    }
  }
  end.reason = "epochs";
  return finish_run(t, &end, run_start);
}

int cudl__cmd_train(int argc, char **argv) {
  trainer t;
  int rc;
  cli_set_command("cudl train");
  cli_set_before_error(report_end_progress);
  memset(&t, 0, sizeof t);
  rc = train_start(&t, argc, argv);
  if (rc == RUN_GO) rc = train(&t);
  if (!report_close(&t.rep, rc == CLI_EXIT_OK || rc == CLI_EXIT_INTERRUPTED) &&
      rc == CLI_EXIT_OK)
    rc = CLI_EXIT_FAILED;
  /* A run that failed before its first save leaves no directory it made:
   * rmdir takes only empty ones. */
  if (rc != CLI_EXIT_OK && rc != CLI_EXIT_INTERRUPTED && run_dist_root(&t.dist))
    run_files_remove_made(&t.files);
  rc = run_dist_finish(&t.dist, rc);
  step_queue_free(&t.queue);
  run_free(&t.r);
  return rc;
}
