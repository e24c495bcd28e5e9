// boa-sample-data: writes a deterministic float32 table that looks like a jet-feature dump
// from a collider experiment (24 little-endian float32 columns per jet, as in the CMS jet
// table the BOA paper compresses), for demos, tests and experiments.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "tools/rng.h"

namespace {

using boa::tools::Rng;

// Detector precision: features are stored with a limited number of significant bits, like
// NanoAOD's lossy float compression.
float Round(double v, int mantissa_bits) {
  if (v == 0) return 0.0f;
  int e;
  double m = std::frexp(v, &e);
  double scale = std::ldexp(1.0, mantissa_bits);
  return static_cast<float>(std::ldexp(std::round(m * scale) / scale, e));
}

void Usage() {
  std::fprintf(stderr,
               "usage: boa-sample-data [--rows N] [--seed S] -o FILE\n"
               "Writes N jets (default 100000) x 24 float32 features (~9.6 MB per 100k rows).\n");
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t rows = 100000, seed = 1;
  std::string out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--rows" || a == "--seed" || a == "-o") && i + 1 < argc) {
      std::string v = argv[++i];
      if (a == "-o") {
        out = v;
      } else {
        char* end = nullptr;
        unsigned long long n = std::strtoull(v.c_str(), &end, 10);
        if (!end || *end) {
          std::fprintf(stderr, "boa-sample-data: %s: '%s' is not a number\n", a.c_str(), v.c_str());
          return 1;
        }
        (a == "--rows" ? rows : seed) = n;
      }
    } else {
      Usage();
      return a == "-h" || a == "--help" ? 0 : 1;
    }
  }
  if (out.empty()) {
    Usage();
    return 1;
  }
  FILE* f = std::fopen(out.c_str(), "wb");
  if (!f) {
    std::fprintf(stderr, "boa-sample-data: %s: %s\n", out.c_str(), std::strerror(errno));
    return 1;
  }
  Rng rng(seed);
  std::vector<float> row(24);
  uint64_t event = 0, left_in_event = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    if (left_in_event == 0) {
      ++event;
      left_in_event = 1 + rng.Poisson(3.0);
    }
    --left_in_event;
    double pt = 20.0 * std::pow(1.0 - rng.Uniform(), -1.0 / 3.5);  // falling spectrum
    double eta = std::max(-4.7, std::min(4.7, 1.8 * rng.Normal()));
    double phi = -M_PI + 2 * M_PI * rng.Uniform();
    double mass = pt * (0.05 + 0.1 * rng.Uniform());
    bool b = rng.Uniform() < 0.12;
    row[0] = Round(pt, 10);
    row[1] = Round(eta, 12);
    row[2] = Round(phi, 12);
    row[3] = Round(mass, 8);
    row[4] = Round(b ? 0.7 + 0.3 * rng.Uniform() : 0.3 * rng.Uniform() * rng.Uniform(), 10);  // b-tag
    row[5] = Round(rng.Uniform() * rng.Uniform(), 10);                                          // c-tag
    row[6] = Round(0.3 + 0.6 * rng.Uniform(), 10);                                              // charged had. frac
    row[7] = Round(0.1 + 0.4 * rng.Uniform(), 10);                                              // neutral had. frac
    row[8] = Round(0.2 * rng.Uniform() * rng.Uniform(), 8);                                     // EM fraction
    row[9] = rng.Uniform() < 0.95 ? 0.0f : Round(rng.Uniform(), 8);                             // muon fraction
    row[10] = static_cast<float>(5 + rng.Poisson(10 + pt / 20));                                // constituents
    row[11] = static_cast<float>(rng.Poisson(6 + pt / 40));                                     // charged mult.
    row[12] = static_cast<float>(b ? 5 : (rng.Uniform() < 0.1 ? 4 : 0));                         // hadron flavour
    row[13] = static_cast<float>(b ? 5 : static_cast<int>(rng.Uniform() * 4));                   // parton flavour
    row[14] = Round(1.0 + 0.05 * rng.Normal(), 12);                                             // JEC factor
    row[15] = Round(pt * 0.03 * std::fabs(rng.Normal()), 8);                                    // raw - corrected
    row[16] = Round(0.4 * std::sqrt(rng.Uniform()), 10);                                        // area
    row[17] = static_cast<float>(rng.Uniform() < 0.97 ? 6 : 2);                                 // jet ID bits
    row[18] = static_cast<float>(rng.Uniform() < 0.8 ? 7 : (rng.Uniform() < 0.5 ? 4 : 0));       // PU ID bits
    row[19] = Round(rng.Uniform(), 10);                                                         // QG likelihood
    row[20] = Round(std::fabs(rng.Normal()) * 0.02, 8);                                         // d0 significance
    row[21] = static_cast<float>(event & 0xffffff);                                             // event index
    row[22] = static_cast<float>(rng.Poisson(0.2));                                             // n leptons in jet
    row[23] = Round(30.0 + 10.0 * rng.Normal(), 6);                                             // rho
    if (std::fwrite(row.data(), sizeof(float), row.size(), f) != row.size()) {
      std::fprintf(stderr, "boa-sample-data: %s: write failed\n", out.c_str());
      std::fclose(f);
      return 1;
    }
  }
  if (std::fclose(f) != 0) {
    std::fprintf(stderr, "boa-sample-data: %s: write failed\n", out.c_str());
    return 1;
  }
  return 0;
}
