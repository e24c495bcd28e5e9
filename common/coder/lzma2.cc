// LZMA2 chunks through liblzma's raw (headerless) coders.
#include "common/coder/lzma2.h"

#include <lzma.h>

#include <algorithm>
#include <string>

namespace boa::lzma2 {

namespace {

// The decoder's dictionary (docs/format.md, method 3): enough for any distance inside a
// chunk, so it is a function of the chunk's length alone.
uint32_t DictionaryFor(uint64_t length) {
  return static_cast<uint32_t>(std::max<uint64_t>(LZMA_DICT_SIZE_MIN, length));
}

}  // namespace

std::vector<uint8_t> Encode(const uint8_t* p, size_t n, size_t limit, const std::atomic<bool>* stop) {
  std::vector<uint8_t> out;
  if (limit == 0) return out;
  lzma_options_lzma opt;
  if (lzma_lzma_preset(&opt, 9)) return out;
  opt.dict_size = DictionaryFor(n);
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_stream strm = LZMA_STREAM_INIT;
  // Any failure (memory) also means "no LZMA2 record", never a wrong one.
  if (lzma_raw_encoder(&strm, filters) != LZMA_OK) return out;
  out.resize(limit - 1);
  strm.next_out = out.data();
  strm.avail_out = out.size();
  // The input goes in by steps so that `stop` is seen within one step's work; liblzma's
  // output does not depend on how its input is split.
  constexpr size_t kStep = 1 << 20;
  size_t fed = 0;
  lzma_ret r = LZMA_OK;
  while (r == LZMA_OK && !(stop && stop->load())) {
    if (strm.avail_in == 0 && fed < n) {
      strm.next_in = p + fed;
      strm.avail_in = std::min(kStep, n - fed);
      fed += strm.avail_in;
    }
    r = lzma_code(&strm, fed == n ? LZMA_FINISH : LZMA_RUN);
    if (r == LZMA_OK && strm.avail_out == 0) break;  // the code does not fit in limit - 1 bytes
  }
  const size_t written = static_cast<size_t>(strm.total_out);
  lzma_end(&strm);
  if (r != LZMA_STREAM_END) {
    out.clear();
    return out;
  }
  out.resize(written);
  return out;
}

Status Decode(const uint8_t* payload, size_t n, uint64_t index, uint32_t length, uint8_t* out) {
  lzma_options_lzma opt{};
  opt.dict_size = DictionaryFor(length);
  const lzma_filter filters[] = {{LZMA_FILTER_LZMA2, &opt}, {LZMA_VLI_UNKNOWN, nullptr}};
  size_t in_pos = 0, out_pos = 0;
  const lzma_ret r = lzma_raw_buffer_decode(filters, nullptr, payload, &in_pos, n, out, &out_pos, length);
  const std::string where = "corrupt .boa: chunk " + std::to_string(index) + ": LZMA2 data ";
  if (r == LZMA_MEM_ERROR) return Status::ResourceExhausted("out of memory decoding LZMA2 chunk " + std::to_string(index));
  // On failure liblzma restores the positions, so only the kind of failure is known.
  if (r != LZMA_OK) return Status::DataLoss(where + "is damaged or does not end after the chunk's " + std::to_string(length) + " bytes");
  if (out_pos != length) {
    return Status::DataLoss(where + "decodes to " + std::to_string(out_pos) + " bytes, the chunk has " + std::to_string(length));
  }
  if (in_pos != n) return Status::DataLoss(where + "ends before its record does");
  return Status::Ok();
}

}  // namespace boa::lzma2
