// N-API binding of PhysMem. Every argument is checked here and a bad one throws KernelError EINVAL;
// kernel-style failures from the core (KError) become KernelError with their errno and pfn.
#include "physmem_js.h"

#include <cmath>
#include <new>
#include <vector>

namespace memhp {

namespace {

// Turn a core failure into the registered KernelError (or a plain Error before registration).
[[noreturn]] void throwJs(Napi::Env env, const KError& e) {
  auto* data = env.GetInstanceData<AddonData>();
  if (data && !data->errorClass.IsEmpty()) {
    Napi::Object details = Napi::Object::New(env);
    if (e.pfn >= 0) details.Set("pfn", Napi::Number::New(env, double(e.pfn)));
    Napi::Object options = Napi::Object::New(env);
    options.Set("details", details);
    Napi::Object err = data->errorClass.New({Napi::String::New(env, e.code), Napi::String::New(env, e.message), options});
    throw Napi::Error(env, err);
  }
  Napi::Error err = Napi::Error::New(env, e.message);
  err.Set("code", Napi::String::New(env, e.code));
  err.Set("errno", Napi::Number::New(env, e.err));
  throw err;
}

// Run a method body, converting core failures and allocation failures to KernelError.
template <typename F>
Napi::Value guarded(const Napi::CallbackInfo& info, F&& body) {
  try {
    return body();
  } catch (const KError& e) {
    throwJs(info.Env(), e);
  } catch (const std::bad_alloc&) {
    throwJs(info.Env(), KError{"ENOMEM", 12, "PhysMem: out of host memory", -1});
  }
}

std::string argName(const char* method, const char* name) { return std::string("PhysMem.") + method + ": argument '" + name + "'"; }

uint64_t argU64(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name, uint64_t max) {
  if (info.Length() <= i || !info[i].IsNumber()) einval(argName(method, name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d < 0 || d != std::floor(d) || d > double(max))
    einval(argName(method, name) + " must be an integer in 0.." + std::to_string(max));
  return uint64_t(d);
}

uint64_t argPfn(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name = "pfn") {
  return argU64(info, i, method, name, MAX_PFN - 1);
}

int argInt(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name, int lo, int hi) {
  if (info.Length() <= i || !info[i].IsNumber()) einval(argName(method, name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || d < lo || d > hi)
    einval(argName(method, name) + " must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  return int(d);
}

int64_t argDelta(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber()) einval(argName(method, name) + " must be a number");
  double d = info[i].As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > double(MAX_PFN)) einval(argName(method, name) + " must be an integer page count");
  return int64_t(d);
}

bool argBool(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name) {
  if (info.Length() <= i || !info[i].IsBoolean()) einval(argName(method, name) + " must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// A pfn array, copied out of the caller's memory before anything looks at it: the array may sit on a
// SharedArrayBuffer another thread writes to, so the core must validate and use one private reading.
std::vector<double> argF64(const Napi::CallbackInfo& info, size_t i, const char* method, const char* name) {
  if (info.Length() <= i || !info[i].IsTypedArray() || info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
    einval(argName(method, name) + " must be a Float64Array of pfns");
  Napi::Float64Array a = info[i].As<Napi::Float64Array>();
  const double* d = a.Data();
  return std::vector<double>(d, d + a.ElementLength());
}

Napi::Number num(Napi::Env env, uint64_t v) { return Napi::Number::New(env, double(v)); }

}  // namespace

void PhysMemJs::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "PhysMem", {
      InstanceMethod<&PhysMemJs::AddSections>("addSections"),
      InstanceMethod<&PhysMemJs::RemoveSections>("removeSections"),
      InstanceMethod<&PhysMemJs::InitRange>("initRange"),
      InstanceMethod<&PhysMemJs::InitMemmapOnMemory>("initMemmapOnMemory"),
      InstanceMethod<&PhysMemJs::OnlinePagesRange>("onlinePagesRange"),
      InstanceMethod<&PhysMemJs::AdjustPresentPages>("adjustPresentPages"),
      InstanceMethod<&PhysMemJs::MarkSectionsOnline>("markSectionsOnline"),
      InstanceMethod<&PhysMemJs::ZoneCounters>("zoneCounters"),
      InstanceMethod<&PhysMemJs::IsolateRange>("isolateRange"),
      InstanceMethod<&PhysMemJs::UndoIsolateRange>("undoIsolateRange"),
      InstanceMethod<&PhysMemJs::TestPagesIsolated>("testPagesIsolated"),
      InstanceMethod<&PhysMemJs::ScanMovablePages>("scanMovablePages"),
      InstanceMethod<&PhysMemJs::MigrateRange>("migrateRange"),
      InstanceMethod<&PhysMemJs::OfflineIsolatedPages>("offlineIsolatedPages"),
      InstanceMethod<&PhysMemJs::RemoveRangeFromZone>("removeRangeFromZone"),
      InstanceMethod<&PhysMemJs::Alloc>("alloc"),
      InstanceMethod<&PhysMemJs::Free>("free"),
      InstanceMethod<&PhysMemJs::Pin>("pin"),
      InstanceMethod<&PhysMemJs::Unpin>("unpin"),
      InstanceMethod<&PhysMemJs::Hwpoison>("hwpoison"),
      InstanceMethod<&PhysMemJs::AllocPage>("allocPage"),
      InstanceMethod<&PhysMemJs::ZoneInfo>("zoneInfo"),
      InstanceMethod<&PhysMemJs::NodeSpan>("nodeSpan"),
      InstanceMethod<&PhysMemJs::PageblockInfo>("pageblockInfo"),
      InstanceMethod<&PhysMemJs::SectionInfo>("sectionInfo"),
      InstanceMethod<&PhysMemJs::PageState>("pageState"),
      InstanceMethod<&PhysMemJs::PageStates>("pageStates"),
      InstanceMethod<&PhysMemJs::CheckInvariants>("checkInvariants"),
      InstanceMethod<&PhysMemJs::NativeBytes>("nativeBytes"),
      InstanceMethod<&PhysMemJs::NodeCount>("nodeCount"),
  });
  exports.Set("PhysMem", ctor);
}

PhysMemJs::PhysMemJs(const Napi::CallbackInfo& info) : Napi::ObjectWrap<PhysMemJs>(info) {}

Napi::Value PhysMemJs::AddSections(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    pm_.addSections(argPfn(info, 0, "addSections", "start"), argPfn(info, 1, "addSections", "nr"),
                    argInt(info, 2, "addSections", "nid", 0, MAX_NUMNODES - 1));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::RemoveSections(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    pm_.removeSections(argPfn(info, 0, "removeSections", "start"), argPfn(info, 1, "removeSections", "nr"));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::InitRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "initRange";
    pm_.initRange(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"), argInt(info, 2, m, "nid", 0, MAX_NUMNODES - 1),
                  argInt(info, 3, m, "zone", 0, NR_ZONES - 1), argBool(info, 4, m, "reserved"), argBool(info, 5, m, "isolate"),
                  argInt(info, 6, m, "migratetype", 0, NR_PB_TYPES - 1));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::InitMemmapOnMemory(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "initMemmapOnMemory";
    pm_.initMemmapOnMemory(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"), argInt(info, 2, m, "nid", 0, MAX_NUMNODES - 1),
                           argInt(info, 3, m, "zone", 0, NR_ZONES - 1));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::OnlinePagesRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "onlinePagesRange";
    pm_.onlinePagesRange(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"), argBool(info, 2, m, "markOnline"));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::AdjustPresentPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    pm_.adjustPresentPages(argPfn(info, 0, "adjustPresentPages"), argDelta(info, 1, "adjustPresentPages", "delta"));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::MarkSectionsOnline(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "markSectionsOnline";
    pm_.markSectionsOnline(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::IsolateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "isolateRange";
    pm_.isolateRange(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"), argInt(info, 2, m, "undoMigratetype", -1, NR_PB_TYPES - 1));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::UndoIsolateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "undoIsolateRange";
    pm_.undoIsolateRange(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"), argInt(info, 2, m, "migratetype", -1, NR_PB_TYPES - 1));
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::TestPagesIsolated(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "testPagesIsolated";
    return Napi::Number::New(info.Env(), double(pm_.testPagesIsolated(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"))));
  });
}

Napi::Value PhysMemJs::ScanMovablePages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "scanMovablePages";
    return Napi::Number::New(info.Env(), double(pm_.scanMovablePages(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"))));
  });
}

Napi::Value PhysMemJs::MigrateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "migrateRange";
    uint64_t start = argPfn(info, 0, m, "start"), nr = argPfn(info, 1, m, "nr");
    if (info.Length() <= 2 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
      einval(argName(m, "nodeMask") + " must be a Uint8Array (1 = node allowed)");
    // Copied once, like the pfn arrays: the core reads its own copy only.
    Napi::Uint8Array maskArr = info[2].As<Napi::Uint8Array>();
    if (maskArr.ElementLength() > size_t(MAX_NUMNODES))
      fail("E2BIG", 7, argName(m, "nodeMask") + " has " + std::to_string(maskArr.ElementLength()) + " entries, more than MAX_NUMNODES (" + std::to_string(MAX_NUMNODES) + ")");
    std::vector<uint8_t> mask(maskArr.Data(), maskArr.Data() + maskArr.ElementLength());
    MigrateResult r = pm_.migrateRange(start, nr, mask);
    Napi::Env env = info.Env();
    Napi::Float64Array from = Napi::Float64Array::New(env, r.moved.size());
    Napi::Float64Array to = Napi::Float64Array::New(env, r.moved.size());
    Napi::Uint8Array order = Napi::Uint8Array::New(env, r.moved.size());
    for (size_t i = 0; i < r.moved.size(); i++) {
      from[i] = double(r.moved[i].from);
      to[i] = double(r.moved[i].to);
      order[i] = uint8_t(r.moved[i].order);
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("from", from);
    o.Set("to", to);
    o.Set("order", order);
    o.Set("enomem", num(env, r.enomem));
    o.Set("pinned", num(env, r.pinned));
    return o;
  });
}

Napi::Value PhysMemJs::OfflineIsolatedPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "offlineIsolatedPages";
    return num(info.Env(), pm_.offlineIsolatedPages(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr")));
  });
}

Napi::Value PhysMemJs::RemoveRangeFromZone(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    const char* m = "removeRangeFromZone";
    pm_.removeRangeFromZone(argPfn(info, 0, m, "start"), argPfn(info, 1, m, "nr"));
    return info.Env().Undefined();
  });
}

// alloc(count, order, kind, nid, thisNode, highestZone) -> Float64Array of block head pfns (may be
// shorter than count when memory runs out).
Napi::Value PhysMemJs::Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "alloc";
    AllocRequest req;
    req.count = argU64(info, 0, m, "count", uint64_t(1) << 32);
    req.order = argInt(info, 1, m, "order", 0, MAX_ORDER);
    req.kind = argInt(info, 2, m, "kind", 0, NR_KINDS - 1);
    req.nid = argInt(info, 3, m, "nid", 0, MAX_NUMNODES - 1);
    req.thisNode = argBool(info, 4, m, "thisNode");
    req.highestZone = argInt(info, 5, m, "highestZone", -1, NR_ZONES - 1);
    std::vector<uint64_t> pfns = pm_.alloc(req);
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), pfns.size());
    double* d = out.Data();
    for (size_t i = 0; i < pfns.size(); i++) d[i] = double(pfns[i]);
    return out;
  });
}

Napi::Value PhysMemJs::Free(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> a = argF64(info, 0, "free", "pfns");
    pm_.freeBlocks(a.data(), a.size());
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Pin(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> a = argF64(info, 0, "pin", "pfns");
    pm_.setPinned(a.data(), a.size(), true);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Unpin(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> a = argF64(info, 0, "unpin", "pfns");
    pm_.setPinned(a.data(), a.size(), false);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Hwpoison(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    pm_.hwpoison(argPfn(info, 0, "hwpoison"));
    return info.Env().Undefined();
  });
}

// allocPage(pfn, kind): that free page, allocated as `kind`.
Napi::Value PhysMemJs::AllocPage(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    uint64_t pfn = argPfn(info, 0, "allocPage");
    pm_.allocPage(pfn, argInt(info, 1, "allocPage", "kind", 0, NR_KINDS - 1));
    return info.Env().Undefined();
  });
}

// zoneInfo(nid, zone) -> {start, spanned, present, managed, free, isolatedFree, hwpoison,
// allocated: Float64Array(kinds), nrFree: Float64Array(orders x lists)} or null when the zone never existed.
// The counters flows read on every step, without allocating: [start, spanned, present, managed, free].
Napi::Value PhysMemJs::ZoneCounters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    const char* m = "zoneCounters";
    const Zone* z = pm_.zone(argInt(info, 0, m, "nid", 0, MAX_NUMNODES - 1), argInt(info, 1, m, "zone", 0, NR_ZONES - 1));
    if (info.Length() <= 2 || !info[2].IsTypedArray() || info[2].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array ||
        info[2].As<Napi::Float64Array>().ElementLength() < 5)
      einval("zoneCounters: out must be a Float64Array of at least 5 elements");
    Napi::Float64Array out = info[2].As<Napi::Float64Array>();
    out[0] = z ? double(z->start) : 0;
    out[1] = z ? double(z->spanned) : 0;
    out[2] = z ? double(z->present) : 0;
    out[3] = z ? double(z->managed) : 0;
    out[4] = z ? double(z->freePages) : 0;
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::ZoneInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    const Zone* z = pm_.zone(argInt(info, 0, "zoneInfo", "nid", 0, MAX_NUMNODES - 1), argInt(info, 1, "zoneInfo", "zone", 0, NR_ZONES - 1));
    if (!z) return env.Null();
    Napi::Object o = Napi::Object::New(env);
    o.Set("start", num(env, z->start));
    o.Set("spanned", num(env, z->spanned));
    o.Set("present", num(env, z->present));
    o.Set("managed", num(env, z->managed));
    o.Set("free", num(env, z->freePages));
    o.Set("isolatedFree", num(env, z->isolatedFreePages));
    o.Set("hwpoison", num(env, z->hwpoisonPages));
    Napi::Float64Array alloc = Napi::Float64Array::New(env, NR_KINDS);
    for (int k = 0; k < NR_KINDS; k++) alloc[size_t(k)] = double(z->allocated[k]);
    o.Set("allocated", alloc);
    Napi::Float64Array nrFree = Napi::Float64Array::New(env, NR_ORDERS * NR_LISTS);
    for (int ord = 0; ord < NR_ORDERS; ord++)
      for (int l = 0; l < NR_LISTS; l++) nrFree[size_t(ord * NR_LISTS + l)] = double(z->nrFree[ord][l]);
    o.Set("nrFree", nrFree);
    return o;
  });
}

Napi::Value PhysMemJs::NodeSpan(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t start, spanned;
    pm_.nodeSpan(argInt(info, 0, "nodeSpan", "nid", 0, MAX_NUMNODES - 1), start, spanned);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("start", num(info.Env(), start));
    o.Set("spanned", num(info.Env(), spanned));
    return o;
  });
}

Napi::Value PhysMemJs::PageblockInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t pfn = argPfn(info, 0, "pageblockInfo");
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("migratetype", Napi::Number::New(info.Env(), pm_.pageblockMigratetype(pfn)));
    o.Set("isolated", Napi::Boolean::New(info.Env(), pm_.pageblockIsolated(pfn)));
    o.Set("zone", Napi::Number::New(info.Env(), pm_.pageZone(pfn)));
    return o;
  });
}

Napi::Value PhysMemJs::SectionInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t pfn = argPfn(info, 0, "sectionInfo");
    Napi::Object o = Napi::Object::New(info.Env());
    bool present = pm_.sectionPresent(pfn);
    o.Set("present", Napi::Boolean::New(info.Env(), present));
    o.Set("online", Napi::Boolean::New(info.Env(), pm_.sectionOnline(pfn)));
    o.Set("nid", Napi::Number::New(info.Env(), present ? pm_.sectionNid(pfn) : -1));
    return o;
  });
}

Napi::Value PhysMemJs::PageState(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint8_t state;
    int order;
    uint64_t head;
    pm_.pageState(argPfn(info, 0, "pageState"), state, order, head);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("state", Napi::Number::New(info.Env(), state));
    o.Set("order", Napi::Number::New(info.Env(), order));
    o.Set("head", num(info.Env(), head));
    return o;
  });
}

Napi::Value PhysMemJs::PageStates(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t start = argPfn(info, 0, "pageStates", "start");
    uint64_t nr = argU64(info, 1, "pageStates", "nr", uint64_t(1) << 30);
    pm_.checkRange(start, nr, "pageStates");  // before the result is sized by nr
    Napi::Uint8Array out = Napi::Uint8Array::New(info.Env(), size_t(nr));
    pm_.pageStates(start, nr, out.Data());
    return out;
  });
}

Napi::Value PhysMemJs::CheckInvariants(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    std::vector<std::string> bad = pm_.checkInvariants();
    Napi::Array a = Napi::Array::New(info.Env(), bad.size());
    for (size_t i = 0; i < bad.size(); i++) a[uint32_t(i)] = Napi::String::New(info.Env(), bad[i]);
    return a;
  });
}

Napi::Value PhysMemJs::NodeCount(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return Napi::Number::New(info.Env(), pm_.nodeCount()); });
}

Napi::Value PhysMemJs::NativeBytes(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value { return num(info.Env(), pm_.nativeBytes()); });
}

}  // namespace memhp
