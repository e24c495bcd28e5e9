// boa-event-text: writes simulated collider events as text, in the two layouts physicists
// keep: HepMC3's ASCII event records (E/U/W/A/V/P lines, particle ids as barcodes, every
// real number with 17 significant digits, as Pythia's HepMC3 output) and a FastJet-style
// listing of final-state px py pz E per event. The physics is deliberately simple (a 2->2
// hard scatter, a momentum-conserving binary shower, hadrons, pi0 -> gamma gamma, a soft
// underlying event); the formatting is faithful, which is what a compressor sees.
#include <unistd.h>

#include <algorithm>
#include <cerrno>
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

constexpr double kBeamEnergy = 6500.0;
constexpr double kProtonMass = 0.93827;

struct Particle {
  int id = 0;      // barcode: 1-based position in the event
  int parent = 0;  // HepMC3: the mother's id, or a vertex id (< 0), or 0 for the beams
  int pdg = 0;
  double px = 0, py = 0, pz = 0, e = 0, m = 0;
  int status = 1;
};

struct Vertex {
  int id = 0;  // < 0
  std::vector<int> in;
};

struct Event {
  std::vector<Particle> particles;
  std::vector<Vertex> vertices;  // those with several incoming particles (written as V lines)
  int implicit_vertices = 0;     // single-mother vertices, given by the P line's mother id
};

struct Hadron {
  int pdg;
  double mass;
  double weight;
};
// Charge-symmetric hadron mix of a jet, by rough multiplicity.
const Hadron kHadrons[] = {{211, 0.13957, 0.26},  {-211, 0.13957, 0.26}, {111, 0.13498, 0.24},
                           {321, 0.49368, 0.05},  {-321, 0.49368, 0.05}, {130, 0.49761, 0.04},
                           {2212, 0.93827, 0.03}, {-2212, 0.93827, 0.03}, {2112, 0.93957, 0.02},
                           {-2112, 0.93957, 0.02}};

const Hadron& PickHadron(Rng& rng) {
  double u = rng.Uniform(), acc = 0;
  for (const Hadron& h : kHadrons) {
    acc += h.weight;
    if (u < acc) return h;
  }
  return kHadrons[0];
}

double Energy(double px, double py, double pz, double m) { return std::sqrt(px * px + py * py + pz * pz + m * m); }

int Add(Event& ev, int parent, int pdg, double px, double py, double pz, double m, int status) {
  Particle p;
  p.id = static_cast<int>(ev.particles.size()) + 1;
  p.parent = parent;
  p.pdg = pdg;
  p.px = px;
  p.py = py;
  p.pz = pz;
  p.m = m;
  p.e = Energy(px, py, pz, m);
  p.status = status;
  ev.particles.push_back(p);
  return p.id;
}

// A decayed pi0: two photons back to back in its rest frame, boosted along its momentum.
void DecayPi0(Event& ev, Rng& rng, int mother) {
  ev.particles[mother - 1].status = 2;
  const Particle p = ev.particles[mother - 1];
  ++ev.implicit_vertices;
  const double half = p.m / 2;
  const double cost = 2 * rng.Uniform() - 1, sint = std::sqrt(1 - cost * cost), phi = 2 * M_PI * rng.Uniform();
  double k[3] = {half * sint * std::cos(phi), half * sint * std::sin(phi), half * cost};
  const double b[3] = {p.px / p.e, p.py / p.e, p.pz / p.e};
  const double b2 = b[0] * b[0] + b[1] * b[1] + b[2] * b[2];
  const double gamma = 1 / std::sqrt(std::max(1e-300, 1 - b2));
  for (int sign : {1, -1}) {
    const double q[3] = {sign * k[0], sign * k[1], sign * k[2]};
    const double bq = b[0] * q[0] + b[1] * q[1] + b[2] * q[2];
    const double f = b2 > 0 ? (gamma - 1) * bq / b2 + gamma * half : 0;
    Add(ev, mother, 22, q[0] + f * b[0], q[1] + f * b[1], q[2] + f * b[2], 0.0, 1);
  }
}

// A parton (massless) splits in two sharing its momentum (fraction z) with a transverse kick
// that shrinks with the energy, until pieces are soft; each soft piece becomes a hadron.
void Shower(Event& ev, Rng& rng, int mother, int depth) {
  const Particle p = ev.particles[mother - 1];
  if (p.e < 3.0 + 4.0 * rng.Uniform() || depth > 9) {
    ev.particles[mother - 1].status = 2;
    ++ev.implicit_vertices;
    const Hadron& h = PickHadron(rng);
    const int id = Add(ev, mother, h.pdg, p.px, p.py, p.pz, h.mass, 1);
    if (h.pdg == 111) DecayPi0(ev, rng, id);
    return;
  }
  ev.particles[mother - 1].status = 51;
  ++ev.implicit_vertices;
  const double z = 0.1 + 0.8 * rng.Uniform();
  const double pabs = std::sqrt(p.px * p.px + p.py * p.py + p.pz * p.pz);
  // A unit vector perpendicular to p, turned by a random angle.
  double u[3] = {-p.py, p.px, 0};
  double un = std::hypot(u[0], u[1]);
  if (un < 1e-12) {
    u[0] = 1;
    u[1] = 0;
    un = 1;
  }
  u[0] /= un;
  u[1] /= un;
  const double w[3] = {(p.py * u[2] - p.pz * u[1]) / pabs, (p.pz * u[0] - p.px * u[2]) / pabs,
                       (p.px * u[1] - p.py * u[0]) / pabs};
  const double a = 2 * M_PI * rng.Uniform();
  const double kt = std::min(0.3 * z * (1 - z) * pabs, std::fabs(0.6 * rng.Normal()) + 0.2);
  const double dir[3] = {std::cos(a) * u[0] + std::sin(a) * w[0], std::cos(a) * u[1] + std::sin(a) * w[1],
                         std::cos(a) * u[2] + std::sin(a) * w[2]};
  const int flavour = p.pdg;
  const int c1 = Add(ev, mother, flavour, z * p.px + kt * dir[0], z * p.py + kt * dir[1], z * p.pz + kt * dir[2], 0.0, 51);
  const int c2 = Add(ev, mother, 21, (1 - z) * p.px - kt * dir[0], (1 - z) * p.py - kt * dir[1],
                     (1 - z) * p.pz - kt * dir[2], 0.0, 51);
  Shower(ev, rng, c1, depth + 1);
  Shower(ev, rng, c2, depth + 1);
}

Event Generate(Rng& rng) {
  Event ev;
  Add(ev, 0, 2212, 0, 0, std::sqrt(kBeamEnergy * kBeamEnergy - kProtonMass * kProtonMass), kProtonMass, 4);
  Add(ev, 0, 2212, 0, 0, -std::sqrt(kBeamEnergy * kBeamEnergy - kProtonMass * kProtonMass), kProtonMass, 4);
  // The hard scatter: two incoming partons, two outgoing back to back in the transverse plane.
  const double pt = 20.0 * std::pow(1.0 - rng.Uniform(), -1.0 / 4.0);
  const double y1 = 2.0 * rng.Normal(), y2 = 2.0 * rng.Normal(), phi = 2 * M_PI * rng.Uniform() - M_PI;
  const double x1 = pt / kBeamEnergy / 2 * (std::exp(y1) + std::exp(y2)), x2 = pt / kBeamEnergy / 2 * (std::exp(-y1) + std::exp(-y2));
  const int in_pdg[2] = {rng.Uniform() < 0.6 ? 21 : 2, rng.Uniform() < 0.6 ? 21 : 1};
  const int a = Add(ev, 1, in_pdg[0], 0, 0, std::min(x1, 0.9) * kBeamEnergy, 0.0, 21);
  const int b = Add(ev, 2, in_pdg[1], 0, 0, -std::min(x2, 0.9) * kBeamEnergy, 0.0, 21);
  ev.implicit_vertices += 2;
  ev.vertices.push_back(Vertex{-3, {a, b}});
  const int o1 = Add(ev, -3, in_pdg[0], pt * std::cos(phi), pt * std::sin(phi), pt * std::sinh(y1), 0.0, 23);
  const int o2 = Add(ev, -3, in_pdg[1], -pt * std::cos(phi), -pt * std::sin(phi), pt * std::sinh(y2), 0.0, 23);
  Shower(ev, rng, o1, 0);
  Shower(ev, rng, o2, 0);
  // The underlying event: soft hadrons from the beam remnants.
  const int soft = 5 + rng.Poisson(12.0);
  for (int i = 0; i < soft; ++i) {
    const double spt = 0.3 + std::fabs(0.8 * rng.Normal()), eta = 3.0 * rng.Normal(), sphi = 2 * M_PI * rng.Uniform();
    const Hadron& h = PickHadron(rng);
    const int id = Add(ev, i % 2 ? 1 : 2, h.pdg, spt * std::cos(sphi), spt * std::sin(sphi), spt * std::sinh(eta), h.mass, 1);
    if (h.pdg == 111) DecayPi0(ev, rng, id);
  }
  ev.particles[0].status = ev.particles[1].status = 4;
  return ev;
}

void PutNumber(std::string& out, double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, " %.16e", v);
  out += buf;
}

void WriteHepMC3(std::string& out, const Event& ev, uint64_t number, double cross_section, Rng& rng) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "E %llu %d %zu\n", static_cast<unsigned long long>(number),
                static_cast<int>(ev.vertices.size()) + ev.implicit_vertices, ev.particles.size());
  out += buf;
  out += "U GEV MM\nW";
  PutNumber(out, 1.0);
  out += "\nA 0 GenCrossSection";
  PutNumber(out, cross_section);
  PutNumber(out, cross_section * (0.01 + 0.001 * rng.Uniform()));
  out += " -1 -1\nA 0 signal_process_id 111\nA 0 event_scale";
  PutNumber(out, std::hypot(ev.particles[4].px, ev.particles[4].py));
  out += "\n";
  for (const Particle& p : ev.particles) {
    for (const Vertex& v : ev.vertices) {
      if (p.parent == v.id && p.id == ev.particles[v.in.back() - 1].id + 1) {
        std::snprintf(buf, sizeof buf, "V %d 0 [", v.id);
        out += buf;
        for (size_t i = 0; i < v.in.size(); ++i) out += (i ? "," : "") + std::to_string(v.in[i]);
        out += "]\n";
      }
    }
    std::snprintf(buf, sizeof buf, "P %d %d %d", p.id, p.parent, p.pdg);
    out += buf;
    PutNumber(out, p.px);
    PutNumber(out, p.py);
    PutNumber(out, p.pz);
    PutNumber(out, p.e);
    PutNumber(out, p.m);
    out += " " + std::to_string(p.status) + "\n";
  }
}

void WritePxPyPzE(std::string& out, const Event& ev, uint64_t number) {
  char buf[96];
  std::snprintf(buf, sizeof buf, "#event %llu\n", static_cast<unsigned long long>(number));
  out += buf;
  for (const Particle& p : ev.particles) {
    if (p.status != 1) continue;
    std::snprintf(buf, sizeof buf, "%17.10g%17.10g%17.10g%17.10g\n", p.px, p.py, p.pz, p.e);
    out += buf;
  }
  out += "#END\n";
}

void Usage() {
  std::fprintf(stderr,
               "usage: boa-event-text [--format hepmc3|pxpypze] [--events N] [--seed S] [--first K] -o FILE\n"
               "Writes N simulated events (default 1000) numbered from K (default 0). hepmc3: HepMC3 ASCII\n"
               "records (~60 KB an event); pxpypze: final-state px py pz E per event (~6 KB an event).\n");
}

bool ParseNumber(const char* opt, const std::string& v, uint64_t* out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long long n = std::strtoull(v.c_str(), &end, 10);
  if (v.empty() || !end || *end || errno != 0 || v[0] == '-') {
    std::fprintf(stderr, "boa-event-text: %s: '%s' is not a number\n", opt, v.c_str());
    return false;
  }
  *out = n;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t events = 1000, seed = 1, first = 0;
  std::string out_path, format = "hepmc3";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--events" || a == "--seed" || a == "--first" || a == "-o" || a == "--format") && i + 1 < argc) {
      const std::string v = argv[++i];
      if (a == "-o") {
        out_path = v;
      } else if (a == "--format") {
        format = v;
      } else if (!ParseNumber(a.c_str(), v, a == "--events" ? &events : a == "--seed" ? &seed : &first)) {
        return 1;
      }
    } else {
      Usage();
      return a == "-h" || a == "--help" ? 0 : 1;
    }
  }
  if (out_path.empty() || (format != "hepmc3" && format != "pxpypze")) {
    if (!out_path.empty()) std::fprintf(stderr, "boa-event-text: --format: expected hepmc3 or pxpypze, got '%s'\n", format.c_str());
    Usage();
    return 1;
  }
  // Written beside the destination and renamed into place: never a partial file under its name.
  const std::string tmp = out_path + ".tmp" + std::to_string(::getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) {
    std::fprintf(stderr, "boa-event-text: %s: %s\n", tmp.c_str(), std::strerror(errno));
    return 1;
  }
  Rng rng(seed);
  std::string text;
  bool ok = true;
  if (format == "hepmc3") text = "HepMC::Version 3.02.05\nHepMC::Asciiv3-START_EVENT_LISTING\n";
  const double cross_section = 50.0 + 10.0 * rng.Uniform();
  for (uint64_t n = 0; n < events && ok; ++n) {
    const Event ev = Generate(rng);
    if (format == "hepmc3") {
      WriteHepMC3(text, ev, first + n, cross_section, rng);
    } else {
      WritePxPyPzE(text, ev, first + n);
    }
    if (n + 1 == events && format == "hepmc3") text += "HepMC::Asciiv3-END_EVENT_LISTING\n";
    ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
    text.clear();
  }
  if (events == 0 && format == "hepmc3") {
    text += "HepMC::Asciiv3-END_EVENT_LISTING\n";
    ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  }
  ok = (std::fflush(f) == 0) && ok && (::fsync(fileno(f)) == 0);
  if (std::fclose(f) != 0) ok = false;
  if (!ok || std::rename(tmp.c_str(), out_path.c_str()) != 0) {
    std::fprintf(stderr, "boa-event-text: %s: write failed: %s\n", out_path.c_str(), std::strerror(errno));
    std::remove(tmp.c_str());
    return 1;
  }
  return 0;
}
