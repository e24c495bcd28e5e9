// The byte-count grammar (see byte_size.h).
#include "common/util/byte_size.h"

#include <cctype>
#include <map>

namespace boa {

Result<uint64_t> ParseByteSize(const std::string& text) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const uint64_t digit = static_cast<uint64_t>(text[i++] - '0');
    if (v > (UINT64_MAX - digit) / 10) return Status::InvalidArgument("'" + text + "' is too large");
    v = v * 10 + digit;
  }
  if (i == 0) return Status::InvalidArgument("'" + text + "' is not a size (e.g. 65536, 64K, 1M, 4G)");
  static const std::map<std::string, int> kShift = {
      {"", 0},    {"K", 10},  {"k", 10},  {"KiB", 10}, {"KB", 10}, {"M", 20},  {"MiB", 20},
      {"MB", 20}, {"G", 30},  {"GiB", 30}, {"GB", 30}, {"T", 40},   {"TiB", 40}, {"TB", 40}};
  auto unit = kShift.find(text.substr(i));
  if (unit == kShift.end()) {
    return Status::InvalidArgument("'" + text + "' has an unknown unit '" + text.substr(i) + "' (use K, M, G or T)");
  }
  if (unit->second && v > (UINT64_MAX >> unit->second)) return Status::InvalidArgument("'" + text + "' is too large");
  return v << unit->second;
}

}  // namespace boa
