// The interactive experiment creator (see new_experiment.h).
#include "client/new_experiment.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>

#include <cmath>
#include <functional>
#include <optional>
#include <sstream>

#include "client/experiment.h"
#include "common/util/io.h"

namespace boa::client {

namespace {

class Asker {
 public:
  Asker(std::istream& in, std::ostream& out, std::ostream& err) : in_(in), out_(out), err_(err) {}

  // Asks until `accept` takes the answer (an empty answer means the default). Returns
  // nullopt at the end of input.
  std::optional<std::string> Ask(const std::string& question, const std::string& def,
                                 const std::function<std::string(const std::string&)>& check) {
    for (int tries = 0; tries < 20; ++tries) {
      out_ << question << (def.empty() ? "" : " [" + def + "]") << ": " << std::flush;
      std::string line;
      if (!std::getline(in_, line)) {
        out_ << "\n";
        return std::nullopt;
      }
      while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
      size_t first = line.find_first_not_of(' ');
      line = first == std::string::npos ? "" : line.substr(first);
      std::string value = line.empty() ? def : line;
      std::string problem = check(value);
      if (problem.empty()) return value;
      err_ << "  " << problem << "\n";
    }
    return std::nullopt;
  }

 private:
  std::istream& in_;
  std::ostream& out_;
  std::ostream& err_;
};

std::string Integer(const std::string& v, long long lo, long long hi, long long* out) {
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    if (used == v.size() && x >= lo && x <= hi) {
      *out = x;
      return "";
    }
  } catch (...) {
  }
  return "expected a whole number from " + std::to_string(lo) + " to " + std::to_string(hi);
}

std::string Positive(const std::string& v, double* out) {
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    if (used == v.size() && x > 0 && std::isfinite(x)) {
      *out = x;
      return "";
    }
  } catch (...) {
  }
  return "expected a positive number, e.g. 5e-4";
}

std::string Absolute(const std::string& path) {
  if (path.empty() || path[0] == '/') return path;
  char buf[4096];
  if (!::getcwd(buf, sizeof buf)) return path;
  return std::string(buf) + "/" + path;
}

}  // namespace

Status NewExperiment(std::istream& in, std::ostream& out, std::ostream& err, const std::string& root) {
  Asker ask(in, out, err);
  ExperimentConfig c;
  auto end_of_input = [] {
    return Status::InvalidArgument("new-experiment: input ended before every question was answered; nothing written");
  };
  std::string path;
  auto name = ask.Ask("Experiment name", "", [&](const std::string& v) -> std::string {
    if (v.empty()) return "a name is needed";
    for (char ch : v)
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-') return "use letters, digits, '_' and '-' only";
    path = root + "/experiments/" + v + "/" + v + ".yaml";
    if (PathExists(path)) return path + " already exists: choose another name";
    return "";
  });
  if (!name) return end_of_input();
  c.name = *name;
  auto data = ask.Ask("Path to the dataset file", "", [](const std::string& v) -> std::string {
    if (v.empty()) return "a dataset is needed";
    if (!PathExists(v)) return v + ": no such file";
    return "";
  });
  if (!data) return end_of_input();
  c.file_path = Absolute(*data);
  auto yes_no = [](const std::string& v) -> std::string {
    return v == "y" || v == "n" || v == "yes" || v == "no" ? "" : "answer y or n";
  };
  auto progress = ask.Ask("Show progress bars? (y/n)", "y", yes_no);
  if (!progress) return end_of_input();
  c.progress = (*progress)[0] == 'y';
  auto device = ask.Ask("Device (cpu/cuda)", "cpu",
                        [](const std::string& v) -> std::string { return v == "cpu" || v == "cuda" ? "" : "answer cpu or cuda"; });
  if (!device) return end_of_input();
  c.device = *device;
  auto precision = ask.Ask("Precision (fp32/fp16/fp8)", "fp32", [](const std::string& v) -> std::string {
    return v == "fp32" || v == "fp16" || v == "fp8" || v == "bf16" ? "" : "answer fp32, fp16, bf16 or fp8";
  });
  if (!precision) return end_of_input();
  c.precision = *precision;
  long long n = 0;
  double x = 0;
  struct IntQ {
    const char* q;
    const char* def;
    long long lo, hi;
    std::function<void(long long)> set;
  };
  std::vector<IntQ> ints = {
      {"Sequence length (bytes per training window)", "32768", 2, 1ll << 30, [&](long long v) { c.seq_len = v; }},
      {"Batch size", "3", 1, 1 << 20, [&](long long v) { c.batch_size = v; }},
      {"Model width d_model", "256", 1, 4096, [&](long long v) { c.d_model = static_cast<uint32_t>(v); }},
      {"Number of layers", "2", 1, 64, [&](long long v) { c.num_layers = static_cast<uint32_t>(v); }},
  };
  for (auto& q : ints) {
    auto a = ask.Ask(q.q, q.def, [&](const std::string& v) { return Integer(v, q.lo, q.hi, &n); });
    if (!a) return end_of_input();
    q.set(n);
  }
  auto lr = ask.Ask("Learning rate", "5e-4", [&](const std::string& v) { return Positive(v, &x); });
  if (!lr) return end_of_input();
  c.lr = x;
  auto epochs = ask.Ask("Epochs", "10", [&](const std::string& v) { return Integer(v, 1, 1000000, &n); });
  if (!epochs) return end_of_input();
  c.epochs = static_cast<int>(n);
  auto chunks = ask.Ask("Chunks count for compression (0: boa's 64 KiB chunks)", "1000",
                        [&](const std::string& v) { return Integer(v, 0, 1ll << 40, &n); });
  if (!chunks) return end_of_input();
  c.chunks_count = static_cast<uint64_t>(n);
  auto to_compress = ask.Ask("File to compress (empty: the dataset)", "", [](const std::string& v) -> std::string {
    return v.empty() || PathExists(v) ? "" : v + ": no such file";
  });
  if (!to_compress) return end_of_input();
  c.file_to_compress = Absolute(*to_compress);
  auto splits = ask.Ask("Train/validation/test splits", "0.8,0.1,0.1", [&](const std::string& v) -> std::string {
    std::vector<double> s;
    std::stringstream ss(v);
    std::string part;
    while (std::getline(ss, part, ',')) {
      try {
        size_t used = 0;
        s.push_back(std::stod(part, &used));
        if (used != part.size()) return "expected three numbers like 0.8,0.1,0.1";
      } catch (...) {
        return "expected three numbers like 0.8,0.1,0.1";
      }
    }
    if (s.size() != 3) return "expected three numbers like 0.8,0.1,0.1";
    if (std::fabs(s[0] + s[1] + s[2] - 1) > 1e-6) return "the fractions must sum to 1";
    for (double f : s)
      if (f < 0) return "fractions must not be negative";
    c.splits = s;
    return "";
  });
  if (!splits) return end_of_input();
  std::string dir = root + "/experiments/" + c.name;
  for (const std::string& d : {root + "/experiments", dir}) {
    if (::mkdir(d.c_str(), 0777) != 0 && errno != EEXIST) return Status::IoError(d + ": " + ErrnoMessage(errno));
  }
  BOA_RETURN_IF_ERROR(SaveExperiment(c, path));
  out << "wrote " << path << "\nrun it with: boa-client run --config " << c.name << " --show-timings\n";
  return Status::Ok();
}

}  // namespace boa::client
