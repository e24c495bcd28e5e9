// Experiment configuration files (see experiment.h).
#include "client/experiment.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "common/util/io.h"

namespace boa::client {

std::string ExperimentConfig::Resolve(const std::string& p) const {
  if (p.empty() || p[0] == '/') return p;
  return dir.empty() ? p : dir + "/" + p;
}

std::string ExperimentConfig::ModelOutput() const {
  return Resolve(name + "_final_model_" + precision + ".boam");
}

train::TrainOptions TrainingOf(const ExperimentConfig& c) {
  train::TrainOptions t;
  t.files = {c.Resolve(c.file_path)};
  t.model = ModelConfig::Default(c.d_model, c.num_layers);
  t.seed = c.seed;
  t.seq_len = c.seq_len;
  t.batch_size = c.batch_size;
  t.lr = c.lr;
  t.weight_decay = c.weight_decay;
  t.epochs = c.epochs;
  t.max_seconds = c.max_seconds;
  t.max_bytes = c.max_bytes;
  t.splits = c.splits;
  t.threads = c.threads;
  t.precision = c.precision;
  t.patience = c.patience;
  t.output = c.ModelOutput();
  return t;
}

std::string ExperimentPath(const std::string& s) {
  auto ends = [&](const char* suf) {
    std::string x = suf;
    return s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
  };
  if (s.find('/') != std::string::npos || ends(".yaml") || ends(".yml")) return s;
  return "experiments/" + s + "/" + s + ".yaml";
}

namespace {

class Reader {
 public:
  explicit Reader(std::string file) : file_(std::move(file)) {}

  Status Error(const std::string& key, const std::string& what) const {
    return Status::InvalidArgument(file_ + ": " + key + ": " + what);
  }

  template <typename T>
  Status Scalar(const YAML::Node& node, const std::string& key, T* out, const char* expected) {
    if (!node.IsScalar()) return Error(key, std::string("expected ") + expected);
    try {
      *out = node.as<T>();
    } catch (const YAML::Exception&) {
      return Error(key, std::string("expected ") + expected + ", got '" + node.Scalar() + "'");
    }
    return Status::Ok();
  }

  // Checks a mapping's keys against the known ones; unknown ones become warnings.
  void Known(const YAML::Node& map, const std::string& prefix, const std::set<std::string>& known,
             std::vector<std::string>* warnings) {
    for (const auto& kv : map) {
      std::string k = kv.first.as<std::string>();
      if (!known.count(k)) warnings->push_back(file_ + ": unknown key '" + prefix + k + "' (ignored)");
    }
  }

 private:
  std::string file_;
};

}  // namespace

namespace {
Result<ExperimentConfig> ParseExperiment(const std::string& name_or_path);
}  // namespace

Result<ExperimentConfig> LoadExperiment(const std::string& name_or_path) {
  // A value of the wrong kind where a key or a string belongs (fuzzing found a map as a key).
  try {
    return ParseExperiment(name_or_path);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(ExperimentPath(name_or_path) + ": " + e.what());
  }
}

namespace {

Result<ExperimentConfig> ParseExperiment(const std::string& name_or_path) {
  ExperimentConfig c;
  c.path = ExperimentPath(name_or_path);
  if (!PathExists(c.path)) {
    return Status::NotFound(c.path + ": no such experiment config" +
                            (c.path != name_or_path ? " (from --config " + name_or_path + ")" : ""));
  }
  size_t slash = c.path.rfind('/');
  c.dir = slash == std::string::npos ? "" : c.path.substr(0, slash);
  YAML::Node root;
  try {
    root = YAML::LoadFile(c.path);
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument(c.path + ": not valid YAML: " + e.what());
  }
  if (!root.IsMap()) return Status::InvalidArgument(c.path + ": expected a mapping of keys");
  Reader r(c.path);
  r.Known(root, "", {"name", "file_path", "progress", "device", "precision", "model_path", "dataloader", "model",
                     "training", "compression", "splits"},
          &c.warnings);
  if (root["name"]) BOA_RETURN_IF_ERROR(r.Scalar(root["name"], "name", &c.name, "a string"));
  if (root["file_path"]) BOA_RETURN_IF_ERROR(r.Scalar(root["file_path"], "file_path", &c.file_path, "a string"));
  if (root["progress"]) BOA_RETURN_IF_ERROR(r.Scalar(root["progress"], "progress", &c.progress, "true or false"));
  if (root["device"]) BOA_RETURN_IF_ERROR(r.Scalar(root["device"], "device", &c.device, "cpu, cuda or auto"));
  if (root["precision"]) BOA_RETURN_IF_ERROR(r.Scalar(root["precision"], "precision", &c.precision, "a string"));
  if (root["model_path"] && !root["model_path"].IsNull())
    BOA_RETURN_IF_ERROR(r.Scalar(root["model_path"], "model_path", &c.model_path, "a string"));
  auto section = [&](const char* key, const std::set<std::string>& known) -> Result<YAML::Node> {
    YAML::Node n = root[key];
    if (!n || n.IsNull()) return YAML::Node();
    if (!n.IsMap()) return r.Error(key, "expected a mapping");
    r.Known(n, std::string(key) + ".", known, &c.warnings);
    return n;
  };
  BOA_ASSIGN_OR_RETURN(YAML::Node dl, section("dataloader", {"seq_len", "batch_size"}));
  if (dl["seq_len"]) BOA_RETURN_IF_ERROR(r.Scalar(dl["seq_len"], "dataloader.seq_len", &c.seq_len, "an integer"));
  if (dl["batch_size"]) BOA_RETURN_IF_ERROR(r.Scalar(dl["batch_size"], "dataloader.batch_size", &c.batch_size, "an integer"));
  BOA_ASSIGN_OR_RETURN(YAML::Node m, section("model", {"d_model", "num_layers"}));
  if (m["d_model"]) BOA_RETURN_IF_ERROR(r.Scalar(m["d_model"], "model.d_model", &c.d_model, "an integer"));
  if (m["num_layers"]) BOA_RETURN_IF_ERROR(r.Scalar(m["num_layers"], "model.num_layers", &c.num_layers, "an integer"));
  BOA_ASSIGN_OR_RETURN(YAML::Node t, section("training", {"lr", "epochs", "max_seconds", "weight_decay", "seed", "threads", "patience", "max_bytes"}));
  if (t["lr"]) BOA_RETURN_IF_ERROR(r.Scalar(t["lr"], "training.lr", &c.lr, "a number"));
  if (t["epochs"]) BOA_RETURN_IF_ERROR(r.Scalar(t["epochs"], "training.epochs", &c.epochs, "an integer"));
  if (t["max_seconds"]) BOA_RETURN_IF_ERROR(r.Scalar(t["max_seconds"], "training.max_seconds", &c.max_seconds, "a number"));
  if (t["weight_decay"]) BOA_RETURN_IF_ERROR(r.Scalar(t["weight_decay"], "training.weight_decay", &c.weight_decay, "a number"));
  if (t["seed"]) BOA_RETURN_IF_ERROR(r.Scalar(t["seed"], "training.seed", &c.seed, "an integer"));
  if (t["threads"]) BOA_RETURN_IF_ERROR(r.Scalar(t["threads"], "training.threads", &c.threads, "an integer"));
  if (t["max_bytes"]) BOA_RETURN_IF_ERROR(r.Scalar(t["max_bytes"], "training.max_bytes", &c.max_bytes, "an integer"));
  if (t["patience"]) BOA_RETURN_IF_ERROR(r.Scalar(t["patience"], "training.patience", &c.patience, "an integer"));
  BOA_ASSIGN_OR_RETURN(YAML::Node cp, section("compression", {"chunks_count", "file_to_compress", "chunk_size"}));
  if (cp["chunks_count"]) BOA_RETURN_IF_ERROR(r.Scalar(cp["chunks_count"], "compression.chunks_count", &c.chunks_count, "an integer"));
  if (cp["chunk_size"]) BOA_RETURN_IF_ERROR(r.Scalar(cp["chunk_size"], "compression.chunk_size", &c.chunk_size, "an integer"));
  if (cp["file_to_compress"] && !cp["file_to_compress"].IsNull())
    BOA_RETURN_IF_ERROR(r.Scalar(cp["file_to_compress"], "compression.file_to_compress", &c.file_to_compress, "a string"));
  if (YAML::Node sp = root["splits"]) {
    c.splits.clear();
    if (sp.IsSequence()) {
      for (size_t i = 0; i < sp.size(); ++i) {
        double v;
        BOA_RETURN_IF_ERROR(r.Scalar(sp[i], "splits[" + std::to_string(i) + "]", &v, "a number"));
        c.splits.push_back(v);
      }
    } else if (sp.IsScalar()) {  // "0.8,0.1,0.1", as the interactive creator of the original tool wrote
      std::stringstream ss(sp.Scalar());
      std::string part;
      while (std::getline(ss, part, ',')) {
        try {
          c.splits.push_back(std::stod(part));
        } catch (...) {
          return r.Error("splits", "expected numbers like [0.8, 0.1, 0.1], got '" + sp.Scalar() + "'");
        }
      }
    } else {
      return r.Error("splits", "expected a list like [0.8, 0.1, 0.1]");
    }
    if (c.splits.size() != 3) return r.Error("splits", "expected 3 fractions [train, val, test]");
    double sum = c.splits[0] + c.splits[1] + c.splits[2];
    if (std::fabs(sum - 1.0) > 1e-6) {
      std::ostringstream msg;
      msg << "fractions sum to " << sum << ", expected 1";
      return r.Error("splits", msg.str());
    }
  }
  if (c.name.empty()) return r.Error("name", "missing (every experiment needs a name)");
  if (c.device != "cpu" && c.device != "cuda" && c.device != "auto") {
    return r.Error("device", "expected cpu, cuda or auto, got '" + c.device + "'");
  }
  if (c.seq_len < 2) return r.Error("dataloader.seq_len", "must be >= 2");
  if (c.batch_size < 1) return r.Error("dataloader.batch_size", "must be >= 1");
  if (c.epochs < 1) return r.Error("training.epochs", "must be >= 1");
  if (!(c.lr > 0)) return r.Error("training.lr", "must be > 0");
  return c;
}

}  // namespace

Status SaveExperiment(const ExperimentConfig& c, const std::string& path) {
  YAML::Emitter out;
  out.SetDoublePrecision(10);
  out << YAML::BeginMap;
  out << YAML::Key << "name" << YAML::Value << c.name;
  out << YAML::Key << "file_path" << YAML::Value << c.file_path;
  out << YAML::Key << "progress" << YAML::Value << c.progress;
  out << YAML::Key << "device" << YAML::Value << c.device;
  out << YAML::Key << "precision" << YAML::Value << c.precision;
  if (!c.model_path.empty()) out << YAML::Key << "model_path" << YAML::Value << c.model_path;
  out << YAML::Key << "dataloader" << YAML::Value << YAML::BeginMap << YAML::Key << "seq_len" << YAML::Value
      << c.seq_len << YAML::Key << "batch_size" << YAML::Value << c.batch_size << YAML::EndMap;
  out << YAML::Key << "model" << YAML::Value << YAML::BeginMap << YAML::Key << "d_model" << YAML::Value << c.d_model
      << YAML::Key << "num_layers" << YAML::Value << c.num_layers << YAML::EndMap;
  out << YAML::Key << "training" << YAML::Value << YAML::BeginMap << YAML::Key << "lr" << YAML::Value << c.lr
      << YAML::Key << "epochs" << YAML::Value << c.epochs << YAML::EndMap;
  out << YAML::Key << "compression" << YAML::Value << YAML::BeginMap << YAML::Key << "chunks_count" << YAML::Value
      << c.chunks_count << YAML::Key << "file_to_compress" << YAML::Value << c.file_to_compress << YAML::EndMap;
  out << YAML::Key << "splits" << YAML::Value << YAML::Flow << c.splits;
  out << YAML::EndMap;
  std::string text = std::string(out.c_str()) + "\n";
  return WriteFileAtomic(path, std::vector<uint8_t>(text.begin(), text.end()), false);
}

}  // namespace boa::client
