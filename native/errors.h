// Typed kernel errors inside the native core, turned into JS KernelError at the N-API boundary.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>

namespace memhp {

// A kernel-style failure: errno name + number, message, and the offending pfn if any (-1 if none).
struct KError {
  const char* code;
  int err;
  std::string message;
  int64_t pfn = -1;
};

[[noreturn]] inline void fail(const char* code, int err, std::string msg, int64_t pfn = -1) {
  throw KError{code, err, std::move(msg), pfn};
}
[[noreturn]] inline void einval(std::string msg, int64_t pfn = -1) { fail("EINVAL", 22, std::move(msg), pfn); }
[[noreturn]] inline void ebusy(std::string msg, int64_t pfn = -1) { fail("EBUSY", 16, std::move(msg), pfn); }
[[noreturn]] inline void enomem(std::string msg, int64_t pfn = -1) { fail("ENOMEM", 12, std::move(msg), pfn); }
[[noreturn]] inline void eexist(std::string msg, int64_t pfn = -1) { fail("EEXIST", 17, std::move(msg), pfn); }
[[noreturn]] inline void enoent(std::string msg, int64_t pfn = -1) { fail("ENOENT", 2, std::move(msg), pfn); }
[[noreturn]] inline void erange(std::string msg, int64_t pfn = -1) { fail("ERANGE", 34, std::move(msg), pfn); }

inline std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", (unsigned long long)v);
  return buf;
}

}  // namespace memhp
