// The tools' seeded random numbers: splitmix64, the same integers on every machine and
// standard library (unlike <random>'s distributions), so data sets follow from their seed.
#pragma once

#include <cmath>
#include <cstdint>

namespace boa::tools {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  uint64_t Next() {
    s_ += 0x9e3779b97f4a7c15ull;
    uint64_t z = s_;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1p-53; }
  double Normal() {
    double u = Uniform(), v = Uniform();
    return std::sqrt(-2.0 * std::log(u + 1e-300)) * std::cos(6.283185307179586 * v);
  }
  int Poisson(double mean) {
    double l = std::exp(-mean), p = 1.0;
    int k = 0;
    do {
      ++k;
      p *= Uniform();
    } while (p > l);
    return k - 1;
  }

 private:
  uint64_t s_;
};

}  // namespace boa::tools
