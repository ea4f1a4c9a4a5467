{
  "variables": {
    "sanitize%": 0
  },
  "targets": [
    {
      "target_name": "memhp",
      "sources": [
        "native/sparse.cc",
        "native/page_alloc.cc",
        "native/page_isolation.cc",
        "native/memory_hotplug.cc",
        "native/invariants.cc",
        "native/physmem_js.cc",
        "native/addon.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      # -fvisibility=hidden -fno-semantic-interposition: the module exports only its N-API entry points,
      # so GCC may inline and call the allocator's hot functions directly instead of through the PLT.
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden", "-fno-semantic-interposition"],
      "conditions": [
        ["sanitize==1", {
          "cflags_cc": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1"],
          "ldflags": ["-fsanitize=address,undefined"]
        }]
      ]
    }
  ]
}
