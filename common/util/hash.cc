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
