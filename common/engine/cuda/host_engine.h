// The CUDA backend's engine with its kernels executed on the host (host_exec.h): the same
// weight image, session layout, launches and copies as on a GPU, so tests without a GPU run
// every CUDA code path but the device's own runtime calls. For tests; far too slow to use.
#pragma once

#include <memory>

#include "common/engine/engine.h"
#include "common/model/model.h"
#include "common/util/status.h"

namespace boa::engine::cuda {

Result<std::shared_ptr<const Engine>> BuildHostEngine(const ModelWeights& weights);

}  // namespace boa::engine::cuda
