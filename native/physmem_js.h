// N-API binding of PhysMem: argument checking and bulk conversion only; no page logic here.
#pragma once
#include <napi.h>
#include "physmem.h"

namespace memhp {

struct AddonData {
  Napi::FunctionReference errorClass;  // KernelError, registered by lib/native/addon.ts
};

class PhysMemJs : public Napi::ObjectWrap<PhysMemJs> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit PhysMemJs(const Napi::CallbackInfo& info);

 private:
  PhysMem pm_;
#define MEMHP_METHOD(name) Napi::Value name(const Napi::CallbackInfo& info);
  MEMHP_METHOD(AddSections)
  MEMHP_METHOD(RemoveSections)
  MEMHP_METHOD(InitRange)
  MEMHP_METHOD(InitMemmapOnMemory)
  MEMHP_METHOD(OnlinePagesRange)
  MEMHP_METHOD(AdjustPresentPages)
  MEMHP_METHOD(MarkSectionsOnline)
  MEMHP_METHOD(ZoneCounters)
  MEMHP_METHOD(IsolateRange)
  MEMHP_METHOD(UndoIsolateRange)
  MEMHP_METHOD(TestPagesIsolated)
  MEMHP_METHOD(ScanMovablePages)
  MEMHP_METHOD(MigrateRange)
  MEMHP_METHOD(OfflineIsolatedPages)
  MEMHP_METHOD(RemoveRangeFromZone)
  MEMHP_METHOD(Alloc)
  MEMHP_METHOD(Free)
  MEMHP_METHOD(Pin)
  MEMHP_METHOD(Unpin)
  MEMHP_METHOD(Hwpoison)
  MEMHP_METHOD(AllocPage)
  MEMHP_METHOD(ZoneInfo)
  MEMHP_METHOD(NodeSpan)
  MEMHP_METHOD(PageblockInfo)
  MEMHP_METHOD(SectionInfo)
  MEMHP_METHOD(PageState)
  MEMHP_METHOD(PageStates)
  MEMHP_METHOD(CheckInvariants)
  MEMHP_METHOD(NativeBytes)
  MEMHP_METHOD(NodeCount)
#undef MEMHP_METHOD
};

}  // namespace memhp
