// Hash functions over OpenSSL (SHA-256) and libxxhash (XXH3).
#include "common/util/hash.h"

#include <openssl/evp.h>
#include <xxhash.h>

#include <cstdlib>

namespace boa {

Sha256Digest Sha256(const uint8_t* data, size_t n) {
  Sha256Digest out{};
  unsigned int len = 0;
  if (EVP_Digest(data, n, out.data(), &len, EVP_sha256(), nullptr) != 1 || len != out.size()) {
    std::abort();  // only on a broken OpenSSL installation
  }
  return out;
}

std::string HexString(const uint8_t* data, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s(2 * n, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = kDigits[data[i] >> 4];
    s[2 * i + 1] = kDigits[data[i] & 15];
  }
  return s;
}

Sha256Hasher::Sha256Hasher() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) std::abort();
}

Sha256Hasher::~Sha256Hasher() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_)); }

void Sha256Hasher::Update(const uint8_t* data, size_t n) {
  if (n && EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n) != 1) std::abort();
}

Sha256Digest Sha256Hasher::Digest() const {
  // Finalising a copy leaves this hasher usable.
  EVP_MD_CTX* copy = EVP_MD_CTX_new();
  Sha256Digest out{};
  unsigned int len = 0;
  if (!copy || EVP_MD_CTX_copy_ex(copy, static_cast<const EVP_MD_CTX*>(ctx_)) != 1 ||
      EVP_DigestFinal_ex(copy, out.data(), &len) != 1 || len != out.size()) {
    std::abort();
  }
  EVP_MD_CTX_free(copy);
  return out;
}

Xxh3Hasher::Xxh3Hasher() : state_(XXH3_createState()) {
  if (!state_) std::abort();
  XXH3_64bits_reset(static_cast<XXH3_state_t*>(state_));
}

Xxh3Hasher::~Xxh3Hasher() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }

void Xxh3Hasher::Update(const uint8_t* data, size_t n) {
  if (n) XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, n);
}

uint64_t Xxh3Hasher::Digest() const {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

uint64_t Xxh3(const uint8_t* data, size_t n) { return XXH3_64bits(data, n); }

}  // namespace boa
