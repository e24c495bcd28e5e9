// boa-client: the command-line interface. Parses the command line (git-style global
// options, zstd's mode flags and bare file names), runs the one command it names, and turns
// that command's Status into the exit code. The commands live in client/*_command(s).cc;
// compress, decompress and verify go to boad (--server, $BOA_SERVER, localhost:50051)
// unless --local or a model file runs the codec in this process.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <map>
#include <new>
#include <string>
#include <vector>

#include "client/commands.h"
#include "common/util/io.h"

namespace boa::client {
namespace {

// Every option name of `app` and its subcommands (-T, --threads), and whether it takes a
// value: read from the parser itself, so the command line is normalised by the same rules.
void CollectOptions(const CLI::App& app, std::map<std::string, bool>* takes_value) {
  for (const CLI::Option* o : app.get_options()) {
    const bool value = o->get_expected_min() > 0;
    for (const std::string& n : o->get_snames()) (*takes_value)["-" + n] |= value;
    for (const std::string& n : o->get_lnames()) (*takes_value)["--" + n] |= value;
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) CollectOptions(*sub, takes_value);
}

// Brings a command line into the form the parser takes, `COMMAND [OPTIONS] [FILES]`:
// - options before the command are moved after it (git style: `boa-client --local -T 1
//   compress f.bin`), since an option placed there may belong to the command;
// - zstd's mode flags (`mode_flags`: -d decompress, -t verify, ...) pick the command, and a
//   command line that starts with a file compresses (`boa-client f.bin`); a file named like
//   a command is given after `--` or as `./compress`.
std::vector<std::string> NormalizeCommandLine(const CLI::App& app, const std::map<std::string, std::string>& mode_flags,
                                              std::vector<std::string> args) {
  std::map<std::string, bool> takes_value;
  CollectOptions(app, &takes_value);
  std::vector<std::string> leading;
  std::string mode;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help" || a == "-V" || a == "--version") return args;
    if (a == "--" || a == "-" || a.empty() || a[0] != '-') break;  // the first positional
    if (auto m = mode_flags.find(a); m != mode_flags.end()) {
      mode = m->second;
      continue;
    }
    leading.push_back(a);
    auto t = takes_value.find(a);  // "--opt=value" and "-T1" carry their value already
    if (t != takes_value.end() && t->second && i + 1 < args.size()) leading.push_back(args[++i]);
  }
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i), args.end());
  std::vector<std::string> out;
  auto is_command = [&](const std::string& name) {
    return !app.get_subcommands([&](const CLI::App* sub) { return sub->check_name(name); }).empty();
  };
  if (mode.empty() && !rest.empty() && is_command(rest[0])) {
    out.push_back(rest[0]);
    rest.erase(rest.begin());
  } else if (!mode.empty() || !rest.empty() || (!leading.empty() && !IsTerminal(0))) {
    out.push_back(mode.empty() ? "compress" : mode);  // zstd: files (or piped data) compress
  } else {
    return args;  // no command at all: the parser says so
  }
  out.insert(out.end(), leading.begin(), leading.end());
  out.insert(out.end(), rest.begin(), rest.end());
  return out;
}

int Main(int argc, char** argv) {
  CLI::App app{"boa: lossless compression of physics data with the BOA neural network", "boa-client"};
  app.set_version_flag("-V,--version", "boa-client 0.1.0 (.boa format 2)");
  app.require_subcommand(1);
  app.fallthrough();  // global flags may follow the subcommand
  GlobalOptions g;
  app.add_flag("--local", g.local, "Work in this process, never on boad (-m is then a model file)");
  app.add_option("--server", g.server, "boad address HOST:PORT (default $BOA_SERVER, else localhost:50051)");
  app.add_option("--token-file", g.token_file, "File whose first line is the token boad asks for (default $BOA_TOKEN)");
  app.add_flag("--tls", g.tls.enabled, "Connect to boad with TLS, checked against the system's CAs (on with any --tls-*)");
  app.add_option("--tls-ca", g.tls.ca, "CA certificates (PEM) that sign boad's certificate (default $BOA_TLS_CA)");
  app.add_option("--tls-cert", g.tls.cert, "This client's certificate (PEM), for mutual TLS (default $BOA_TLS_CERT)");
  app.add_option("--tls-key", g.tls.key, "Its private key (PEM) (default $BOA_TLS_KEY)");
  app.add_option("--tls-server-name", g.tls.server_name,
                 "The name boad's certificate must carry, when --server names it otherwise (default $BOA_TLS_SERVER_NAME)");
  app.add_option("--timeout", g.timeout, "Give up on a server request after this many seconds (default: none)");
  app.add_flag("-q,--quiet", g.quiet, "Print nothing but errors");
  app.add_flag("-v,--verbose", g.verbose, "Print more detail");
  app.add_flag("--progress", g.progress, "Show progress even when stderr is not a terminal");
  app.add_flag("--no-progress", g.no_progress, "Never show progress");
  app.add_option("--backend", g.backend, "Kernel backend: auto, scalar or avx2 (output is identical)");

  CommandTable table(&app);
  AddFileCommands(&table);
  AddInfoCommand(&table);
  AddEvalCommand(&table);
  AddModelCommands(&table);
  AddTrainCommand(&table);
  AddBenchCommand(&table);
  AddExperimentCommands(&table);
  AddServerCommands(&table);

  try {
    std::vector<std::string> args =
        NormalizeCommandLine(app, table.ModeFlags(), std::vector<std::string>(argv + 1, argv + argc));
    std::reverse(args.begin(), args.end());  // CLI11 takes them last first
    app.parse(args);
  } catch (const CLI::Success& ex) {
    return app.exit(ex);
  } catch (const CLI::ParseError& ex) {
    if (ex.get_exit_code() == 0) return app.exit(ex);
    PrintError(Status::InvalidArgument(ex.what()));
    std::fprintf(stderr, "Run 'boa-client --help' for usage.\n");
    return 1;
  }
  Command* command = table.Parsed();
  if (command == nullptr) {  // unreachable: the parser requires a command
    PrintError(Status::InvalidArgument("no command given"));
    return 1;
  }
  Status status = command->Run(g);
  if (!status.ok()) PrintError(status);
  return command->ExitCode(status);
}

}  // namespace
}  // namespace boa::client

int main(int argc, char** argv) {
  boa::RemoveTemporariesOnSignal();
  try {
    return boa::client::Main(argc, argv);
  } catch (const std::bad_alloc&) {  // unwinding has removed every temporary output
    std::fprintf(stderr, "boa-client: out of memory\n");
    return 1;
  }
}
