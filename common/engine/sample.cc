// Sampling bytes from a model (see sample.h).
#include "common/engine/sample.h"

#include <algorithm>

#include "common/coder/frequency_table.h"

namespace boa::engine {

std::vector<uint8_t> SampleBytes(std::shared_ptr<const Engine> engine, size_t n, uint64_t seed, int lanes) {
  lanes = std::max(1, lanes);
  const size_t per_lane = (n + static_cast<size_t>(lanes) - 1) / static_cast<size_t>(lanes);
  std::unique_ptr<Session> session = Session::New(std::move(engine), lanes, lanes);
  std::vector<std::vector<uint8_t>> seqs(static_cast<size_t>(lanes));
  std::vector<uint64_t> state(static_cast<size_t>(lanes));
  for (int l = 0; l < lanes; ++l) {
    const uint64_t s = seed + static_cast<uint64_t>(l);
    seqs[l].reserve(per_lane);
    seqs[l].push_back(static_cast<uint8_t>(s));
    state[l] = s * 0x9e3779b97f4a7c15ull + 3;
  }
  std::vector<uint32_t> tables(static_cast<size_t>(lanes) * kFreqTableStride);
  std::vector<LaneInput> inputs;
  while (per_lane > 0 && seqs[0].size() < per_lane) {  // every lane has the same length
    inputs.clear();
    for (int l = 0; l < lanes; ++l) inputs.push_back({l, &seqs[l].back(), 1});
    session->Forward(inputs.data(), lanes, tables.data());
    for (int l = 0; l < lanes; ++l) {
      uint64_t& x = state[l];
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      const uint32_t u = static_cast<uint32_t>(x >> 40);  // uniform in [0, 2^24)
      const uint32_t* cum = &tables[static_cast<size_t>(l) * kFreqTableStride];
      int sym = 0;
      while (cum[sym + 1] <= u) ++sym;
      seqs[l].push_back(static_cast<uint8_t>(sym));
    }
  }
  std::vector<uint8_t> out;
  out.reserve(n);
  for (const auto& s : seqs) out.insert(out.end(), s.begin(), s.begin() + std::min(s.size(), per_lane));
  out.resize(n);
  return out;
}

}  // namespace boa::engine
