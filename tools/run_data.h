/* run_data.h - the datasets of a run: a named dataset or a folder of
 * images (--data folder:PATH), and the short names a run directory takes. */
#ifndef CUDL_TOOLS_RUN_DATA_H
#define CUDL_TOOLS_RUN_DATA_H

#include <stddef.h>

#include "run_types.h"

/* 1 when o->data names a folder of images (folder:PATH). */
int run_data_is_folder(const options *o);

/* The datasets of the run: a named dataset's splits, or a folder's
 * (PATH/train, PATH/val, PATH/test, or one tree PATH/<class> that
 * --val-split divides, then without a test set). Train loads the training
 * split (and a val/ folder) and the test split where there is one; eval
 * the test split. Folder images are read with channels, height and width
 * when these are above 0 (the model's input), else as the training tree
 * has them; unreadable files are skipped and listed (or, with --strict,
 * fail the run). Sets r->train_set, r->val_set, r->test_set and
 * r->class_names; 0, or the exit status with one line printed. */
int run_load_data(run *r, const options *o, int channels, int height,
                  int width);

/* A short name of the data and of the model for the run directory
 * (runs/MODEL-DATA): a folder's last path component, a model file's name
 * without ".json". */
void run_data_label(const options *o, char *label, size_t size);
void run_model_label(const options *o, char *label, size_t size);

#endif /* CUDL_TOOLS_RUN_DATA_H */
