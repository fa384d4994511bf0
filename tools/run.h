/* run.h - what `cudl train`, `cudl eval` and `cudl predict` share: their
 * options (run_options.h), and the run they set up from them (context,
 * datasets, normalisation, model, batch tensors), checked in an order that
 * reports a wrong command line (exit 2) before any file is read, and anything
 * wrong with the files before anything large is allocated or anything written.
 */
#ifndef CUDL_TOOLS_RUN_H
#define CUDL_TOOLS_RUN_H

#include <stdint.h>
#include <stdio.h>

#include <cudl/cudl.h>
#include <cudl/data.h>

#include "run_data.h"
#include "run_options.h"
#include "run_types.h"

/* Open the device, check the files the options name (--resume, --init,
 * --weights: their model, dataset and normalisation), load the datasets
 * (the training split for train only, less the images --val-split holds
 * out into val_set, split with --seed) and check them against each other
 * and the options, settle the normalisation (the statistics of the images
 * trained on), build and compile the model
 * and make the batch tensors. The batch is --batch for train (which needs
 * at least one whole batch of training images), at most the test set for
 * eval (more would only take memory) and --count for predict. 0 on
 * success; else the exit status, with one line printed. r must be zeroed
 * first; run_free releases it either way. */
int run_setup(run *r, options *o);

void run_free(run *r);

/* The random crop's zero padding for ds's images: 4 pixels from 32 high,
 * else 2. */
int run_crop_padding(const cudl_dataset *ds);

/* A loader over ds with the run's batch and normalisation; training
 * shuffles (per --no-shuffle), drops the last partial batch and augments
 * (per --augment; by default for cifar10). */
cudl_status run_make_loader(run *r, const options *o, const cudl_dataset *ds,
                            int training, cudl_loader **out);

/* Views of the first `rows` rows of the batch tensors (the last batch of
 * an epoch may be partial). */
cudl_status run_batch_views(run *r, int64_t rows, cudl_tensor **x,
                            cudl_tensor **labels);

/* Mean loss and accuracy over one epoch of loader, in evaluation mode,
 * read from the device each r->sync_every batches. */
cudl_status run_evaluate(run *r, cudl_loader *loader, double *loss,
                         double *accuracy);

/* The normalisation as metadata values: "m0,m1,..." and "s0,s1,..." with
 * one number a channel, for the files a run writes. */
void run_normalisation_text(const run *r, char *mean, char *std, size_t size);

#endif /* CUDL_TOOLS_RUN_H */
