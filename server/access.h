// Who may call what on boad (docs/security.md): the callers a token file names, their roles,
// and the check each RPC makes before it reads anything else of the request.
#pragma once

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/util/status.h"

namespace boa::server {

// What a caller may do. Each RPC needs one role; `admin` may do everything.
enum class Role : uint8_t { kRead = 1, kWrite = 2, kTrain = 4, kAdmin = 8 };
const char* RoleName(Role r);
// "read", "write", ...; an error naming the valid ones otherwise.
Result<Role> ParseRole(const std::string& name);

// The one calling, as the logs and the per-caller limits name it.
struct Caller {
  std::string name;     // the token's name; "anonymous" when boad has no token file
  std::string peer;     // the connection's address (ipv4:10.0.0.7:51234)
  uint8_t roles = 0;    // Role bits
  bool Has(Role r) const { return (roles & (static_cast<uint8_t>(r) | static_cast<uint8_t>(Role::kAdmin))) != 0; }
  // "read,write", for messages.
  std::string RoleList() const;
};

// A token file's callers. Tokens are kept only as SHA-256 digests: the file gives nothing away,
// and a token is never logged.
//
//   tokens:
//     - name: daq-writer                # who it is, in logs and metrics
//       sha256: 5e884898da28047151...   # of the token (boad token prints both)
//       roles: [read, write]
class TokenTable {
 public:
  // Every problem names the file and the key's path (tokens[2].roles[0]).
  static Result<TokenTable> Load(const std::string& path);
  size_t size() const { return by_digest_.size(); }
  // The entry whose digest is the token's, or nullptr.
  const Caller* Find(const std::string& token) const;

 private:
  std::map<std::string, Caller> by_digest_;  // hex SHA-256 of the token -> name and roles
};

// The check every RPC makes first. Without a token file every caller may do everything
// (boad then listens on loopback only, unless started with --insecure). Reloadable: SIGHUP
// reads the token file again; a file that does not load keeps the running table.
class AccessControl {
 public:
  // `token_file` empty: no tokens required.
  static Result<std::unique_ptr<AccessControl>> Open(const std::string& token_file);
  bool requires_token() const { return !token_file_.empty(); }
  Status Reload();
  // The caller, if it may act in `role` for `method`; UNAUTHENTICATED (no token, unknown token)
  // or PERMISSION_DENIED (not its role) otherwise, with a message that names what to do.
  Result<Caller> Authorize(const grpc::ServerContext& ctx, Role role, const char* method) const;

 private:
  explicit AccessControl(std::string token_file) : token_file_(std::move(token_file)) {}
  const std::string token_file_;
  mutable std::mutex mu_;
  std::shared_ptr<const TokenTable> tokens_;  // Guarded by mu_ (the pointer; the table is immutable)
};

// The bearer token of a call's metadata ("authorization: Bearer TOKEN"), or "".
std::string BearerToken(const grpc::ServerContext& ctx);
// A new random token (256 bits, hex) and its digest as a token file holds it.
struct NewToken {
  std::string token;
  std::string sha256;
};
Result<NewToken> GenerateToken();
std::string TokenDigest(const std::string& token);

// Whether `host` (as written in `listen`: a name, IPv4, or bracketed IPv6) can be reached
// only from this machine.
bool IsLoopbackHost(const std::string& host);

}  // namespace boa::server
