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
  std::string key;      // what per-caller limits count by: the name, or without credentials the peer's host
  uint8_t roles = 0;    // Role bits
  bool Has(Role r) const { return (roles & (static_cast<uint8_t>(r) | static_cast<uint8_t>(Role::kAdmin))) != 0; }
  // "read,write", for messages.
  std::string RoleList() const;
};

// A token file's callers. Tokens are kept only as SHA-256 digests: the file gives nothing away,
// and a token is never logged. With mutual TLS, `certificates` gives client certificates
// (their CN, else their first subject alternative name; "*": any the CA signed) roles.
//
//   tokens:
//     - name: daq-writer                # who it is, in logs and metrics
//       sha256: 5e884898da28047151...   # of the token (boad token prints both)
//       roles: [read, write]
//   certificates:
//     - identity: daq01.cms.example.org
//       roles: [read, write]
class TokenTable {
 public:
  // Every problem names the file and the key's path (tokens[2].roles[0]).
  static Result<TokenTable> Load(const std::string& path);
  size_t size() const { return by_digest_.size(); }
  // The entry whose digest is the token's, or nullptr.
  const Caller* Find(const std::string& token) const;
  // The entry for a client certificate's identity (or "*"), or nullptr.
  const Caller* FindCertificate(const std::string& identity) const;

 private:
  static Result<TokenTable> Parse(const std::string& path);
  std::map<std::string, Caller> by_digest_;  // hex SHA-256 of the token -> name and roles
  std::map<std::string, Caller> by_identity_;  // certificate identity -> its roles
};

// How boad's gRPC port is secured (docs/security.md).
struct Transport {
  bool tls = false;          // the main port speaks TLS (calls over plaintext, i.e. the health port, are refused)
  bool client_certs = false;  // mutual TLS: every caller presents a certificate the client CA signed
};

// The check every RPC makes first. A caller is known by its token, else (mutual TLS) by its
// certificate; without a token file and without client certificates every caller may do
// everything (boad then listens on loopback only, unless started with --insecure).
// Reloadable: SIGHUP reads the token file again; a file that does not load keeps the running
// table.
class AccessControl {
 public:
  // `token_file` empty: no tokens.
  static Result<std::unique_ptr<AccessControl>> Open(const std::string& token_file, Transport transport = {});
  bool requires_token() const { return !token_file_.empty(); }
  // Whether callers must prove who they are (a token file, or client certificates).
  bool authenticates() const { return requires_token() || transport_.client_certs; }
  Status Reload();
  // The caller, if it may act in `role` for `method`; UNAUTHENTICATED (no token, unknown token)
  // or PERMISSION_DENIED (not its role) otherwise, with a message that names what to do.
  Result<Caller> Authorize(const grpc::ServerContext& ctx, Role role, const char* method) const;

 private:
  AccessControl(std::string token_file, Transport transport)
      : token_file_(std::move(token_file)), transport_(transport) {}
  const std::string token_file_;
  const Transport transport_;
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
