// Model file reading, writing and validation; random initialisation.
#include "common/model/model.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

#include "common/engine/detmath.h"
#include "common/util/bytes.h"
#include "common/util/io.h"

namespace boa {

namespace {

constexpr char kMagic[8] = {'B', 'O', 'A', 'M', 'O', 'D', 'E', 'L'};
// Version 2 adds a flags byte (bit 0: the match model mixes into the network's tables); a
// model without flags is written as version 1, byte for byte as before (same id).
constexpr uint32_t kFormatVersion = 2;
constexpr uint32_t kOldestFormatVersion = 1;
constexpr uint8_t kFlagMatchModel = 1;
constexpr uint8_t kFlagDerivedFields = 2;

Status CheckFormatVersion(uint32_t version) {
  if (version < kOldestFormatVersion || version > kFormatVersion) {
    return Status::DataLoss("unsupported model file version " + std::to_string(version) + " (this build reads versions " +
                            std::to_string(kOldestFormatVersion) + " to " + std::to_string(kFormatVersion) + ")");
  }
  return Status::Ok();
}
constexpr uint32_t kMaxHeaderBytes = 1u << 20;
constexpr uint32_t kMaxMetadataBytes = 64u << 10;
constexpr uint64_t kMaxModelFileBytes = 8ull << 30;
constexpr size_t kAlign = 64;

size_t AlignUp(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

Status Corrupt(const std::string& what) { return Status::DataLoss("invalid model file: " + what); }

}  // namespace

ModelConfig ModelConfig::Default(uint32_t d_model, uint32_t n_layers) {
  ModelConfig c;
  c.d_model = d_model;
  c.n_layers = n_layers;
  c.dt_rank = (d_model + 15) / 16;
  return c;
}

Status ModelConfig::Validate() const {
  auto bad = [](const char* field, uint32_t v, const char* expected) {
    return Status::InvalidArgument(std::string("model ") + field + " = " + std::to_string(v) +
                                   ", expected " + expected);
  };
  if (d_model < 1 || d_model > 4096) return bad("d_model", d_model, "1..4096");
  if (n_layers < 1 || n_layers > 64) return bad("n_layers", n_layers, "1..64");
  if (d_state < 1 || d_state > 256) return bad("d_state", d_state, "1..256");
  if (d_conv < 1 || d_conv > 16) return bad("d_conv", d_conv, "1..16");
  if (expand < 1 || expand > 8) return bad("expand", expand, "1..8");
  if (dt_rank < 1 || dt_rank > d_model) return bad("dt_rank", dt_rank, "1..d_model");
  if (vocab != 256) return bad("vocab", vocab, "256");
  return Status::Ok();
}

uint64_t ModelConfig::ParameterCount() const {
  uint64_t n = 0;
  for (const Tensor& t : ExpectedTensorShapes(*this)) n += t.numel();
  return n;
}

uint64_t ModelConfig::MacsPerByte() const {
  uint64_t D = d_model, E = d_inner(), R = dt_rank, S = d_state;
  uint64_t per_layer = 2 * E * D + E * d_conv + (R + 2 * S) * E + E * R + 2 * E * S + D * E +
                       8 * D * D;
  return n_layers * per_layer + D * D + 256 * D;
}

bool ModelConfig::operator==(const ModelConfig& o) const {
  return d_model == o.d_model && n_layers == o.n_layers && d_state == o.d_state &&
         d_conv == o.d_conv && expand == o.expand && dt_rank == o.dt_rank && vocab == o.vocab;
}

bool HasModelFileSuffix(const std::string& name) {
  const std::string suffix = kModelFileSuffix;
  return name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* WeightTypeName(WeightType t) { return t == WeightType::kF16 ? "f16" : "f32"; }

Result<WeightType> ParseWeightType(const std::string& name) {
  for (WeightType t : {WeightType::kF32, WeightType::kF16}) {
    if (name == WeightTypeName(t)) return t;
  }
  return Status::InvalidArgument("unknown weight type '" + name + "' (expected f32 or f16)");
}

uint64_t Tensor::numel() const {
  uint64_t n = 1;
  for (uint32_t d : shape) n *= d;
  return n;
}

const Tensor* ModelWeights::Find(const std::string& name) const {
  for (const Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Tensor* ModelWeights::Find(const std::string& name) {
  for (Tensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const Tensor& ModelWeights::Get(const std::string& name) const {
  const Tensor* t = Find(name);
  if (!t || t->data.size() != t->numel()) std::abort();
  return *t;
}

std::vector<Tensor> ExpectedTensorShapes(const ModelConfig& c) {
  uint32_t D = c.d_model, E = c.d_inner(), R = c.dt_rank, S = c.d_state;
  std::vector<Tensor> out;
  auto add = [&](std::string name, std::vector<uint32_t> shape) {
    out.push_back(Tensor{std::move(name), std::move(shape), {}});
  };
  add("embedding.weight", {256, D});
  for (uint32_t i = 0; i < c.n_layers; ++i) {
    std::string p = "blocks." + std::to_string(i) + ".";
    add(p + "ln1.weight", {D});
    add(p + "ln1.bias", {D});
    add(p + "mamba.in_proj.weight", {2 * E, D});
    add(p + "mamba.conv1d.weight", {E, 1, c.d_conv});
    add(p + "mamba.conv1d.bias", {E});
    add(p + "mamba.x_proj.weight", {R + 2 * S, E});
    add(p + "mamba.dt_proj.weight", {E, R});
    add(p + "mamba.dt_proj.bias", {E});
    add(p + "mamba.A_log", {E, S});
    add(p + "mamba.D", {E});
    add(p + "mamba.out_proj.weight", {D, E});
    add(p + "ln2.weight", {D});
    add(p + "ln2.bias", {D});
    add(p + "ff.0.weight", {4 * D, D});
    add(p + "ff.0.bias", {4 * D});
    add(p + "ff.2.weight", {D, 4 * D});
    add(p + "ff.2.bias", {D});
  }
  add("head.0.weight", {D, D});
  add("head.0.bias", {D});
  add("head.2.weight", {256, D});
  add("head.2.bias", {256});
  return out;
}

uint16_t FloatToHalf(float f) {
  uint32_t x = detmath::FloatToBits(f);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  int32_t e = static_cast<int32_t>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow: inf
  if (e <= 0) {                                                // subnormal half or zero
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into exponent: fine
  return static_cast<uint16_t>(sign | half);
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal half: normalise
      int e = -1;
      do {
        mant <<= 1;
        ++e;
      } while (!(mant & 0x400u));
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  return detmath::BitsToFloat(bits);
}

std::string ShortId(const Sha256Digest& id) { return HexString(id.data(), 8); }

std::vector<uint8_t> SerializeModel(const ModelWeights& w, WeightType type,
                                    const std::string& metadata) {
  const ModelConfig& c = w.config;
  size_t elem = type == WeightType::kF16 ? 2 : 4;
  ByteWriter h;
  h.U32(c.d_model);
  h.U32(c.n_layers);
  h.U32(c.d_state);
  h.U32(c.d_conv);
  h.U32(c.expand);
  h.U32(c.dt_rank);
  h.U32(c.vocab);
  h.U8(static_cast<uint8_t>(type));
  h.U8((c.match_model ? kFlagMatchModel : 0) | (c.derived_fields ? kFlagDerivedFields : 0));
  h.U8(0);
  h.U8(0);
  h.U32(static_cast<uint32_t>(w.tensors.size()));
  uint64_t offset = 0;
  for (const Tensor& t : w.tensors) {
    h.U16(static_cast<uint16_t>(t.name.size()));
    h.Bytes(t.name);
    h.U8(static_cast<uint8_t>(t.shape.size()));
    for (uint32_t d : t.shape) h.U32(d);
    h.U64(offset);
    offset = AlignUp(offset + t.numel() * elem);
  }
  h.U32(static_cast<uint32_t>(metadata.size()));
  h.Bytes(metadata);

  ByteWriter f;
  f.Bytes(reinterpret_cast<const uint8_t*>(kMagic), 8);
  f.U32(c.match_model || c.derived_fields ? 2 : 1);
  f.U32(static_cast<uint32_t>(h.size()));
  f.Bytes(h.data().data(), h.size());
  std::vector<uint8_t>& out = f.data();
  out.resize(AlignUp(out.size()), 0);
  size_t data_start = out.size();
  out.resize(data_start + offset, 0);
  uint64_t pos = 0;
  for (const Tensor& t : w.tensors) {
    uint8_t* p = out.data() + data_start + pos;
    for (size_t i = 0; i < t.data.size(); ++i) {
      if (type == WeightType::kF16) {
        uint16_t v = FloatToHalf(t.data[i]);
        p[2 * i] = static_cast<uint8_t>(v);
        p[2 * i + 1] = static_cast<uint8_t>(v >> 8);
      } else {
        PutU32LE(p + 4 * i, detmath::FloatToBits(t.data[i]));
      }
    }
    pos = AlignUp(pos + t.numel() * elem);
  }
  uint64_t sum = Xxh3(out.data(), out.size());
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(sum >> (8 * i)));
  return out;
}

namespace {

// The fixed fields after the magic, version and header length (16 bytes), as ModelHead reads them.
Status ReadHeadFields(ByteReader& h, uint32_t version, ModelHead* head) {
  ModelConfig& c = head->config;
  c.d_model = h.U32();
  c.n_layers = h.U32();
  c.d_state = h.U32();
  c.d_conv = h.U32();
  c.expand = h.U32();
  c.dt_rank = h.U32();
  c.vocab = h.U32();
  uint8_t type = h.U8();
  const uint8_t flags = h.U8();
  h.Bytes(2);
  head->n_tensors = h.U32();
  if (!h.ok()) return Corrupt("header truncated");
  if (version >= 2) {  // version 1 had no flags (the byte was written as zero, never read)
    if (flags & ~(kFlagMatchModel | kFlagDerivedFields)) {
      return Corrupt("unknown flags " + std::to_string(flags) + " (bit 0 = match model, bit 1 = derived-field models)");
    }
    if ((flags & kFlagDerivedFields) && !(flags & kFlagMatchModel)) {
      return Corrupt("flags " + std::to_string(flags) + ": the derived-field models (bit 1) mix only after the match model (bit 0)");
    }
    c.match_model = flags & kFlagMatchModel;
    c.derived_fields = flags & kFlagDerivedFields;
  }
  Status valid = c.Validate();
  if (!valid.ok()) return Corrupt(valid.message());
  if (type != 1 && type != 2) return Corrupt("weight type " + std::to_string(type) + " unknown (1 = f32, 2 = f16)");
  head->type = static_cast<WeightType>(type);
  if (head->n_tensors != ExpectedTensorShapes(c).size()) {
    return Corrupt("has " + std::to_string(head->n_tensors) + " tensors, the architecture needs " +
                   std::to_string(ExpectedTensorShapes(c).size()));
  }
  return Status::Ok();
}

}  // namespace

Result<ModelHead> ReadModelHead(const uint8_t* p, size_t n) {
  ModelHead head;
  if (n < 16) {
    head.need = 16;
    return head;
  }
  if (std::memcmp(p, kMagic, 8) != 0) return Corrupt("not a boa model file (bad magic)");
  ByteReader top(p, 16);
  top.Bytes(8);
  const uint32_t version = top.U32();
  BOA_RETURN_IF_ERROR(CheckFormatVersion(version));
  head.header_bytes = top.U32();
  if (head.header_bytes > kMaxHeaderBytes) return Corrupt("header length " + std::to_string(head.header_bytes) + " out of range");
  if (n < 16 + static_cast<size_t>(head.header_bytes)) {
    head.need = 16 + head.header_bytes;
    return head;
  }
  ByteReader h(p + 16, head.header_bytes);
  BOA_RETURN_IF_ERROR(ReadHeadFields(h, version, &head));
  const size_t elem = head.type == WeightType::kF16 ? 2 : 4;
  uint64_t data = 0;
  for (const Tensor& t : ExpectedTensorShapes(head.config)) data = AlignUp(data + t.numel() * elem);
  head.file_bytes = AlignUp(16 + head.header_bytes) + data + 8;
  return head;
}

Result<LoadedModel> ParseModelFile(const std::vector<uint8_t>& bytes) {
  if (bytes.size() < 16 + 8 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return Corrupt("not a boa model file (bad magic)");
  }
  if (bytes.size() > kMaxModelFileBytes) return Corrupt("file larger than 8 GiB");
  ByteReader top(bytes.data(), bytes.size());
  top.Bytes(8);
  const uint32_t version = top.U32();
  BOA_RETURN_IF_ERROR(CheckFormatVersion(version));
  // Checksum first: everything after it may then be trusted not to be random damage.
  size_t body = bytes.size() - 8;
  ByteReader tail(bytes.data() + body, 8);
  if (tail.U64() != Xxh3(bytes.data(), body)) return Corrupt("checksum mismatch (file is damaged)");

  uint32_t header_bytes = top.U32();
  if (header_bytes > kMaxHeaderBytes || header_bytes > body - 16) {
    return Corrupt("header length " + std::to_string(header_bytes) + " out of range");
  }
  ByteReader h(bytes.data() + 16, header_bytes);
  LoadedModel m;
  ModelHead head;
  BOA_RETURN_IF_ERROR(ReadHeadFields(h, version, &head));
  m.weights.config = head.config;
  const ModelConfig& c = m.weights.config;
  m.stored_type = head.type;
  const uint32_t n_tensors = head.n_tensors;
  size_t elem = head.type == WeightType::kF16 ? 2 : 4;

  std::vector<Tensor> expected = ExpectedTensorShapes(c);
  size_t data_start = AlignUp(16 + header_bytes);
  if (data_start > body) return Corrupt("data section missing");
  uint64_t data_bytes = body - data_start;
  for (uint32_t i = 0; i < n_tensors; ++i) {
    Tensor& want = expected[i];
    uint16_t name_len = h.U16();
    const uint8_t* name = h.Bytes(name_len);
    uint8_t ndim = h.U8();
    if (!h.ok()) return Corrupt("tensor table truncated");
    std::string got_name(reinterpret_cast<const char*>(name), name_len);
    if (got_name != want.name) {
      return Corrupt("tensor " + std::to_string(i) + " is '" + got_name + "', expected '" +
                     want.name + "'");
    }
    std::vector<uint32_t> shape(ndim);
    for (auto& d : shape) d = h.U32();
    uint64_t offset = h.U64();
    if (!h.ok()) return Corrupt("tensor table truncated");
    if (shape != want.shape) {
      std::string s, e;
      for (uint32_t d : shape) s += (s.empty() ? "" : ",") + std::to_string(d);
      for (uint32_t d : want.shape) e += (e.empty() ? "" : ",") + std::to_string(d);
      return Corrupt("tensor '" + want.name + "' has shape [" + s + "], expected [" + e + "]");
    }
    uint64_t nbytes = want.numel() * elem;
    if (offset > data_bytes || nbytes > data_bytes - offset) {
      return Corrupt("tensor '" + want.name + "' lies outside the file");
    }
    const uint8_t* p = bytes.data() + data_start + offset;
    want.data.resize(want.numel());
    for (size_t j = 0; j < want.data.size(); ++j) {
      float v;
      if (elem == 2) {
        v = HalfToFloat(static_cast<uint16_t>(p[2 * j] | (p[2 * j + 1] << 8)));
      } else {
        uint32_t u = static_cast<uint32_t>(p[4 * j]) | static_cast<uint32_t>(p[4 * j + 1]) << 8 |
                     static_cast<uint32_t>(p[4 * j + 2]) << 16 |
                     static_cast<uint32_t>(p[4 * j + 3]) << 24;
        v = detmath::BitsToFloat(u);
      }
      if (!std::isfinite(v)) {
        return Corrupt("tensor '" + want.name + "' element " + std::to_string(j) +
                       " is not finite");
      }
      want.data[j] = v;
    }
  }
  uint32_t meta_len = h.U32();
  if (!h.ok() || meta_len > kMaxMetadataBytes || meta_len > h.remaining()) {
    return Corrupt("metadata length out of range");
  }
  const uint8_t* meta = h.Bytes(meta_len);
  m.metadata.assign(reinterpret_cast<const char*>(meta), meta_len);
  if (h.remaining() != 0) return Corrupt("trailing bytes in header");
  m.weights.tensors = std::move(expected);
  m.id = Sha256(bytes.data(), bytes.size());
  m.file_bytes = bytes.size();
  return m;
}

Result<LoadedModel> LoadModelFile(const std::string& path) {
  BOA_ASSIGN_OR_RETURN(auto bytes, ReadFile(path, kMaxModelFileBytes));
  Result<LoadedModel> m = ParseModelFile(bytes);
  if (!m.ok()) return m.status().WithContext(path);
  return m;
}

namespace {

// xoshiro256** seeded by splitmix64: integer-only, so identical everywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) {
    for (auto& s : s_) {
      seed += 0x9e3779b97f4a7c15ull;
      uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      s = z ^ (z >> 31);
    }
  }
  uint64_t Next() {
    uint64_t r = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return r;
  }
  // Uniform in [-1, 1) on a grid of 2^-23 (exact conversion).
  float Symmetric() { return static_cast<float>(static_cast<int32_t>(Next() >> 40) - (1 << 23)) * 0x1p-23f; }
  // Uniform in [0, 1).
  float Unit() { return static_cast<float>(Next() >> 40) * 0x1p-24f; }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace

ModelWeights InitRandomModel(const ModelConfig& c, uint64_t seed) {
  ModelWeights w;
  w.config = c;
  w.tensors = ExpectedTensorShapes(c);
  Rng rng(seed);
  const float D = static_cast<float>(c.d_model), E = static_cast<float>(c.d_inner());
  auto uniform = [&](Tensor& t, float bound) {
    t.data.resize(t.numel());
    for (float& v : t.data) v = rng.Symmetric() * bound;
  };
  auto fill = [&](Tensor& t, float value) { t.data.assign(t.numel(), value); };
  auto inv_sqrt = [](float fan_in) { return 1.0f / std::sqrt(fan_in); };
  const float log_dt_min = detmath::Log(0.001f), log_dt_max = detmath::Log(0.1f);
  for (Tensor& t : w.tensors) {
    const std::string& n = t.name;
    auto ends = [&](const char* s) {
      size_t l = std::strlen(s);
      return n.size() >= l && n.compare(n.size() - l, l, s) == 0;
    };
    if (n == "embedding.weight") {
      uniform(t, std::sqrt(3.0f));  // unit variance, like N(0, 1)
    } else if (ends("ln1.weight") || ends("ln2.weight") || ends("mamba.D")) {
      fill(t, 1.0f);
    } else if (ends("ln1.bias") || ends("ln2.bias")) {
      fill(t, 0.0f);
    } else if (ends("mamba.in_proj.weight") || ends("ff.0.weight") || ends("ff.0.bias") ||
               ends("head.0.weight") || ends("head.0.bias") || ends("head.2.weight") ||
               ends("head.2.bias")) {
      uniform(t, inv_sqrt(D));
    } else if (ends("conv1d.weight") || ends("conv1d.bias")) {
      uniform(t, inv_sqrt(static_cast<float>(c.d_conv)));
    } else if (ends("x_proj.weight") || ends("out_proj.weight")) {
      uniform(t, inv_sqrt(E));
    } else if (ends("dt_proj.weight")) {
      uniform(t, inv_sqrt(static_cast<float>(c.dt_rank)));
    } else if (ends("dt_proj.bias")) {
      // Mamba: dt ~ log-uniform in [0.001, 0.1]; the bias is its inverse softplus.
      t.data.resize(t.numel());
      for (float& v : t.data) {
        float dt = detmath::Exp(rng.Unit() * (log_dt_max - log_dt_min) + log_dt_min);
        v = detmath::Log(detmath::Exp(dt) - 1.0f);
      }
    } else if (ends("A_log")) {
      t.data.resize(t.numel());
      for (size_t i = 0; i < t.data.size(); ++i)
        t.data[i] = detmath::Log(static_cast<float>(i % c.d_state + 1));
    } else if (ends("ff.2.weight") || ends("ff.2.bias")) {
      uniform(t, inv_sqrt(4 * D));
    } else {
      uniform(t, inv_sqrt(D));
    }
  }
  return w;
}

}  // namespace boa
