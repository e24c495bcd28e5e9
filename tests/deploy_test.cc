// deploy/k8s: every manifest parses and the references between them hold — kustomizations
// name files that exist, selectors match the pod's labels, Services, probes and the
// PodMonitor use the container's ports, boad's flags listen on those ports, the grace period
// outlasts preStop plus the drain, the HPA's metric is one boad exports, the PrometheusRule
// carries deploy/prometheus/boad_rules.yml unchanged, and the GPU overlay asks for a GPU.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "server/config.h"
#include "server/metrics.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

namespace fs = std::filesystem;
const std::string kK8s = std::string(BOA_SOURCE_DIR) + "/deploy/k8s";

// Every label of `selector` is on `labels`.
bool Selects(const YAML::Node& selector, const YAML::Node& labels) {
  if (!selector || selector.size() == 0) return false;
  for (const auto& kv : selector) {
    const YAML::Node v = labels[kv.first.as<std::string>()];
    if (!v || v.as<std::string>() != kv.second.as<std::string>()) return false;
  }
  return true;
}

class Deploy : public ::testing::Test {
 protected:
  void SetUp() override {
    const YAML::Node k = YAML::LoadFile(kK8s + "/base/kustomization.yaml");
    for (const auto& r : k["resources"]) {
      const std::string file = kK8s + "/base/" + r.as<std::string>();
      ASSERT_TRUE(fs::exists(file)) << file;
      const YAML::Node doc = YAML::LoadFile(file);
      ASSERT_TRUE(doc["kind"] && doc["metadata"]["name"]) << file;
      by_kind_[doc["kind"].as<std::string>() + "/" + doc["metadata"]["name"].as<std::string>()] = doc;
    }
    deployment_ = by_kind_["Deployment/boad"];
    ASSERT_TRUE(deployment_) << "no Deployment boad";
    pod_ = deployment_["spec"]["template"];
    container_ = pod_["spec"]["containers"][0];
    for (const auto& p : container_["ports"]) ports_[p["name"].as<std::string>()] = p["containerPort"].as<int>();
  }
  // The value of boad's flag --NAME=VALUE in the container's args.
  std::string Arg(const std::string& name) {
    for (const auto& a : container_["args"]) {
      const std::string s = a.as<std::string>();
      if (s.rfind("--" + name + "=", 0) == 0) return s.substr(name.size() + 3);
    }
    return "";
  }

  std::map<std::string, YAML::Node> by_kind_;
  YAML::Node deployment_, pod_, container_;
  std::map<std::string, int> ports_;
};

TEST_F(Deploy, LabelsAndSelectorsMatchThePods) {
  const YAML::Node labels = pod_["metadata"]["labels"];
  EXPECT_TRUE(Selects(deployment_["spec"]["selector"]["matchLabels"], labels));
  EXPECT_TRUE(labels["app.kubernetes.io/name"]);
  for (const char* s : {"Service/boad", "Service/boad-headless"}) {
    ASSERT_TRUE(by_kind_[s]) << s;
    EXPECT_TRUE(Selects(by_kind_[s]["spec"]["selector"], labels)) << s;
  }
  EXPECT_EQ(by_kind_["Service/boad-headless"]["spec"]["clusterIP"].as<std::string>(), "None");
  EXPECT_TRUE(Selects(by_kind_["PodDisruptionBudget/boad"]["spec"]["selector"]["matchLabels"], labels));
  EXPECT_TRUE(Selects(by_kind_["PodMonitor/boad"]["spec"]["selector"]["matchLabels"], labels));
  EXPECT_EQ(by_kind_["HorizontalPodAutoscaler/boad"]["spec"]["scaleTargetRef"]["name"].as<std::string>(), "boad");
}

TEST_F(Deploy, PortsProbesAndFlagsAgree) {
  ASSERT_TRUE(ports_.count("grpc") && ports_.count("metrics"));
  EXPECT_EQ(Arg("listen"), "0.0.0.0:" + std::to_string(ports_["grpc"]));
  EXPECT_EQ(Arg("metrics-listen"), "0.0.0.0:" + std::to_string(ports_["metrics"]));
  for (const char* s : {"Service/boad", "Service/boad-headless"}) {
    for (const auto& p : by_kind_[s]["spec"]["ports"]) {
      EXPECT_TRUE(ports_.count(p["targetPort"].as<std::string>())) << s << " targets " << p["targetPort"];
    }
  }
  for (const auto& e : by_kind_["PodMonitor/boad"]["spec"]["podMetricsEndpoints"]) {
    EXPECT_EQ(e["port"].as<std::string>(), "metrics");
    EXPECT_EQ(e["path"].as<std::string>(), "/metrics");
  }
  const std::map<std::string, std::string> service = {
      {"startupProbe", "boa.v1.Boa"}, {"readinessProbe", "boa.v1.Boa"}, {"livenessProbe", "boad.Liveness"}};
  for (const auto& [probe, name] : service) {
    ASSERT_TRUE(container_[probe]["grpc"]) << probe << " must be a gRPC probe";
    EXPECT_EQ(container_[probe]["grpc"]["port"].as<int>(), ports_["grpc"]) << probe;
    EXPECT_EQ(container_[probe]["grpc"]["service"].as<std::string>(), name) << probe;
  }
  EXPECT_TRUE(container_["resources"]["requests"]["cpu"] && container_["resources"]["requests"]["memory"]);
}

TEST_F(Deploy, ConfigVolumesAndTheDrain) {
  std::map<std::string, YAML::Node> volumes;
  for (const YAML::Node& v : pod_["spec"]["volumes"]) volumes[v["name"].as<std::string>()] = v;
  for (const auto& m : container_["volumeMounts"]) EXPECT_TRUE(volumes.count(m["name"].as<std::string>())) << m["name"];
  const std::string config_map = volumes["config"]["configMap"]["name"].as<std::string>();
  ASSERT_TRUE(by_kind_["ConfigMap/" + config_map]) << config_map;
  EXPECT_TRUE(by_kind_["PersistentVolumeClaim/" + volumes["models"]["persistentVolumeClaim"]["claimName"].as<std::string>()]);
  // The ConfigMap's boad.yaml is one boad accepts.
  testing::TempDir dir("deploy_test");
  const std::string file = dir.path() + "/boad.yaml";
  std::ofstream(file) << by_kind_["ConfigMap/" + config_map]["data"]["boad.yaml"].as<std::string>();
  server::ServerConfig cfg;
  ASSERT_TRUE(cfg.LoadFile(file).ok()) << cfg.LoadFile(file).message();
  // The pods listen on every interface: callers need tokens, from a mounted Secret.
  ASSERT_FALSE(cfg.token_file.empty()) << "boad refuses a network address without tokens";
  bool token_mounted = false;
  for (const auto& m : container_["volumeMounts"]) {
    const std::string at = m["mountPath"].as<std::string>() + "/";
    if (cfg.token_file.rfind(at, 0) == 0 && volumes[m["name"].as<std::string>()]["secret"]) token_mounted = true;
  }
  EXPECT_TRUE(token_mounted) << cfg.token_file << " is not on a mounted Secret";
  // Replicas share the model store: a ReadWriteMany volume that boad knows is shared (or the
  // second pod would not start), and a jobs directory of each pod's own.
  const int most = std::max(deployment_["spec"]["replicas"].as<int>(),
                            by_kind_["HorizontalPodAutoscaler/boad"]["spec"]["maxReplicas"].as<int>());
  EXPECT_GE(by_kind_["HorizontalPodAutoscaler/boad"]["spec"]["minReplicas"].as<int>(), 2) << "one pod is no service";
  if (most > 1) {
    EXPECT_TRUE(cfg.shared_model_dir) << "several replicas on one model store need shared_model_dir: true";
    const YAML::Node claim = by_kind_["PersistentVolumeClaim/" + volumes["models"]["persistentVolumeClaim"]["claimName"].as<std::string>()];
    EXPECT_EQ(claim["spec"]["accessModes"][0].as<std::string>(), "ReadWriteMany");
    EXPECT_TRUE(volumes["jobs"]["emptyDir"]) << "each pod's jobs are its own";
    EXPECT_NE(Arg("jobs-dir"), Arg("model-dir"));
  }
  const YAML::Node pre_stop = container_["lifecycle"]["preStop"]["exec"]["command"];
  ASSERT_TRUE(pre_stop && pre_stop[0].as<std::string>() == "sleep");
  const double grace = pod_["spec"]["terminationGracePeriodSeconds"].as<double>();
  EXPECT_GT(grace, pre_stop[1].as<double>() + cfg.drain_seconds) << "the grace period must outlast preStop and the drain";
}

TEST_F(Deploy, MetricsAndRulesAreBoads) {
  server::Metrics m;
  m.SetStateSource([] { return server::ServerState(); });
  const std::string scrape = m.Scrape();
  for (const auto& metric : by_kind_["HorizontalPodAutoscaler/boad"]["spec"]["metrics"]) {
    const std::string name = metric["pods"]["metric"]["name"].as<std::string>();
    EXPECT_NE(scrape.find("\n" + name + " "), std::string::npos) << name << " is not a metric boad exports";
  }
  const YAML::Node rules = YAML::LoadFile(std::string(BOA_SOURCE_DIR) + "/deploy/prometheus/boad_rules.yml");
  EXPECT_EQ(YAML::Dump(by_kind_["PrometheusRule/boad"]["spec"]["groups"]), YAML::Dump(rules["groups"]))
      << "PrometheusRule boad must carry deploy/prometheus/boad_rules.yml's groups";
}

TEST_F(Deploy, OverlaysBuildOnTheBase) {
  for (const char* overlay : {"cpu", "gpu"}) {
    const std::string dir = kK8s + "/overlays/" + overlay;
    const YAML::Node k = YAML::LoadFile(dir + "/kustomization.yaml");
    ASSERT_EQ(k["resources"][0].as<std::string>(), "../../base") << overlay;
    for (const auto& p : k["patches"]) {
      if (p["path"]) ASSERT_TRUE(fs::exists(dir + "/" + p["path"].as<std::string>())) << overlay;
      EXPECT_EQ(p["target"]["name"].as<std::string>(), "boad");
    }
    EXPECT_EQ(k["images"][0]["name"].as<std::string>(), container_["image"].as<std::string>().substr(0, 4));
  }
  const YAML::Node gpu = YAML::LoadFile(kK8s + "/overlays/gpu/gpu.yaml");
  EXPECT_EQ(gpu["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"].as<int>(), 1);
  EXPECT_EQ(gpu["spec"]["template"]["spec"]["containers"][0]["name"].as<std::string>(), container_["name"].as<std::string>());
  // The GPU overlay runs models on the GPU: its boad gets --devices with cuda:0 first.
  const YAML::Node gpu_k = YAML::LoadFile(kK8s + "/overlays/gpu/kustomization.yaml");
  bool devices = false;
  for (const auto& p : gpu_k["patches"]) {
    if (!p["patch"]) continue;
    const YAML::Node ops = YAML::Load(p["patch"].as<std::string>());
    for (const auto& op : ops) {
      devices = devices || (op["path"].as<std::string>() == "/spec/template/spec/containers/0/args/-" &&
                            op["value"].as<std::string>().rfind("--devices=cuda:0,", 0) == 0);
    }
  }
  EXPECT_TRUE(devices) << "overlays/gpu passes --devices=cuda:0,...";
}

}  // namespace
}  // namespace boa
