// boad as a child process for the tests and the server benchmark (boad-bench): started on a
// free loopback port (read from its first line of output), killed when the object goes away.
#pragma once

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "rpc/remote_client.h"
#include "testkit/http_get.h"
#include "testkit/test_util.h"

namespace boa::testing {

class Boad {
 public:
  // `address_space`: if not 0, boad runs under this RLIMIT_AS (`ulimit -v`), in bytes.
  Boad(const std::string& boad_path, const std::string& model_dir, const std::vector<std::string>& extra = {},
       uint64_t address_space = 0) {
    int fds[2];
    if (pipe(fds) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      if (address_space) {
        rlimit limit{address_space, address_space};
        setrlimit(RLIMIT_AS, &limit);
      }
      dup2(fds[1], 1);
      close(fds[0]);
      // The jobs directory beside the store, unless `extra` or its config names one (never
      // boad's default, relative to the working directory that tests run side by side in).
      // A free loopback port, unless `extra` names the address.
      std::vector<std::string> args = {boad_path, "--model-dir", model_dir, "--log-level", "warn"};
      if (std::find(extra.begin(), extra.end(), "--listen") == extra.end()) args.insert(args.end(), {"--listen", "127.0.0.1:0"});
      const auto config = std::find(extra.begin(), extra.end(), "--config");
      std::string config_text;
      if (config != extra.end() && config + 1 != extra.end()) {
        std::ifstream f(*(config + 1));
        config_text.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
      }
      if (std::find(extra.begin(), extra.end(), "--jobs-dir") == extra.end() &&
          config_text.find("jobs_dir:") == std::string::npos) {
        args.insert(args.end(), {"--jobs-dir", model_dir + ".jobs"});
      }
      args.insert(args.end(), extra.begin(), extra.end());
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(boad_path.c_str(), argv.data());
      _exit(127);
    }
    close(fds[1]);
    const std::string prefix = "boad listening on ";
    const std::string line = ReadLine(fds[0]);
    if (line.rfind(prefix, 0) == 0) address_ = line.substr(prefix.size());
    // With --metrics-listen, the next line names the metrics endpoint.
    if (!address_.empty() && std::find(extra.begin(), extra.end(), "--metrics-listen") != extra.end()) {
      const std::string metrics = ReadLine(fds[0]);
      const std::string mprefix = "boad metrics on http://", suffix = "/metrics";
      if (metrics.rfind(mprefix, 0) == 0 && metrics.size() > mprefix.size() + suffix.size()) {
        metrics_address_ = metrics.substr(mprefix.size(), metrics.size() - mprefix.size() - suffix.size());
      }
    }
    // With --health-listen, the next line names the health port.
    if (!address_.empty() && std::find(extra.begin(), extra.end(), "--health-listen") != extra.end()) {
      const std::string health = ReadLine(fds[0]), hprefix = "boad health on ";
      if (health.rfind(hprefix, 0) == 0) health_address_ = health.substr(hprefix.size());
    }
    close(fds[0]);
  }
  ~Boad() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  const std::string& address() const { return address_; }
  // HOST:PORT of /metrics, when started with --metrics-listen.
  const std::string& metrics_address() const { return metrics_address_; }
  // HOST:PORT of the plaintext health port, when started with --health-listen.
  const std::string& health_address() const { return health_address_; }
  pid_t pid() const { return pid_; }
  // Sends SIGTERM and returns the exit status.
  int Terminate() {
    Signal(SIGTERM);
    return Wait();
  }
  void Signal(int sig) { kill(pid_, sig); }
  // Waits for boad to exit; its exit status (128 + N when killed by signal N).
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    exited_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  // nullptr if boad cannot be reached.
  std::unique_ptr<rpc::RemoteClient> Connect() {
    auto c = rpc::RemoteClient::Connect(address_, 10);
    return c.ok() ? std::move(c).value() : nullptr;
  }

 private:
  static std::string ReadLine(int fd) {
    std::string line;
    char c;
    while (read(fd, &c, 1) == 1 && c != '\n') line += c;
    return line;
  }

  pid_t pid_ = -1;
  bool exited_ = false;
  std::string address_;
  std::string metrics_address_;
  std::string health_address_;
};

// A line of /proc/PID/status ("Threads"; "VmRSS", "VmHWM" in kB), as a number; 0 if absent.
inline uint64_t ProcStatus(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  }
  return 0;
}

// The value of one series in a scrape of boad's /metrics (-1 when it is not there).
inline double MetricSeries(const Boad& b, const std::string& series) {
  const std::string scrape = HttpGet(b.metrics_address(), "/metrics").body;
  const size_t at = scrape.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  return std::stod(scrape.substr(at + series.size() + 2));
}

// Polls `done` every 20 ms for up to `seconds`.
inline bool WaitUntil(const std::function<bool()>& done, double seconds = 10) {
  const auto t0 = std::chrono::steady_clock::now();
  while (!done()) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::duration<double>(seconds)) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

}  // namespace boa::testing
