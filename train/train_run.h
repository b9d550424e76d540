// One rank of a data-parallel training run (what wfm-train does): the data
// from an .npz file or from a data set of a server's repository, the model
// trained with DistributedRole{rank, world_size} and the hooks of
// DataParallel, and rank 0 writing the checkpoints every checkpoint_every
// steps and at the end: to --out, or, publishing into the repository, to the
// run's working checkpoint <data-dir>/train/<model>.wfm, the final one
// published as a new version of the model,
//   <data-dir>/models/<model>/<V>/model.wfm
// as a server's training job publishes it (--overwrite: the model's folder
// replaced by version 1), where a server watching that repository picks it
// up. Checkpoints hold the optimizer state, so --resume continues an
// interrupted run from its working checkpoint, or a finished one from its
// model's latest version (every rank reads the same file; the ranks check
// that they resumed at the same step).
//
// The data take the server's path (repository/training_data.h,
// MakeTrainingInputs, as a training job): the same held-out split for a
// holdout fraction and seed, SPATIAL_CELLS niches of niche_size cells,
// matched sources following the split, and the same "server" metadata
// (TrainingOrigin), so Evaluate's "heldout" split works on the published
// model.
//
// Failures are collective where they can be: a rank that cannot read its
// data or finds the --out file taken stops every rank with its message
// ("rank 1: ..."); a rank that dies or stalls makes the others fail at their
// next collective (see data_parallel.h).
#ifndef WFM_TRAIN_TRAIN_RUN_H_
#define WFM_TRAIN_TRAIN_RUN_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "model/config/config.h"
#include "model/distributed/data_parallel.h"

namespace wfm::train {

struct TrainRunOptions {
  // The data: an .npz file (point clouds or Gaussians, model/io layouts) or
  // the data set `dataset` of the repository `data_dir`.
  std::string data_file;
  std::string dataset;
  std::string data_dir;
  // User-given source clouds / Gaussians (--noise given_random |
  // given_matched): an .npz file, or the data set config.source_dataset of
  // the repository.
  std::string source_file;

  // The output: a new version of <data_dir>/models/<model>, or the file
  // `out` when set.
  std::string model;
  std::string out;
  bool overwrite = false;  // replace `out`, or every version of `model`
  bool resume = false;     // continue from the last checkpoint, if any

  // The family to train; unset: gaussian for Gaussian data, pointcloud
  // otherwise. config.family is not read: RunTraining sets it from this.
  std::optional<model::Family> family;
  // The run's settings, as a server's training job takes them: both
  // families' configurations (optimizer.batch_size is the global batch),
  // source_dataset, niche_size (SPATIAL_CELLS data sets) and
  // holdout_fraction (the server's held-out split).
  model::TrainingConfig config;

  // Per-step JSON lines of this rank: step, loss (mean over ranks),
  // local_loss, digest (hex, of the parameters), param_sum, step_seconds,
  // reduce_seconds. Empty: none.
  std::string trace_file;
  // Every this many steps (and after the last) the ranks compare their
  // parameter digests and stop with INTERNAL when they differ. 0: never.
  int64_t check_sync_every = 100;
  // Rank 0 logs progress every this many steps (0: never).
  int64_t log_every = 50;
};

struct TrainRunResult {
  int64_t steps = 0;          // steps done (in total, with a resumed run's)
  double final_loss = 0.0;    // last step's loss, mean over the ranks
  double seconds = 0.0;       // wall time of the training loop
  std::string checkpoint;     // the path rank 0 wrote last (a version's file)
  model::distributed::CommStats gradients;        // this rank's gradient all-reduces
};

// Range checks of the options that do not need the data; messages name the
// flag ("--batch: ...").
absl::Status ValidateTrainRunOptions(const TrainRunOptions& options, int64_t world_size);

// Runs this rank's part of the training; every rank of `dp` must call it
// with the same options.
absl::StatusOr<TrainRunResult> RunTraining(const TrainRunOptions& options,
                                           model::distributed::DataParallel& dp);

}  // namespace wfm::train

#endif  // WFM_TRAIN_TRAIN_RUN_H_
