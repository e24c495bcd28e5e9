// Helpers shared by the tests and the benchmarks: small seeded models, generated data,
// temporary directories.
#pragma once

#include <sys/wait.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/codec/codec.h"
#include "common/engine/engine.h"
#include "common/engine/sample.h"
#include "common/model/model.h"
#include "common/util/io.h"
#include "tools/rng.h"

namespace boa::testing {

// A model as the codec sees it: serialised and parsed back, so its id is real.
inline LoadedModel MakeModel(uint32_t d_model, uint32_t layers, uint64_t seed, float head_scale = 1.0f,
                             WeightType type = WeightType::kF32, bool match_model = false, bool derived_fields = false) {
  ModelWeights w = InitRandomModel(ModelConfig::Default(d_model, layers), seed);
  w.config.match_model = match_model;
  w.config.derived_fields = derived_fields;
  if (head_scale != 1.0f) {
    // Sharper predictions than a fresh initialisation gives, like a trained model's.
    for (float& v : w.Find("head.2.weight")->data) v *= head_scale;
  }
  Result<LoadedModel> m = ParseModelFile(SerializeModel(w, type, "test"));
  if (!m.ok()) std::abort();
  return std::move(m).value();
}

// Runs a shell command; its exit status, and what it wrote to stdout and stderr in `output`.
inline int RunCommand(const std::string& cmd, std::string* output) {
  FILE* p = popen(("{ " + cmd + "; } 2>&1").c_str(), "r");
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) output->append(buf, n);
  int status = pclose(p);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

// A fresh directory under /tmp, removed with everything in it when the object goes away.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix) {
    std::string tmpl = "/tmp/" + prefix + "_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (!::mkdtemp(buf.data())) std::abort();
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::vector<uint8_t> v(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& b : v) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    b = static_cast<uint8_t>(x >> 24);
  }
  return v;
}

// A little-endian float32 table like a jet-feature dump: columns with different smooth
// distributions and limited precision, so the bytes have structure a model can learn.
inline std::vector<uint8_t> FloatTable(size_t bytes, uint64_t seed) {
  std::vector<uint8_t> out;
  out.reserve(bytes + 64);
  uint64_t x = seed * 0x2545f4914f6cdd1dull + 7;
  auto next = [&]() {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    return static_cast<double>((x * 0x2545f4914f6cdd1dull) >> 11) * 0x1p-53;
  };
  while (out.size() < bytes) {
    for (int col = 0; col < 8; ++col) {
      double u = next();
      float v;
      switch (col) {
        case 0: v = static_cast<float>(20.0 + 200.0 * u * u); break;   // pt-like
        case 1: v = static_cast<float>(-2.5 + 5.0 * u); break;         // eta
        case 2: v = static_cast<float>(-3.14159 + 6.28318 * u); break; // phi
        case 3: v = static_cast<float>(static_cast<int>(u * 8)); break; // multiplicity
        case 4: v = static_cast<float>(static_cast<int>(u * 1000) / 100.0); break;  // rounded
        case 5: v = u < 0.7 ? 0.0f : static_cast<float>(u); break;     // mostly zero
        case 6: v = 1.0f; break;                                       // constant
        default: v = static_cast<float>(u * 1e-3); break;
      }
      uint8_t b[4];
      std::memcpy(b, &v, 4);
      out.insert(out.end(), b, b + 4);
    }
  }
  out.resize(bytes);
  return out;
}

// Text like a HepMC3 event record: E/P lines with barcodes and 17-digit numbers, where the
// line heads and constants repeat and the mantissas do not (LZMA2's ground more than an
// untrained model's).
inline std::vector<uint8_t> EventText(size_t bytes, uint64_t seed) {
  std::string s;
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 5;
  auto next = [&]() {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  char buf[200];
  for (int event = 0; s.size() < bytes; ++event) {
    std::snprintf(buf, sizeof buf, "E %d 12 40\nU GEV MM\nW 1.0000000000000000e+00\n", event);
    s += buf;
    for (int p = 1; p <= 40 && s.size() < bytes; ++p) {
      const int pdg[] = {211, -211, 22, 111, 321, 2212};
      const double px = static_cast<double>(next() % 100000) / 3e3 - 15, pz = static_cast<double>(next() % 100000) / 1e3 - 50;
      std::snprintf(buf, sizeof buf, "P %d %d %d %.16e %.16e %.16e %.16e 1.3957000000000000e-01 %d\n", p, p / 3,
                    pdg[next() % 6], px, -px / 2, pz, std::fabs(pz) + std::fabs(px), p < 30 ? 2 : 1);
      s += buf;
    }
  }
  s.resize(bytes);
  return {s.begin(), s.end()};
}

// A FastJet-style listing of four-momenta, "px py pz E" per line as %17.10g, with
// E = sqrt(px² + py² + pz² + m²) for a pion, kaon, proton or massless mass, and a
// "#event" line every 50 particles.
inline std::vector<uint8_t> FourMomentumText(size_t bytes, uint64_t seed) {
  std::string s;
  tools::Rng rng(seed);
  const auto uniform = [&] { return rng.Uniform(); };
  const double masses[] = {0.13957039, 0.13957039, 0.493677, 0.93827208816, 0.0};
  char buf[200];
  for (int n = 0; s.size() < bytes; ++n) {
    if (n % 50 == 0) {
      std::snprintf(buf, sizeof buf, "#event %d\n", n / 50);
      s += buf;
    }
    const double px = (uniform() - 0.5) * 4, py = (uniform() - 0.5) * 4, pz = (uniform() - 0.5) * 40;
    const double m = masses[static_cast<int>(uniform() * 5)];
    const double e = std::sqrt(px * px + py * py + pz * pz + m * m);
    std::snprintf(buf, sizeof buf, "%17.10g%17.10g%17.10g%17.10g\n", px, py, pz, e);
    s += buf;
  }
  s.resize(bytes);
  return std::vector<uint8_t>(s.begin(), s.end());
}

// Bytes drawn from the model's own predictions, one sequence from a fresh state: data the
// model predicts exactly as well as its entropy says, like in-distribution data for a
// trained model.
inline std::vector<uint8_t> SampleFromModel(const LoadedModel& m, size_t n, uint64_t seed) {
  return engine::SampleBytes(engine::Engine::Create(m.weights, engine::Backend::kAuto).value(), n, seed);
}

inline Status CompressBytes(const LoadedModel& m, const std::vector<uint8_t>& in,
                            std::vector<uint8_t>* out, CodecOptions o = {}) {
  MemorySource src(in);
  MemorySink sink;
  Status s = Compress(m, &src, &sink, o, nullptr);
  *out = std::move(sink.data);
  return s;
}

inline Status DecompressBytes(const LoadedModel& m, const std::vector<uint8_t>& in,
                              std::vector<uint8_t>* out, CodecOptions o = {}) {
  MemorySource src(in);
  MemorySink sink;
  Status s = Decompress(m, &src, &sink, o, nullptr);
  *out = std::move(sink.data);
  return s;
}

}  // namespace boa::testing
