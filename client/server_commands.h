// Following a training job on boad, shared by `train --name` and `jobs resume`.
#pragma once

#include <functional>
#include <string>

#include "rpc/remote_client.h"

namespace boa::client {

using ProgressLineFn = std::function<void(const std::string& line, bool milestone)>;
using JobEventFn = std::function<void(const v1::TrainEvent&)>;

// `call` starts the job's event stream; this announces the job, shows its progress and
// its outcome. OK only if the job succeeded.
Status FollowJob(rpc::RemoteClient& remote, const std::function<Status(const JobEventFn&)>& call,
                 const ProgressLineFn& progress, bool quiet);

}  // namespace boa::client
