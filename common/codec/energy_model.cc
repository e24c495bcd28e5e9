// The energy model's exactly specified rules (docs/determinism.md, "Energy model").
#include "common/codec/energy_model.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <system_error>

#include "common/coder/frequency_table.h"

namespace boa {

namespace {

constexpr uint32_t kOffsetBuckets = 24;

bool IsSeparator(uint8_t c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// A token with a decimal point or an exponent that parses as a whole (a leading '+' allowed).
bool ParseFloat(const uint8_t* p, size_t n, double* v) {
  if (n == 0 || n > EnergyModel::kMaxToken) return false;
  bool point = false, digit = false;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' || c == 'e' || c == 'E') {
      point = true;
    } else if (c != '+' && c != '-') {
      return false;
    }
  }
  if (!point || !digit) return false;
  const char* first = reinterpret_cast<const char*>(p);
  const char* last = first + n;
  if (*first == '+') ++first;
  const std::from_chars_result r = std::from_chars(first, last, *v, std::chars_format::general);
  return r.ec == std::errc() && r.ptr == last && std::isfinite(*v);
}

// Significant digits of a number as printed (leading zeros do not count).
int SignificantDigits(const uint8_t* p, size_t n) {
  int digits = 0;
  bool leading = true;
  for (size_t i = 0; i < n && p[i] != 'e' && p[i] != 'E'; ++i) {
    if (p[i] < '0' || p[i] > '9') continue;
    if (leading && p[i] == '0') continue;
    leading = false;
    ++digits;
  }
  return digits;
}

// `v` printed as C's %.<precision>e or %.<precision>g would; 0 when it does not fit.
size_t Print(double v, bool scientific, int precision, char* out, size_t capacity) {
  const std::to_chars_result r = std::to_chars(out, out + capacity, v,
                                               scientific ? std::chars_format::scientific : std::chars_format::general, precision);
  return r.ec == std::errc() ? static_cast<size_t>(r.ptr - out) : 0;
}

// One more (step 1) or one less (step -1) in the last digit of a printed number's mantissa,
// in place; false where that would reach its first significant digit (the text would change
// length or form).
bool StepLastDigit(char* text, size_t n, int step) {
  size_t end = 0;
  while (end < n && text[end] != 'e' && text[end] != 'E') ++end;
  size_t first = 0;
  while (first < end && (text[first] < '1' || text[first] > '9')) ++first;
  for (size_t i = end; i-- > first + 1;) {
    if (text[i] == '.') continue;
    if (step > 0 && text[i] != '9') return ++text[i], true;
    if (step < 0 && text[i] != '0') return --text[i], true;
    text[i] = step > 0 ? '0' : '9';  // carry or borrow on
  }
  return false;
}

// 10^-k as the compiler rounds the literal (no libm: pow is not correctly rounded everywhere).
double TenToMinus(int k) {
  static constexpr double kPowers[] = {1e0,   1e-1,  1e-2,  1e-3,  1e-4,  1e-5,  1e-6,  1e-7,  1e-8,  1e-9, 1e-10,
                                       1e-11, 1e-12, 1e-13, 1e-14, 1e-15, 1e-16, 1e-17, 1e-18, 1e-19, 1e-20};
  return kPowers[std::clamp(k, 0, 20)];
}

double SquaredMomentum(const double* p) { return (p[0] * p[0] + p[1] * p[1]) + p[2] * p[2]; }

// Listings print E from a mass constant with few digits (0.13957039), which E² - p² pins
// down only to an interval: the square of the mass with the fewest significant digits (up
// to 17) whose square lies in [lo, hi] (lo > 0); the middle when none is found.
double ShortestMassSquaredIn(double lo, double hi) {
  const double m = std::sqrt(lo + (hi - lo) / 2);
  for (int digits = 1; digits <= 17; ++digits) {
    char text[40];
    const std::to_chars_result r = std::to_chars(text, text + sizeof text, m, std::chars_format::scientific, digits - 1);
    double c = 0;
    if (r.ec != std::errc() || std::from_chars(text, r.ptr, c).ec != std::errc()) break;
    if (lo <= c * c && c * c <= hi) return c * c;
  }
  return lo + (hi - lo) / 2;
}

}  // namespace

uint32_t EnergyModel::Bucket(const Candidate& c, uint32_t offset, uint32_t distinct, uint32_t network_frequency) {
  const uint32_t kind = c.variant == 0 ? std::min<uint32_t>(c.rank, 3) : 3u + c.variant;
  return ((kind * kOffsetBuckets + std::min(offset, kOffsetBuckets - 1)) * kPicks + distinct - 1) * 4 +
         (network_frequency >> (kProbBits - 2));
}

const uint32_t* EnergyModel::Mix(const uint32_t* cum) {
  bucket_.fill(-1);
  // The candidates that predict a byte no earlier one does, in order.
  std::array<const Candidate*, kPicks> picked{};
  uint32_t picks = 0;
  for (uint32_t i = 0; i < candidate_count_ && picks < kPicks; ++i) {
    const uint8_t b = static_cast<uint8_t>(candidates_[i].text[offset_]);
    if (std::find(predicted_.begin(), predicted_.begin() + picks, b) != predicted_.begin() + picks) continue;
    predicted_[picks] = b;
    picked[picks++] = &candidates_[i];
  }
  for (uint32_t k = 0; k < picks; ++k) {
    const uint32_t b = predicted_[k];
    bucket_[k] = static_cast<int32_t>(Bucket(*picked[k], offset_, picks, cum[b + 1] - cum[b]));
    cum = MixPredictedByte(cum, b, counters_[k][static_cast<size_t>(bucket_[k])].Target(), mixed_[k].data());
  }
  return cum;
}

void EnergyModel::Update(const uint8_t* bytes, size_t pos) {
  const uint8_t c = bytes[pos];
  if (candidate_count_ > 0) {
    for (int k = 0; k < kPicks; ++k) {
      if (bucket_[k] >= 0) counters_[k][static_cast<size_t>(bucket_[k])].Count(c == predicted_[k]);
    }
    ++offset_;
    uint32_t keep = 0;
    for (uint32_t i = 0; i < candidate_count_; ++i) {
      const Candidate& k = candidates_[i];
      if (static_cast<uint8_t>(k.text[offset_ - 1]) == c && k.length > offset_) candidates_[keep++] = k;
    }
    candidate_count_ = keep;
  }
  bucket_.fill(-1);
  if (!IsSeparator(c)) {
    if (token_start_ < 0) token_start_ = static_cast<int64_t>(pos);
    return;
  }
  if (token_start_ >= 0) EndToken(bytes, pos, c);
  if (c == '\n') {
    if (line_known_ && run_length_ >= 4) Learn(bytes);
    line_known_ = true;
    run_length_ = 0;
    run_closed_ = false;
    candidate_count_ = 0;
    field_start_ = pos + 1;
  }
}

void EnergyModel::EndToken(const uint8_t* bytes, size_t end, uint8_t separator) {
  const size_t start = static_cast<size_t>(token_start_);
  const size_t field = field_start_;
  token_start_ = -1;
  field_start_ = end;
  if (!line_known_ || run_closed_) return;
  double v = 0;
  if (!ParseFloat(bytes + start, end - start, &v)) {
    if (run_length_ >= 4) {
      run_closed_ = true;
    } else {
      run_length_ = 0;
    }
    return;
  }
  if (run_length_ < run_.size()) run_[run_length_] = v;
  ++run_length_;
  if (run_length_ == 3 && separator != '\n') Predict(separator);
  if (run_length_ == 4) {
    energy_field_start_ = field;
    energy_start_ = start;
    energy_end_ = end;
  }
  if (run_length_ == run_.size()) run_closed_ = true;  // nothing after the fifth is used
}

void EnergyModel::Predict(uint8_t separator) {
  candidate_count_ = 0;
  if (layout_.precision == 0) return;
  const double p2 = SquaredMomentum(run_.data());
  for (uint32_t i = 0; i < mass_count_; ++i) {
    const double e2 = p2 + masses_[i].m2;
    if (!(e2 >= 0)) continue;
    const double e = std::sqrt(e2);
    for (uint8_t variant = 0; variant < 3; ++variant) {
      char number[kMaxField];
      size_t n = 0;
      if (variant == 0) {
        n = Print(e, layout_.scientific, layout_.precision, number, sizeof number);
      } else {
        // The last of `precision` significant digits stepped, in scientific form; %g then
        // prints that decimal (dropping trailing zeros) the way it would print E.
        const int decimals = layout_.scientific ? layout_.precision : layout_.precision - 1;
        n = Print(e, true, decimals, number, sizeof number);
        if (n == 0 || !StepLastDigit(number, n, variant == 1 ? 1 : -1)) continue;
        double stepped = 0;
        if (!layout_.scientific) {
          if (std::from_chars(number, number + n, stepped).ec != std::errc()) continue;
          n = Print(stepped, false, layout_.precision, number, sizeof number);
        }
      }
      if (n == 0) continue;
      Candidate k;
      size_t pad = 1;
      if (layout_.width > n) {
        pad = layout_.width - n;
        if (separator != ' ') continue;
      }
      if (pad + n > kMaxField) continue;
      std::memset(k.text.data(), separator, pad);
      std::memcpy(k.text.data() + pad, number, n);
      k.length = static_cast<uint8_t>(pad + n);
      k.rank = static_cast<uint8_t>(i);
      k.variant = variant;
      bool known = false;
      for (uint32_t j = 0; j < candidate_count_ && !known; ++j) {
        known = candidates_[j].length == k.length && std::memcmp(candidates_[j].text.data(), k.text.data(), k.length) == 0;
      }
      if (!known) candidates_[candidate_count_++] = k;
    }
  }
  offset_ = 1;  // the separator just read was the field's first byte
}

void EnergyModel::Learn(const uint8_t* bytes) {
  // How the energy is printed: the layout that reprints it exactly.
  const uint8_t* token = bytes + energy_start_;
  const size_t n = energy_end_ - energy_start_;
  const double e = run_[3];
  Layout l;
  l.scientific = std::find_if(token, token + n, [](uint8_t c) { return c == 'e' || c == 'E'; }) != token + n;
  const int significant = SignificantDigits(token, n);
  if (l.scientific) {
    const uint8_t* point = std::find(token, token + n, '.');
    const uint8_t* exponent = std::find_if(token, token + n, [](uint8_t c) { return c == 'e' || c == 'E'; });
    l.precision = point < exponent ? static_cast<int>(exponent - point - 1) : 0;
  } else {
    // %g drops trailing zeros: the most digits seen is the precision.
    l.precision = std::max(significant, layout_.scientific ? 0 : layout_.precision);
  }
  const size_t separators = energy_start_ - energy_field_start_;
  bool spaces = separators > 1;
  for (size_t i = energy_field_start_; i < energy_start_ && spaces; ++i) spaces = bytes[i] == ' ';
  l.width = spaces ? static_cast<uint32_t>(energy_end_ - energy_field_start_) : 0;
  char printed[kMaxField];
  const size_t m = l.precision > 0 ? Print(e, l.scientific, l.precision, printed, sizeof printed) : 0;
  if (m == n && std::memcmp(printed, token, n) == 0) layout_ = l;

  // The mass: listed after the energy when it agrees with E² - p², else E² - p² itself, as
  // exact as the printed digits allow: an interval, narrowed by every line with that mass.
  const double p2 = SquaredMomentum(run_.data());
  const double e2 = e * e;
  const double relative = std::max(TenToMinus(significant - 1), 0x1p-52);
  const double estimate = e2 - p2, error = 4 * (e2 + p2) * relative;
  if (!std::isfinite(estimate) || !std::isfinite(error)) return;
  Mass mass{estimate - error, estimate + error, 0, 1};
  if (run_length_ >= 5 && std::abs(run_[4] * run_[4] - estimate) <= error) mass.lo = mass.hi = run_[4] * run_[4];
  if (mass.hi < 0) return;
  uint32_t i = 0;
  while (i < mass_count_ && (masses_[i].hi < mass.lo || mass.hi < masses_[i].lo)) ++i;
  if (i < mass_count_) {
    mass.lo = std::max(mass.lo, masses_[i].lo);
    mass.hi = std::min(mass.hi, masses_[i].hi);
    mass.lines = masses_[i].lines + 1;
  } else if (mass_count_ < kMasses) {
    ++mass_count_;  // a new mass enters last (the least used goes when all places are taken)
  }
  mass.m2 = mass.lo <= 0 ? 0 : ShortestMassSquaredIn(mass.lo, mass.hi);
  i = std::min<uint32_t>(i, mass_count_ - 1);
  masses_[i] = mass;
  // Most lines first; a tie keeps the order (the one seen longer).
  while (i > 0 && masses_[i - 1].lines < masses_[i].lines) {
    std::swap(masses_[i - 1], masses_[i]);
    --i;
  }
  if (masses_[0].lines > 1023) {
    for (uint32_t k = 0; k < mass_count_; ++k) masses_[k].lines = (masses_[k].lines + 1) / 2;
  }
}

}  // namespace boa
