/* run_dist.h - `cudl train` as one rank of a data-parallel job started by
 * a launcher (mpirun, srun): which rank it is, the communicator, the
 * checks that the ranks run the same configuration, and the exchange of
 * each step (docs/distributed.md). */
#ifndef CUDL_TOOLS_RUN_DIST_H
#define CUDL_TOOLS_RUN_DIST_H

#include <stdint.h>

#include <cudl/cudl.h>

#include "run_types.h"

typedef struct run_dist {
  int launched;    /* a launcher's environment was found */
  int rank, world; /* 0 and 1 for one process */
  int local_rank;  /* among the ranks of this node (the GPU it takes) */
  cudl_comm *comm; /* NULL for one process */
  /* The MPI communicator the NCCL one (comm) was created over; NULL when
   * comm is the MPI one. */
  cudl_comm *bootstrap;
  int failed_together; /* every rank found the same failure: no abort */
} run_dist;

/* Read the launcher's environment (Open MPI's OMPI_COMM_WORLD_RANK/SIZE,
 * PMI_RANK/PMI_SIZE of MPICH's and Slurm's PMI, PMIX_RANK of PMIx; the
 * local rank from OMPI_COMM_WORLD_LOCAL_RANK, MPI_LOCALRANKID or
 * SLURM_LOCALID, else the rank) into d before anything is printed: a rank
 * other than 0 makes its notes quiet and its errors say its rank. No MPI
 * call yet. */
void run_dist_detect(run_dist *d);

/* The --device this rank opens: under a launcher, "cuda" (or "auto" where
 * a GPU is present) becomes "cuda:K" with K = the local rank modulo the
 * GPUs visible, one GPU per rank; anything else (cuda:N, cpu, one
 * process) is kept. The text lives until the next call. */
const char *run_dist_device(const run_dist *d, const char *device);

/* The communicator of a launched rank on ctx, for --dist-backend backend
 * (auto: nccl on a CUDA context when this build has NCCL, else mpi): the
 * MPI one, and for nccl the NCCL one over it, once every rank has said
 * over MPI that it chose the same (ranks that did not end together, rank
 * 0 saying why). 0, or the exit status with one line printed. */
int run_dist_connect(run_dist *d, cudl_context *ctx, const char *backend);

/* 0, or when launched by a launcher and this build has no MPI the exit
 * status with one line printed saying what is missing: before the run
 * reads anything. */
int run_dist_check_build(const run_dist *d);

/* When launched: the communicator in ctx (run_dist_connect with
 * --dist-backend), a one-line note of the
 * layout on rank 0, and the rank and world the run's loaders take (r). 0,
 * or the exit status with one line printed (MPI's own failure, a rank the
 * environment and MPI disagree on). */
int run_dist_start(run_dist *d, run *r, const options *o);

/* With several ranks: refuse a checkpoint saved by another world size
 * (its train.world; none recorded means 1), check that every rank has the
 * same configuration (a hash of the options, the model and the training
 * images), give every rank rank 0's weights, attach the communicator to
 * the model's backward (gradients averaged in buckets of --bucket-mb) and,
 * for --sync-bn, to its batch norm (with one process, a note that it
 * changes nothing). 0, or the exit status with one line printed. */
int run_dist_agree(run_dist *d, run *r, const options *o);

/* A step's exchange after backward (which has averaged the gradients
 * over the ranks: run_dist_agree attached the model): *loss, *rows and
 * *hits turned from this rank's batch into the global batch's (the mean
 * loss over all its rows, their count, the hits), and *stop from whether
 * this rank was asked to stop into whether any rank was (it rides in the
 * same exchange: no extra message). Nothing with one process. */
cudl_status run_dist_step(run_dist *d, float *loss, int64_t *rows,
                          int64_t *hits, int *stop);

/* --bucket-mb's value in bytes (cudl_model_set_grad_sync). */
int64_t run_dist_bucket_bytes(double mb);

/* 1 on the rank that prints, writes files and evaluates (rank 0). */
int run_dist_root(const run_dist *d);

/* The end of the run with exit status rc: with several ranks, a failure
 * of this rank ends the whole job (MPI_Abort: the others may be waiting
 * for it); success, an interrupt (which every rank stops at together) or
 * a failure every rank found at once (configurations that differ) waits
 * for every rank and finalises MPI. Returns rc. */
int run_dist_finish(run_dist *d, int rc);

#endif /* CUDL_TOOLS_RUN_DIST_H */
