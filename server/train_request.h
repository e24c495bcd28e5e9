// What a Train request may ask of this server, checked before a job is queued: its model
// name, its files (inside train_data_dir, links resolved), every training option (the
// trainer's own rules) and its memory (train_memory_budget). A pure function of the
// request, the limits and the files it names; tests/train_request_test.cc.
#pragma once

#include <cstdint>
#include <string>

#include "boa/v1/boa.pb.h"
#include "common/train/trainer.h"
#include "common/util/status.h"

namespace boa::server {

struct TrainLimits {
  std::string data_dir;         // train_data_dir; empty: training over gRPC is off
  uint64_t memory_budget = 0;   // train_memory_budget
  int threads = 0;              // the trainer's threads (0: all cores)
};

// `path` as a request names it: relative, without "..", and a regular file inside
// `data_dir` once links are resolved. Returns the file's canonical path.
Result<std::string> ResolveTrainingFile(const std::string& data_dir, const std::string& path);

// The job's options: zero or empty fields take the trainer's defaults (train::TrainOptions,
// the same as `boa-client train`'s). FAILED_PRECONDITION when training is off or this
// boad cannot train, INVALID_ARGUMENT naming the field, RESOURCE_EXHAUSTED above the budget.
Result<train::TrainOptions> TrainOptionsFromRequest(const v1::TrainRequest& req, const TrainLimits& limits);

}  // namespace boa::server
