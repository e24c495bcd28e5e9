// A real Prometheus (Debian's `prometheus`, started here with a generated scrape config on
// a free port) scrapes a test boad while it compresses: the target is up, and the raw-bytes
// counter Prometheus stored equals what was sent.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "common/model/model.h"
#include "common/util/io.h"
#include "rpc/remote_client.h"
#include "testkit/boad_process.h"
#include "testkit/http_get.h"
#include "testkit/test_util.h"

namespace boa {
namespace {

// A loopback port free now (Prometheus is told to listen on it next).
int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  close(fd);
  return ntohs(a.sin_port);
}

// The first sample's value in a Prometheus instant-query reply ("" if there is none).
std::string FirstValue(const std::string& json) {
  const size_t v = json.find("\"value\":[");
  if (v == std::string::npos) return "";
  const size_t open = json.find(",\"", v);
  const size_t close = open == std::string::npos ? open : json.find('"', open + 2);
  return close == std::string::npos ? "" : json.substr(open + 2, close - open - 2);
}

class PrometheusProcess {
 public:
  PrometheusProcess(const std::string& dir, const std::string& target, int port) {
    const std::string config = dir + "/prometheus.yml";
    std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                          << "scrape_configs:\n  - job_name: boad\n    static_configs:\n      - targets: ['" << target
                          << "']\n";
    pid_ = fork();
    if (pid_ == 0) {
      const std::string log = dir + "/prometheus.log";
      freopen(log.c_str(), "w", stdout);
      freopen(log.c_str(), "a", stderr);
      execlp("prometheus", "prometheus", ("--config.file=" + config).c_str(), ("--storage.tsdb.path=" + dir + "/data").c_str(),
             ("--web.listen-address=127.0.0.1:" + std::to_string(port)).c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }

 private:
  pid_t pid_ = -1;
};

TEST(Prometheus, ScrapesBoadAndStoresWhatItCounted) {
  ASSERT_EQ(std::system("command -v prometheus >/dev/null"), 0) << "prometheus is not installed (scripts/setup.sh)";
  testing::TempDir dir("prometheus_test");
  const LoadedModel model = testing::MakeModel(16, 1, 5, 4.0f);
  const std::string model_path = dir.path() + "/m.boam";
  ASSERT_TRUE(WriteFileAtomic(model_path, SerializeModel(model.weights, WeightType::kF32, "test"), true).ok());
  testing::Boad boad(BOAD, dir.path() + "/store", {"--metrics-listen", "127.0.0.1:0"});
  ASSERT_FALSE(boad.metrics_address().empty());
  auto client = boad.Connect();
  ASSERT_TRUE(client);
  ASSERT_TRUE(client->UploadModel(model_path, "m", 0).ok());
  auto compress = [&](size_t bytes, uint64_t seed) {
    const std::vector<uint8_t> data = testing::FloatTable(bytes, seed);
    MemorySource src(data);
    CountingSink sink;
    CodecOptions o;
    o.chunk_length = 4096;
    return client->Compress("m", o, &src, &sink, nullptr, nullptr);
  };
  ASSERT_TRUE(compress(50000, 1).ok());  // before the first scrape

  const int port = FreePort();
  ASSERT_GT(port, 0);
  PrometheusProcess prometheus(dir.path(), boad.metrics_address(), port);
  const std::string api = "127.0.0.1:" + std::to_string(port);
  auto query = [&](const std::string& promql) {
    std::string q;
    for (char c : promql) {  // percent-encode everything but the unreserved characters
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-') {
        q += c;
      } else {
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02X", static_cast<unsigned char>(c));
        q += hex;
      }
    }
    return FirstValue(testing::HttpGet(api, "/api/v1/query?query=" + q).body);
  };
  auto wait_for = [&](const std::string& promql, const std::string& want) {
    std::string got;
    for (int i = 0; i < 120 && got != want; ++i) {
      got = query(promql);
      if (got != want) std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return got;
  };
  EXPECT_EQ(wait_for("up{job=\"boad\"}", "1"), "1") << "Prometheus never found the target up";
  ASSERT_TRUE(compress(70000, 2).ok());  // while it scrapes
  EXPECT_EQ(wait_for("sum(boad_raw_bytes_total{op=\"Compress\",model=\"m\"})", "120000"), "120000");
  EXPECT_EQ(wait_for("sum(boad_requests_total{op=\"Compress\",code=\"OK\"})", "2"), "2");
}

}  // namespace
}  // namespace boa
