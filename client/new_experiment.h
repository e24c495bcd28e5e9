// `boa-client new-experiment`: the original tool's interactive creator. Asks the same
// questions with the same defaults, re-asks on invalid answers, and writes
// experiments/NAME/NAME.yaml. Reads answers line by line, so it can be scripted by piping.
#pragma once

#include <istream>
#include <ostream>
#include <string>

#include "common/util/status.h"

namespace boa::client {

// Writes <root>/experiments/NAME/NAME.yaml; invalid answers are re-asked on `err`.
Status NewExperiment(std::istream& in, std::ostream& out, std::ostream& err, const std::string& root = ".");

}  // namespace boa::client
