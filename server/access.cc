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
    if (kv.first.as<std::string>() != "tokens") return bad(kv.first.as<std::string>(), "unknown key (expected tokens)");
  }
  const YAML::Node list = root["tokens"];
  if (!list || !list.IsSequence()) return bad("tokens", "expected a list of {name, sha256, roles}");
  TokenTable table;
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
    const YAML::Node roles = e["roles"];
    if (!roles || !roles.IsSequence() || roles.size() == 0) {
      return bad(at + ".roles", "expected a list of roles (read, write, train, admin)");
    }
    for (size_t j = 0; j < roles.size(); ++j) {
      Result<Role> r = ParseRole(roles[j].IsScalar() ? roles[j].as<std::string>() : "");
      if (!r.ok()) return bad(at + ".roles[" + std::to_string(j) + "]", r.status().message());
      c.roles |= static_cast<uint8_t>(*r);
    }
    table.by_digest_[digest] = std::move(c);
  }
  return table;
}

const Caller* TokenTable::Find(const std::string& token) const {
  auto it = by_digest_.find(TokenDigest(token));
  return it == by_digest_.end() ? nullptr : &it->second;
}

Result<std::unique_ptr<AccessControl>> AccessControl::Open(const std::string& token_file) {
  std::unique_ptr<AccessControl> a(new AccessControl(token_file));
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

Result<Caller> AccessControl::Authorize(const grpc::ServerContext& ctx, Role role, const char* method) const {
  Caller c;
  c.peer = ctx.peer();
  if (!requires_token()) {
    c.name = "anonymous";
    c.roles = static_cast<uint8_t>(Role::kAdmin);
    return c;
  }
  std::shared_ptr<const TokenTable> tokens;
  {
    std::lock_guard<std::mutex> l(mu_);
    tokens = tokens_;
  }
  const std::string token = BearerToken(ctx);
  if (token.empty()) {
    return Status::Unauthenticated(std::string(method) +
                                   ": this server requires a token (boa-client --token-file FILE, or BOA_TOKEN)");
  }
  const Caller* known = tokens->Find(token);
  if (known == nullptr) return Status::Unauthenticated(std::string(method) + ": the token is not known to this server");
  c.name = known->name;
  c.roles = known->roles;
  if (!c.Has(role)) {
    return Status::PermissionDenied(std::string(method) + " needs the role " + RoleName(role) + "; " + c.name +
                                    " has " + c.RoleList());
  }
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
