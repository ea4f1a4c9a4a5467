// Addon entry point: registers the JS error class and the PhysMem class.
#include <napi.h>
#include "errors.h"
#include "physmem_js.h"

namespace memhp {

// Called once by lib/native/addon.ts with the KernelError constructor, so that native code throws
// the same typed errors as the TypeScript side.
static Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "setErrorClass(KernelError): a constructor is required");
  }
  auto* data = env.GetInstanceData<AddonData>();
  data->errorClass = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  PhysMemJs::Init(env, exports);
  return exports;
}

}  // namespace memhp

static Napi::Object InitAddon(Napi::Env env, Napi::Object exports) { return memhp::Init(env, exports); }

NODE_API_MODULE(NODE_GYP_MODULE_NAME, InitAddon)
