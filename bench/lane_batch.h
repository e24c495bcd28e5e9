// A benchmark's unit of engine work: one session and the bytes it feeds all its lanes every
// Forward call (per_lane bytes each: 1 is step mode, more is chunk mode).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "common/coder/frequency_table.h"
#include "common/engine/engine.h"

namespace boa::bench {

struct LaneBatch {
  LaneBatch(std::shared_ptr<const engine::Engine> e, int lanes, int per_lane)
      : session(engine::Session::New(std::move(e), lanes, lanes * per_lane)),
        data(static_cast<size_t>(lanes) * per_lane),
        cum(data.size() * kFreqTableStride) {
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 131 + 7);
    for (int l = 0; l < lanes; ++l) inputs.push_back({l, data.data() + static_cast<size_t>(l) * per_lane, per_lane});
  }
  // One Forward call; returns the bytes it coded.
  uint64_t Run() {
    session->Forward(inputs.data(), static_cast<int>(inputs.size()), cum.data());
    return data.size();
  }
  std::unique_ptr<engine::Session> session;
  std::vector<uint8_t> data;
  std::vector<uint32_t> cum;
  std::vector<engine::LaneInput> inputs;
};

}  // namespace boa::bench
