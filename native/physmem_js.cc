// N-API binding of PhysMem. Every argument is checked here, through the cursor in args.h (left to right:
// the first bad argument is the one reported), and a bad one throws KernelError EINVAL; kernel-style
// failures from the core (KError) become KernelError with their errno and pfn. Over 400 lines because
// it is the whole JavaScript surface of PhysMem, one short entry point per method, kept in one place.
#include "physmem_js.h"

#include <new>
#include <vector>

#include "args.h"

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
    Args a(info, "addSections");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    int nid = a.nid();
    pm_.addSections(start, nr, nid);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::RemoveSections(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "removeSections");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    pm_.removeSections(start, nr);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::InitRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "initRange");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    int nid = a.nid(), zt = a.zone();
    bool reserved = a.flag("reserved"), isolate = a.flag("isolate");
    int mt = a.integer("migratetype", 0, NR_PB_TYPES - 1);
    pm_.initRange(start, nr, nid, zt, reserved, isolate, mt);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::InitMemmapOnMemory(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "initMemmapOnMemory");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    int nid = a.nid(), zt = a.zone();
    pm_.initMemmapOnMemory(start, nr, nid, zt);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::OnlinePagesRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "onlinePagesRange");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    bool markOnline = a.flag("markOnline");
    pm_.onlinePagesRange(start, nr, markOnline);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::AdjustPresentPages(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "adjustPresentPages");
    uint64_t pfn = a.pfn();
    int64_t delta = a.delta("delta");
    pm_.adjustPresentPages(pfn, delta);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::MarkSectionsOnline(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "markSectionsOnline");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    pm_.markSectionsOnline(start, nr);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::IsolateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "isolateRange");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    int undoMt = a.integer("undoMigratetype", -1, NR_PB_TYPES - 1);
    pm_.isolateRange(start, nr, undoMt);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::UndoIsolateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "undoIsolateRange");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    int mt = a.integer("migratetype", -1, NR_PB_TYPES - 1);
    pm_.undoIsolateRange(start, nr, mt);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::TestPagesIsolated(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "testPagesIsolated");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    return Napi::Number::New(info.Env(), double(pm_.testPagesIsolated(start, nr)));
  });
}

Napi::Value PhysMemJs::ScanMovablePages(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "scanMovablePages");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    return Napi::Number::New(info.Env(), double(pm_.scanMovablePages(start, nr)));
  });
}

Napi::Value PhysMemJs::MigrateRange(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "migrateRange");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    std::vector<uint8_t> mask = a.nodeMask("nodeMask");
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
    Args a(info, "offlineIsolatedPages");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    return num(info.Env(), pm_.offlineIsolatedPages(start, nr));
  });
}

Napi::Value PhysMemJs::RemoveRangeFromZone(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "removeRangeFromZone");
    uint64_t start = a.pfn("start"), nr = a.count("nr");
    pm_.removeRangeFromZone(start, nr);
    return info.Env().Undefined();
  });
}

// alloc(count, order, kind, nid, thisNode, highestZone) -> Float64Array of block head pfns (may be
// shorter than count when memory runs out).
Napi::Value PhysMemJs::Alloc(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "alloc");
    AllocRequest req;
    req.count = a.count("count", uint64_t(1) << 32);
    req.order = a.integer("order", 0, MAX_ORDER);
    req.kind = a.integer("kind", 0, NR_KINDS - 1);
    req.nid = a.nid();
    req.thisNode = a.flag("thisNode");
    req.highestZone = a.integer("highestZone", -1, NR_ZONES - 1);
    std::vector<uint64_t> pfns = pm_.alloc(req);
    Napi::Float64Array out = Napi::Float64Array::New(info.Env(), pfns.size());
    double* d = out.Data();
    for (size_t i = 0; i < pfns.size(); i++) d[i] = double(pfns[i]);
    return out;
  });
}

Napi::Value PhysMemJs::Free(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> pfns = Args(info, "free").pfns();
    pm_.freeBlocks(pfns.data(), pfns.size());
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Pin(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> pfns = Args(info, "pin").pfns();
    pm_.setPinned(pfns.data(), pfns.size(), true);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Unpin(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    std::vector<double> pfns = Args(info, "unpin").pfns();
    pm_.setPinned(pfns.data(), pfns.size(), false);
    return info.Env().Undefined();
  });
}

Napi::Value PhysMemJs::Hwpoison(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    pm_.hwpoison(Args(info, "hwpoison").pfn());
    return info.Env().Undefined();
  });
}

// allocPage(pfn, kind): that free page, allocated as `kind`.
Napi::Value PhysMemJs::AllocPage(const Napi::CallbackInfo& info) {
  return guarded(info, [&] {
    Args a(info, "allocPage");
    uint64_t pfn = a.pfn();
    int kind = a.integer("kind", 0, NR_KINDS - 1);
    pm_.allocPage(pfn, kind);
    return info.Env().Undefined();
  });
}

// zoneInfo(nid, zone) -> {start, spanned, present, managed, free, isolatedFree, hwpoison,
// allocated: Float64Array(kinds), nrFree: Float64Array(orders x lists)} or null when the zone never existed.
// The counters flows read on every step, without allocating: [start, spanned, present, managed, free].
Napi::Value PhysMemJs::ZoneCounters(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "zoneCounters");
    int nid = a.nid(), zt = a.zone();
    const Zone* z = pm_.zone(nid, zt);
    Napi::Float64Array out = a.out("out", 5);
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
    Args a(info, "zoneInfo");
    int nid = a.nid(), zt = a.zone();
    const Zone* z = pm_.zone(nid, zt);
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
    pm_.nodeSpan(Args(info, "nodeSpan").nid(), start, spanned);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("start", num(info.Env(), start));
    o.Set("spanned", num(info.Env(), spanned));
    return o;
  });
}

Napi::Value PhysMemJs::PageblockInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t pfn = Args(info, "pageblockInfo").pfn();
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("migratetype", Napi::Number::New(info.Env(), pm_.pageblockMigratetype(pfn)));
    o.Set("isolated", Napi::Boolean::New(info.Env(), pm_.pageblockIsolated(pfn)));
    o.Set("zone", Napi::Number::New(info.Env(), pm_.pageZone(pfn)));
    return o;
  });
}

Napi::Value PhysMemJs::SectionInfo(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    uint64_t pfn = Args(info, "sectionInfo").pfn();
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
    pm_.pageState(Args(info, "pageState").pfn(), state, order, head);
    Napi::Object o = Napi::Object::New(info.Env());
    o.Set("state", Napi::Number::New(info.Env(), state));
    o.Set("order", Napi::Number::New(info.Env(), order));
    o.Set("head", num(info.Env(), head));
    return o;
  });
}

Napi::Value PhysMemJs::PageStates(const Napi::CallbackInfo& info) {
  return guarded(info, [&]() -> Napi::Value {
    Args a(info, "pageStates");
    uint64_t start = a.pfn("start");
    uint64_t nr = a.count("nr", uint64_t(1) << 30);
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
