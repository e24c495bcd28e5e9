// Token files, roles and the per-RPC check (see access.h).
#include "server/access.h"

#include <arpa/inet.h>
#include <sys/random.h>
#include <yaml-cpp/yaml.h>

#include <cctype>

#include "common/util/hash.h"

namespace boa::server {

namespace {

constexpr Role kRoles[] = {Role::kRead, Role::kWrite, Role::kTrain, Role::kAdmin};

bool IsHexDigest(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c)) || std::isupper(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kRead: return "read";
    case Role::kWrite: return "write";
    case Role::kTrain: return "train";
    case Role::kAdmin: return "admin";
  }
  return "?";
}

Result<Role> ParseRole(const std::string& name) {
  for (Role r : kRoles) {
    if (name == RoleName(r)) return r;
  }
  return Status::InvalidArgument("'" + name + "' is not a role (read, write, train, admin)");
}

std::string Caller::RoleList() const {
  std::string s;
  for (Role r : kRoles) {
    if (roles & static_cast<uint8_t>(r)) s += (s.empty() ? "" : ",") + std::string(RoleName(r));
  }
  return s.empty() ? "none" : s;
}

std::string TokenDigest(const std::string& token) {
  const Sha256Digest d = Sha256(reinterpret_cast<const uint8_t*>(token.data()), token.size());
  return HexString(d.data(), d.size());
}

Result<NewToken> GenerateToken() {
  uint8_t raw[32];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError("cannot read random bytes for a token");
    }
    got += static_cast<size_t>(n);
  }
  NewToken t;
  t.token = "boa_" + HexString(raw, sizeof raw);
  t.sha256 = TokenDigest(t.token);
  return t;
}

Result<TokenTable> TokenTable::Load(const std::string& path) {
  try {
    return Parse(path);
  } catch (const YAML::Exception& e) {  // a value of the wrong kind where a key or string belongs
    return Status::InvalidArgument("token file " + path + ": " + e.what());
  }
}

Result<TokenTable> TokenTable::Parse(const std::string& path) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::BadFile&) {
    return Status::NotFound("token file " + path + ": cannot be read");
  } catch (const YAML::Exception& e) {
    return Status::InvalidArgument("token file " + path + ": " + e.what());
  }
  const auto bad = [&](const std::string& key, const std::string& what) {
    return Status::InvalidArgument("token file " + path + ": " + key + ": " + what);
  };
  if (!root.IsMap()) return bad("(top)", "expected a map with the key tokens");
  for (const auto& kv : root) {
    const std::string k = kv.first.as<std::string>();
    if (k != "tokens" && k != "certificates") return bad(k, "unknown key (expected tokens, certificates)");
  }
  const YAML::Node list = root["tokens"] ? root["tokens"] : YAML::Node(YAML::NodeType::Sequence);
  if (!list.IsSequence()) return bad("tokens", "expected a list of {name, sha256, roles}");
  TokenTable table;
  const auto parse_roles = [&](const YAML::Node& roles, const std::string& at, Caller* c) -> Status {
    if (!roles || !roles.IsSequence() || roles.size() == 0) {
      return bad(at + ".roles", "expected a list of roles (read, write, train, admin)");
    }
    for (size_t j = 0; j < roles.size(); ++j) {
      Result<Role> r = ParseRole(roles[j].IsScalar() ? roles[j].as<std::string>() : "");
      if (!r.ok()) return bad(at + ".roles[" + std::to_string(j) + "]", r.status().message());
      c->roles |= static_cast<uint8_t>(*r);
    }
    return Status::Ok();
  };
  std::map<std::string, bool> names;
  for (size_t i = 0; i < list.size(); ++i) {
    const std::string at = "tokens[" + std::to_string(i) + "]";
    const YAML::Node e = list[i];
    if (!e.IsMap()) return bad(at, "expected a map with name, sha256 and roles");
    for (const auto& kv : e) {
      const std::string k = kv.first.as<std::string>();
      if (k != "name" && k != "sha256" && k != "roles") return bad(at + "." + k, "unknown key (expected name, sha256, roles)");
    }
    Caller c;
    if (!e["name"] || !e["name"].IsScalar() || e["name"].as<std::string>().empty()) return bad(at + ".name", "missing");
    c.name = e["name"].as<std::string>();
    for (char ch : c.name) {
      if (!std::isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '-' && ch != '.' && ch != '@') {
        return bad(at + ".name", "'" + c.name + "' may use only letters, digits, '_', '-', '.', '@'");
      }
    }
    if (c.name.size() > 64) return bad(at + ".name", "longer than 64 characters");
    if (names[c.name]) return bad(at + ".name", "'" + c.name + "' is named twice");
    names[c.name] = true;
    if (!e["sha256"] || !e["sha256"].IsScalar() || !IsHexDigest(e["sha256"].as<std::string>())) {
      return bad(at + ".sha256", "expected 64 lower-case hex digits (the SHA-256 of the token: boad token)");
    }
    const std::string digest = e["sha256"].as<std::string>();
    if (table.by_digest_.count(digest)) return bad(at + ".sha256", "the same token is given twice");
    BOA_RETURN_IF_ERROR(parse_roles(e["roles"], at, &c));
    table.by_digest_[digest] = std::move(c);
  }
  const YAML::Node certs = root["certificates"] ? root["certificates"] : YAML::Node(YAML::NodeType::Sequence);
  if (!certs.IsSequence()) return bad("certificates", "expected a list of {identity, roles}");
  for (size_t i = 0; i < certs.size(); ++i) {
    const std::string at = "certificates[" + std::to_string(i) + "]";
    const YAML::Node e = certs[i];
    if (!e.IsMap()) return bad(at, "expected a map with identity and roles");
    for (const auto& kv : e) {
      const std::string k = kv.first.as<std::string>();
      if (k != "identity" && k != "roles") return bad(at + "." + k, "unknown key (expected identity, roles)");
    }
    Caller c;
    if (!e["identity"] || !e["identity"].IsScalar() || e["identity"].as<std::string>().empty()) {
      return bad(at + ".identity", "missing (a certificate's CN or subject alternative name, or *)");
    }
    c.name = e["identity"].as<std::string>();
    if (c.name.size() > 255) return bad(at + ".identity", "longer than 255 characters");
    if (table.by_identity_.count(c.name)) return bad(at + ".identity", "'" + c.name + "' is named twice");
    BOA_RETURN_IF_ERROR(parse_roles(e["roles"], at, &c));
    table.by_identity_[c.name] = std::move(c);
  }
  return table;
}

const Caller* TokenTable::FindCertificate(const std::string& identity) const {
  auto it = by_identity_.find(identity);
  if (it == by_identity_.end()) it = by_identity_.find("*");
  return it == by_identity_.end() ? nullptr : &it->second;
}

const Caller* TokenTable::Find(const std::string& token) const {
  auto it = by_digest_.find(TokenDigest(token));
  return it == by_digest_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<AccessControl>> AccessControl::Open(const std::string& token_file, Transport transport) {
  std::unique_ptr<AccessControl> a(new AccessControl(token_file, transport));
  if (a->requires_token()) BOA_RETURN_IF_ERROR(a->Reload());
  return a;
}

Status AccessControl::Reload() {
  if (!requires_token()) return Status::Ok();
  BOA_ASSIGN_OR_RETURN(TokenTable t, TokenTable::Load(token_file_));
  auto table = std::make_shared<const TokenTable>(std::move(t));
  std::lock_guard<std::mutex> l(mu_);
  tokens_ = std::move(table);
  return Status::Ok();
}

std::string BearerToken(const grpc::ServerContext& ctx) {
  const auto& md = ctx.client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) return "";
  const std::string value(it->second.data(), it->second.size());
  const std::string prefix = "Bearer ";
  if (value.size() <= prefix.size() || value.compare(0, prefix.size(), prefix) != 0) return "";
  return value.substr(prefix.size());
}

namespace {

// The first value of an auth context property, or "".
std::string Property(const grpc::AuthContext& auth, const char* name) {
  const std::vector<grpc::string_ref> values = auth.FindPropertyValues(name);
  return values.empty() ? std::string() : std::string(values[0].data(), values[0].size());
}

}  // namespace

Result<Caller> AccessControl::Authorize(const grpc::ServerContext& ctx, Role role, const char* method) const {
  Caller c;
  c.peer = ctx.peer();
  const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
  const std::string security = auth ? Property(*auth, GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) : "";
  if (transport_.tls && security != GRPC_TLS_TRANSPORT_SECURITY_TYPE && security != GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    return Status::Unauthenticated(std::string(method) + ": this port serves only health checks; boad takes calls over TLS");
  }
  // A verified client certificate's identity (gRPC checked it against the client CA).
  std::string identity;
  if (transport_.client_certs && auth && auth->IsPeerAuthenticated()) {
    identity = Property(*auth, GRPC_X509_CN_PROPERTY_NAME);
    if (identity.empty()) identity = Property(*auth, GRPC_X509_SAN_PROPERTY_NAME);
  }
  if (!authenticates()) {
    c.name = "anonymous";
    c.roles = static_cast<uint8_t>(Role::kAdmin);
    c.key = c.peer.substr(0, c.peer.rfind(':'));  // ipv4:10.0.0.7 (one key per host, whatever its ports)
    return c;
  }
  std::shared_ptr<const TokenTable> tokens;
  {
    std::lock_guard<std::mutex> l(mu_);
    tokens = tokens_;
  }
  const std::string token = BearerToken(ctx);
  if (!token.empty()) {
    const Caller* known = tokens ? tokens->Find(token) : nullptr;
    if (known == nullptr) return Status::Unauthenticated(std::string(method) + ": the token is not known to this server");
    c.name = known->name;
    c.roles = known->roles;
  } else if (!identity.empty()) {
    c.name = identity;
    if (!tokens) {
      c.roles = static_cast<uint8_t>(Role::kAdmin);  // mutual TLS alone: the CA decides who may call
    } else if (const Caller* entry = tokens->FindCertificate(identity)) {
      c.roles = entry->roles;
    } else {
      return Status::PermissionDenied(std::string(method) + ": the client certificate " + identity +
                                      " has no roles in the token file (certificates:)");
    }
  } else {
    return Status::Unauthenticated(std::string(method) +
                                   ": this server requires a token (boa-client --token-file FILE, or BOA_TOKEN)");
  }
  if (!c.Has(role)) {
    return Status::PermissionDenied(std::string(method) + " needs the role " + RoleName(role) + "; " + c.name +
                                    " has " + c.RoleList());
  }
  c.key = c.name;
  return c;
}

bool IsLoopbackHost(const std::string& host) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (inet_pton(AF_INET6, h.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
  return false;
}

}  // namespace boa::server
