// Import of PyTorch checkpoints written by torch.save(model.state_dict()) with the public
// BOA parameter names. The zip is read directly and its pickle by a restricted interpreter
// that knows only the globals a state_dict needs (OrderedDict, tensor rebuild, storage
// types) and refuses anything else: a pickle is a program, and a checkpoint from elsewhere
// must never run code. No torch needed.
#pragma once

#include <cstdint>
#include <vector>

#include "common/model/model.h"
#include "common/util/status.h"

namespace boa {

// Infers the architecture from the tensor shapes; missing or unexpected keys are listed in
// the error.
Result<ModelWeights> ImportTorchCheckpoint(const std::vector<uint8_t>& file);

}  // namespace boa
