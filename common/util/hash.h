// Content hashes: SHA-256 (model ids) and XXH3-64 (container checksums).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace boa {

using Sha256Digest = std::array<uint8_t, 32>;

Sha256Digest Sha256(const uint8_t* data, size_t n);
std::string HexString(const uint8_t* data, size_t n);

// Incremental SHA-256.
class Sha256Hasher {
 public:
  Sha256Hasher();
  ~Sha256Hasher();
  Sha256Hasher(const Sha256Hasher&) = delete;
  Sha256Hasher& operator=(const Sha256Hasher&) = delete;
  void Update(const uint8_t* data, size_t n);
  Sha256Digest Digest() const;

 private:
  void* ctx_;
};

// Incremental XXH3-64 (seed 0).
class Xxh3Hasher {
 public:
  Xxh3Hasher();
  ~Xxh3Hasher();
  Xxh3Hasher(const Xxh3Hasher&) = delete;
  Xxh3Hasher& operator=(const Xxh3Hasher&) = delete;
  void Update(const uint8_t* data, size_t n);
  uint64_t Digest() const;

 private:
  void* state_;
};

uint64_t Xxh3(const uint8_t* data, size_t n);

}  // namespace boa
