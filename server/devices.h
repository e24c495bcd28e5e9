// boad's devices: the `devices` of boad.yaml made into the model store's StoreDevices, each
// checked against the machine (a cuda:N that is not there stops boad at start with the reason)
// and given its defaults (docs/server.md, "Devices").
#pragma once

#include <vector>

#include "common/util/status.h"
#include "server/config.h"
#include "server/model_store.h"

namespace boa::server {

// One StoreDevice per entry, in the same order: its backend, description, memory budget,
// and the scheduler options of each model resident there with the device's lane budget.
// FAILED_PRECONDITION naming the entry (devices[i]) for a device this build or machine
// cannot run.
Result<std::vector<StoreDevice>> OpenDevices(const ServerConfig& config);

// The memory budget the top-level memory_budget sets (SIGHUP): the cpu device's, unless
// its entry gives its own. -1: none follows it.
int DeviceFollowingMemoryBudget(const ServerConfig& config);

}  // namespace boa::server
