// PyTorch checkpoint import: zip reader, restricted unpickler, state_dict -> ModelWeights.
#include "common/model/checkpoint.h"

#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "common/util/bytes.h"

namespace boa {

namespace {

Status Bad(const std::string& what) { return Status::DataLoss("not a usable PyTorch checkpoint: " + what); }

// ---- zip (stored entries only, as torch.save writes them) ----

uint32_t Crc32(const uint8_t* p, uint64_t n) {
  static uint32_t table[256];
  static bool init = [] {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      table[i] = c;
    }
    return true;
  }();
  (void)init;
  uint32_t c = 0xffffffffu;
  for (uint64_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

struct ZipEntry {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

Result<std::map<std::string, ZipEntry>> ReadZip(const std::vector<uint8_t>& f) {
  if (f.size() < 22) return Bad("too short for a zip file");
  size_t eocd = std::string::npos;
  for (size_t i = f.size() - 22 + 1; i-- > 0 && f.size() - i <= 22 + 65535;) {
    if (f[i] == 0x50 && f[i + 1] == 0x4b && f[i + 2] == 0x05 && f[i + 3] == 0x06) {
      eocd = i;
      break;
    }
  }
  if (eocd == std::string::npos) return Bad("no zip directory (torch.save writes zip files since PyTorch 1.6)");
  ByteReader e(f.data() + eocd, f.size() - eocd);
  e.Bytes(10);
  uint16_t count = e.U16();
  uint32_t dir_size = e.U32(), dir_offset = e.U32();
  if (!e.ok() || dir_offset == 0xffffffffu || count == 0xffff) return Bad("zip64 archives are not supported");
  if (static_cast<uint64_t>(dir_offset) + dir_size > eocd) return Bad("zip directory out of range");
  ByteReader d(f.data() + dir_offset, dir_size);
  std::map<std::string, ZipEntry> out;
  for (uint16_t i = 0; i < count; ++i) {
    if (d.U32() != 0x02014b50) return Bad("corrupt zip directory");
    d.Bytes(6);
    uint16_t method = d.U16();
    d.Bytes(4);
    uint32_t crc = d.U32();
    uint32_t csize = d.U32(), usize = d.U32();
    uint16_t name_len = d.U16(), extra_len = d.U16(), comment_len = d.U16();
    d.Bytes(8);
    uint32_t local = d.U32();
    const uint8_t* name = d.Bytes(name_len);
    d.Bytes(extra_len + comment_len);
    if (!d.ok()) return Bad("corrupt zip directory");
    std::string n(reinterpret_cast<const char*>(name), name_len);
    if (method != 0) return Bad("zip entry '" + n + "' is compressed (torch.save stores entries uncompressed)");
    if (csize != usize || csize == 0xffffffffu) return Bad("zip entry '" + n + "' has inconsistent sizes");
    if (static_cast<uint64_t>(local) + 30 > f.size()) return Bad("zip entry '" + n + "' out of range");
    ByteReader l(f.data() + local, 30);
    if (l.U32() != 0x04034b50) return Bad("corrupt zip entry '" + n + "'");
    l.Bytes(22);
    uint16_t lname = l.U16(), lextra = l.U16();
    uint64_t start = static_cast<uint64_t>(local) + 30 + lname + lextra;
    if (start > f.size() || csize > f.size() - start) return Bad("zip entry '" + n + "' out of range");
    if (Crc32(f.data() + start, csize) != crc) return Bad("zip entry '" + n + "' is damaged (CRC mismatch)");
    out[n] = ZipEntry{f.data() + start, csize};
  }
  return out;
}

// ---- restricted unpickler ----

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum Kind { kNone, kBool, kInt, kFloat, kString, kTuple, kList, kDict, kGlobal, kStorage, kTensor, kMark } kind = kNone;
  int64_t i = 0;
  double f = 0;
  std::string s;                // string; global "module.name"; storage key; storage dtype
  std::vector<ValuePtr> items;  // tuple/list items; dict: key, value, key, value...
  // tensor
  ValuePtr storage;
  int64_t offset = 0;
  std::vector<int64_t> size, stride;
  int64_t numel = 0;  // storage
};

ValuePtr Make(Value::Kind k) {
  auto v = std::make_shared<Value>();
  v->kind = k;
  return v;
}

const std::set<std::string>& AllowedGlobals() {
  static const std::set<std::string> g = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2",
                                          "torch.FloatStorage",      "torch.HalfStorage",
                                          "torch.BFloat16Storage",   "torch.DoubleStorage"};
  return g;
}

class Unpickler {
 public:
  Unpickler(const uint8_t* p, size_t n) : r_(p, n), n_(n) {}

  Result<ValuePtr> Run() {
    constexpr size_t kMaxStack = 1 << 20, kMaxMemo = 1 << 22;
    for (;;) {
      if (stack_.size() > kMaxStack || memo_.size() > kMaxMemo) return Bad("pickle too large");
      uint8_t op = r_.U8();
      if (!r_.ok()) return Bad("pickle truncated");
      switch (op) {
        case 0x80: r_.U8(); break;  // PROTO
        case '.': {                 // STOP
          if (stack_.size() != 1) return Bad("malformed pickle (stack at STOP)");
          return stack_.back();
        }
        case '(': stack_.push_back(Make(Value::kMark)); break;
        case ')': stack_.push_back(Make(Value::kTuple)); break;
        case ']': stack_.push_back(Make(Value::kList)); break;
        case '}': stack_.push_back(Make(Value::kDict)); break;
        case 'N': stack_.push_back(Make(Value::kNone)); break;
        case 0x88:
        case 0x89: {
          auto v = Make(Value::kBool);
          v->i = op == 0x88;
          stack_.push_back(v);
          break;
        }
        case 'K': PushInt(r_.U8()); break;
        case 'M': PushInt(r_.U16()); break;
        case 'J': PushInt(static_cast<int32_t>(r_.U32())); break;
        case 0x8a: {  // LONG1
          uint8_t len = r_.U8();
          if (len > 8) return Bad("integer too large");
          const uint8_t* b = r_.Bytes(len);
          if (!b) return Bad("pickle truncated");
          uint64_t u = 0;
          for (int k = 0; k < len; ++k) u |= static_cast<uint64_t>(b[k]) << (8 * k);
          if (len > 0 && len < 8 && (b[len - 1] & 0x80)) u |= ~uint64_t{0} << (8 * len);
          PushInt(static_cast<int64_t>(u));
          break;
        }
        case 'G': {  // BINFLOAT, big-endian
          const uint8_t* b = r_.Bytes(8);
          if (!b) return Bad("pickle truncated");
          uint64_t u = 0;
          for (int k = 0; k < 8; ++k) u = (u << 8) | b[k];
          auto v = Make(Value::kFloat);
          std::memcpy(&v->f, &u, 8);
          stack_.push_back(v);
          break;
        }
        case 'X':
        case 0x8c:
        case 'U':
        case 'T': {  // BINUNICODE, SHORT_BINUNICODE, SHORT_BINSTRING, BINSTRING
          uint64_t len = (op == 0x8c || op == 'U') ? r_.U8() : r_.U32();
          if (len > r_.remaining()) return Bad("pickle truncated");
          const uint8_t* b = r_.Bytes(len);
          auto v = Make(Value::kString);
          v->s.assign(reinterpret_cast<const char*>(b), len);
          stack_.push_back(v);
          break;
        }
        case 'c': {  // GLOBAL "module\nname\n"
          std::string module = Line(), name = Line();
          std::string full = module + "." + name;
          if (!AllowedGlobals().count(full)) {
            return Status::DataLoss("refusing to load the checkpoint: its pickle references '" + full +
                                    "', which a state_dict never needs (a pickle can run code)");
          }
          auto v = Make(Value::kGlobal);
          v->s = full;
          stack_.push_back(v);
          break;
        }
        case 'q': BOA_RETURN_IF_ERROR(Put(r_.U8())); break;
        case 'r': BOA_RETURN_IF_ERROR(Put(r_.U32())); break;
        case 'h': BOA_RETURN_IF_ERROR(Get(r_.U8())); break;
        case 'j': BOA_RETURN_IF_ERROR(Get(r_.U32())); break;
        case 0x94: BOA_RETURN_IF_ERROR(Put(static_cast<uint32_t>(memo_.size()))); break;  // MEMOIZE
        case 't': {
          BOA_ASSIGN_OR_RETURN(auto items, PopMark());
          auto v = Make(Value::kTuple);
          v->items = std::move(items);
          stack_.push_back(v);
          break;
        }
        case 0x85:
        case 0x86:
        case 0x87: {
          size_t k = op - 0x84;
          if (stack_.size() < k) return Bad("malformed pickle (tuple)");
          auto v = Make(Value::kTuple);
          v->items.assign(stack_.end() - k, stack_.end());
          stack_.resize(stack_.size() - k);
          stack_.push_back(v);
          break;
        }
        case 'a':
        case 'e': {  // APPEND(S)
          std::vector<ValuePtr> items;
          if (op == 'e') {
            BOA_ASSIGN_OR_RETURN(items, PopMark());
          } else {
            BOA_ASSIGN_OR_RETURN(auto one, Pop());
            items.push_back(one);
          }
          if (stack_.empty() || stack_.back()->kind != Value::kList) return Bad("malformed pickle (append)");
          for (auto& it : items) stack_.back()->items.push_back(it);
          break;
        }
        case 's':
        case 'u': {  // SETITEM(S)
          std::vector<ValuePtr> items;
          if (op == 'u') {
            BOA_ASSIGN_OR_RETURN(items, PopMark());
          } else {
            if (stack_.size() < 2) return Bad("malformed pickle (setitem)");
            items.assign(stack_.end() - 2, stack_.end());
            stack_.resize(stack_.size() - 2);
          }
          if (items.size() % 2 || stack_.empty() || stack_.back()->kind != Value::kDict) return Bad("malformed pickle (setitems)");
          for (auto& it : items) stack_.back()->items.push_back(it);
          break;
        }
        case 'Q': {  // BINPERSID: ('storage', storage_type, key, location, numel)
          BOA_ASSIGN_OR_RETURN(auto pid, Pop());
          if (pid->kind != Value::kTuple || pid->items.size() != 5 || pid->items[0]->s != "storage" ||
              pid->items[1]->kind != Value::kGlobal || pid->items[2]->kind != Value::kString ||
              pid->items[4]->kind != Value::kInt) {
            return Bad("unexpected persistent id (only tensor storages are accepted)");
          }
          auto v = Make(Value::kStorage);
          v->s = pid->items[2]->s;
          v->items = {pid->items[1]};
          v->numel = pid->items[4]->i;
          stack_.push_back(v);
          break;
        }
        case 'R': {  // REDUCE
          BOA_ASSIGN_OR_RETURN(auto args, Pop());
          BOA_ASSIGN_OR_RETURN(auto fn, Pop());
          if (fn->kind != Value::kGlobal || args->kind != Value::kTuple) return Bad("malformed pickle (reduce)");
          if (fn->s == "collections.OrderedDict") {
            stack_.push_back(Make(Value::kDict));
          } else if (fn->s == "torch._utils._rebuild_tensor_v2") {
            BOA_ASSIGN_OR_RETURN(auto t, RebuildTensor(args));
            stack_.push_back(t);
          } else {
            return Bad("'" + fn->s + "' cannot be called");
          }
          break;
        }
        case 'b': {  // BUILD: state for an OrderedDict (its _metadata) is not needed
          BOA_ASSIGN_OR_RETURN(auto state, Pop());
          (void)state;
          if (stack_.empty()) return Bad("malformed pickle (build)");
          break;
        }
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          return Bad(std::string("unsupported pickle opcode ") + hex + " at byte " + std::to_string(r_.pos() - 1));
        }
      }
      if (!r_.ok()) return Bad("pickle truncated");
    }
  }

 private:
  void PushInt(int64_t x) {
    auto v = Make(Value::kInt);
    v->i = x;
    stack_.push_back(v);
  }
  std::string Line() {
    std::string s;
    while (r_.ok() && s.size() < 256) {
      uint8_t c = r_.U8();
      if (c == '\n') break;
      s += static_cast<char>(c);
    }
    return s;
  }
  Status Put(uint32_t idx) {
    if (stack_.empty()) return Bad("malformed pickle (memo)");
    if (idx > n_) return Bad("memo index out of range");
    if (memo_.size() <= idx) memo_.resize(idx + 1);
    memo_[idx] = stack_.back();
    return Status::Ok();
  }
  Status Get(uint32_t idx) {
    if (idx >= memo_.size() || !memo_[idx]) return Bad("memo index out of range");
    stack_.push_back(memo_[idx]);
    return Status::Ok();
  }
  Result<ValuePtr> Pop() {
    if (stack_.empty() || stack_.back()->kind == Value::kMark) return Bad("malformed pickle (empty stack)");
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  Result<std::vector<ValuePtr>> PopMark() {
    size_t k = stack_.size();
    while (k > 0 && stack_[k - 1]->kind != Value::kMark) --k;
    if (k == 0) return Bad("malformed pickle (no mark)");
    std::vector<ValuePtr> items(stack_.begin() + k, stack_.end());
    stack_.resize(k - 1);
    return items;
  }
  Result<ValuePtr> RebuildTensor(const ValuePtr& args) {
    const auto& a = args->items;
    if (a.size() < 4 || a[0]->kind != Value::kStorage || a[1]->kind != Value::kInt || a[2]->kind != Value::kTuple ||
        a[3]->kind != Value::kTuple || a[2]->items.size() != a[3]->items.size() || a[2]->items.size() > 8) {
      return Bad("malformed tensor");
    }
    auto t = Make(Value::kTensor);
    t->storage = a[0];
    t->offset = a[1]->i;
    for (size_t k = 0; k < a[2]->items.size(); ++k) {
      if (a[2]->items[k]->kind != Value::kInt || a[3]->items[k]->kind != Value::kInt) return Bad("malformed tensor");
      t->size.push_back(a[2]->items[k]->i);
      t->stride.push_back(a[3]->items[k]->i);
    }
    return t;
  }
  ByteReader r_;
  size_t n_;
  std::vector<ValuePtr> stack_;
  std::vector<ValuePtr> memo_;
};

float Bf16ToFloat(uint16_t h) {
  uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

Result<ModelWeights> ImportTorchCheckpoint(const std::vector<uint8_t>& file) {
  BOA_ASSIGN_OR_RETURN(auto zip, ReadZip(file));
  std::string prefix;
  for (const auto& [name, entry] : zip) {
    if (name.size() >= 8 && name.compare(name.size() - 8, 8, "data.pkl") == 0) {
      prefix = name.substr(0, name.size() - 8);
      break;
    }
  }
  if (!zip.count(prefix + "data.pkl")) return Bad("no data.pkl in the archive");
  if (zip.count(prefix + "byteorder")) {
    const ZipEntry& bo = zip[prefix + "byteorder"];
    if (std::string(reinterpret_cast<const char*>(bo.data), bo.size) != "little") return Bad("big-endian checkpoints are not supported");
  }
  const ZipEntry& pkl = zip[prefix + "data.pkl"];
  Unpickler up(pkl.data, pkl.size);
  BOA_ASSIGN_OR_RETURN(ValuePtr root, up.Run());
  if (root->kind != Value::kDict) return Bad("the pickle holds no state_dict (expected a dict of tensors)");

  std::map<std::string, Tensor> found;
  for (size_t k = 0; k + 1 < root->items.size(); k += 2) {
    const ValuePtr& key = root->items[k];
    const ValuePtr& val = root->items[k + 1];
    if (key->kind != Value::kString) return Bad("a state_dict key is not a string");
    if (val->kind != Value::kTensor) return Bad("'" + key->s + "' is not a tensor");
    const Value& st = *val->storage;
    const std::string dtype = st.items[0]->s;
    size_t elem = dtype == "torch.FloatStorage" ? 4 : dtype == "torch.DoubleStorage" ? 8 : 2;
    auto it = zip.find(prefix + "data/" + st.s);
    if (it == zip.end()) return Bad("storage '" + st.s + "' of '" + key->s + "' is missing");
    if (st.numel < 0 || static_cast<uint64_t>(st.numel) * elem > it->second.size) {
      return Bad("storage '" + st.s + "' of '" + key->s + "' is shorter than declared");
    }
    Tensor t;
    t.name = key->s;
    uint64_t numel = 1;
    int64_t last = val->offset;  // largest element index touched
    for (size_t d = 0; d < val->size.size(); ++d) {
      if (val->size[d] < 0 || val->size[d] > (1 << 30) || val->stride[d] < 0) return Bad("'" + key->s + "' has a bad shape");
      t.shape.push_back(static_cast<uint32_t>(val->size[d]));
      numel *= static_cast<uint64_t>(val->size[d]);
      if (val->size[d] > 0) last += (val->size[d] - 1) * val->stride[d];
    }
    if (numel > (1ull << 31)) return Bad("'" + key->s + "' is too large");
    if (val->offset < 0 || (numel > 0 && last >= st.numel)) return Bad("'" + key->s + "' lies outside its storage");
    t.data.resize(numel);
    const uint8_t* base = it->second.data;
    std::vector<int64_t> idx(val->size.size(), 0);
    for (uint64_t n = 0; n < numel; ++n) {
      int64_t e = val->offset;
      for (size_t d = 0; d < idx.size(); ++d) e += idx[d] * val->stride[d];
      const uint8_t* p = base + static_cast<size_t>(e) * elem;
      float v;
      if (elem == 4) {
        std::memcpy(&v, p, 4);
      } else if (elem == 8) {
        double x;
        std::memcpy(&x, p, 8);
        v = static_cast<float>(x);
      } else {
        uint16_t h = static_cast<uint16_t>(p[0] | (p[1] << 8));
        v = dtype == "torch.HalfStorage" ? HalfToFloat(h) : Bf16ToFloat(h);
      }
      if (!std::isfinite(v)) return Bad("'" + key->s + "' has a non-finite value");
      t.data[n] = v;
      for (size_t d = idx.size(); d-- > 0;) {
        if (++idx[d] < val->size[d]) break;
        idx[d] = 0;
      }
    }
    found[t.name] = std::move(t);
  }

  // Architecture from the shapes.
  auto shape = [&](const std::string& n) -> const std::vector<uint32_t>* {
    auto f = found.find(n);
    return f == found.end() ? nullptr : &f->second.shape;
  };
  const auto* emb = shape("embedding.weight");
  const auto* inp = shape("blocks.0.mamba.in_proj.weight");
  const auto* alog = shape("blocks.0.mamba.A_log");
  const auto* conv = shape("blocks.0.mamba.conv1d.weight");
  const auto* dtp = shape("blocks.0.mamba.dt_proj.weight");
  if (!emb || emb->size() != 2 || !inp || inp->size() != 2 || !alog || alog->size() != 2 || !conv ||
      conv->size() != 3 || !dtp || dtp->size() != 2) {
    return Bad("cannot infer the architecture: embedding.weight and blocks.0.mamba.{in_proj.weight, A_log, "
               "conv1d.weight, dt_proj.weight} are needed");
  }
  ModelConfig c;
  c.d_model = (*emb)[1];
  c.n_layers = 0;
  while (found.count("blocks." + std::to_string(c.n_layers) + ".ln1.weight")) ++c.n_layers;
  c.d_state = (*alog)[1];
  c.d_conv = (*conv)[2];
  c.dt_rank = (*dtp)[1];
  c.expand = c.d_model ? (*inp)[0] / 2 / c.d_model : 0;
  Status valid = c.Validate();
  if (!valid.ok()) return Bad("inferred architecture is invalid: " + valid.message());
  ModelWeights w;
  w.config = c;
  w.tensors = ExpectedTensorShapes(c);
  std::string missing, mismatched;
  std::set<std::string> expected;
  for (Tensor& t : w.tensors) {
    expected.insert(t.name);
    auto f = found.find(t.name);
    if (f == found.end()) {
      missing += (missing.empty() ? "" : ", ") + t.name;
    } else if (f->second.shape != t.shape) {
      mismatched += (mismatched.empty() ? "" : ", ") + t.name;
    } else {
      t.data = std::move(f->second.data);
    }
  }
  std::string unexpected;
  for (const auto& [name, t] : found)
    if (!expected.count(name)) unexpected += (unexpected.empty() ? "" : ", ") + name;
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = "the state_dict does not match a BOA model (d_model " + std::to_string(c.d_model) + ", " +
                      std::to_string(c.n_layers) + " layers)";
    if (!missing.empty()) msg += "; missing: " + missing;
    if (!unexpected.empty()) msg += "; unexpected: " + unexpected;
    if (!mismatched.empty()) msg += "; wrong shape: " + mismatched;
    return Bad(msg);
  }
  return w;
}

}  // namespace boa
