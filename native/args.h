// Argument cursor of the N-API binding: reads a call's arguments left to right, checks each and names
// it in the KernelError EINVAL a bad one throws. Arrays are copied out of caller memory once.
#pragma once
#include <napi.h>

#include <cmath>
#include <string>
#include <vector>

#include "physmem.h"

namespace memhp {

inline std::string argName(const char* method, const char* name) { return std::string("PhysMem.") + method + ": argument '" + name + "'"; }

// The arguments of one call, read left to right: each reader takes the next argument, checks it and
// names it in the EINVAL it throws ("PhysMem.<method>: argument '<name>' must be ...").
class Args {
 public:
  Args(const Napi::CallbackInfo& info, const char* method) : info_(info), method_(method) {}

  // An integer in 0..max.
  uint64_t u64(const char* name, uint64_t max) {
    Napi::Value v = next();
    if (!v.IsNumber()) einval(argName(method_, name) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > double(max))
      einval(argName(method_, name) + " must be an integer in 0.." + std::to_string(max));
    return uint64_t(d);
  }
  uint64_t pfn(const char* name = "pfn") { return u64(name, MAX_PFN - 1); }
  // A number of pages (or blocks), at most `max`.
  uint64_t count(const char* name, uint64_t max = MAX_PFN - 1) { return u64(name, max); }

  // An integer in lo..hi.
  int integer(const char* name, int lo, int hi) {
    Napi::Value v = next();
    if (!v.IsNumber()) einval(argName(method_, name) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || d < lo || d > hi)
      einval(argName(method_, name) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
    return int(d);
  }
  int nid() { return integer("nid", 0, MAX_NUMNODES - 1); }
  int zone() { return integer("zone", 0, NR_ZONES - 1); }

  // A signed page count, |delta| <= MAX_PFN.
  int64_t delta(const char* name) {
    Napi::Value v = next();
    if (!v.IsNumber()) einval(argName(method_, name) + " must be a number");
    double d = v.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > double(MAX_PFN)) einval(argName(method_, name) + " must be an integer page count");
    return int64_t(d);
  }

  bool flag(const char* name) {
    Napi::Value v = next();
    if (!v.IsBoolean()) einval(argName(method_, name) + " must be a boolean");
    return v.As<Napi::Boolean>().Value();
  }

  // A pfn array, copied out of the caller's memory before anything looks at it: the array may sit on a
  // SharedArrayBuffer another thread writes to, so the core must validate and use one private reading.
  std::vector<double> pfns(const char* name = "pfns") {
    Napi::Value v = next();
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      einval(argName(method_, name) + " must be a Float64Array of pfns");
    Napi::Float64Array a = v.As<Napi::Float64Array>();
    const double* d = a.Data();
    return std::vector<double>(d, d + a.ElementLength());
  }

  // A node mask (1 = node allowed), at most MAX_NUMNODES entries (E2BIG beyond), copied once like the
  // pfn arrays: the core reads its own copy only.
  std::vector<uint8_t> nodeMask(const char* name) {
    Napi::Value v = next();
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      einval(argName(method_, name) + " must be a Uint8Array (1 = node allowed)");
    Napi::Uint8Array a = v.As<Napi::Uint8Array>();
    const size_t n = a.ElementLength();
    if (n > size_t(MAX_NUMNODES))
      fail("E2BIG", 7, argName(method_, name) + " has " + std::to_string(n) + " entries, more than MAX_NUMNODES (" + std::to_string(MAX_NUMNODES) + ")");
    return std::vector<uint8_t>(a.Data(), a.Data() + n);
  }

  // An output Float64Array of at least `min` elements, which the call only writes.
  Napi::Float64Array out(const char* name, size_t min) {
    Napi::Value v = next();
    if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array || v.As<Napi::Float64Array>().ElementLength() < min)
      einval(std::string(method_) + ": " + name + " must be a Float64Array of at least " + std::to_string(min) + " elements");
    return v.As<Napi::Float64Array>();
  }

 private:
  const Napi::CallbackInfo& info_;
  const char* method_;
  size_t i_ = 0;

  Napi::Value next() {
    size_t i = i_++;
    return i < info_.Length() ? info_[i] : info_.Env().Undefined();
  }
};

}  // namespace memhp
