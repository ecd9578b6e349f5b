{
  "targets": [
    {
      "target_name": "pty_relay",
      "sources": ["src/pty_relay.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "conditions": [
        ["OS!='linux'", { "type": "none", "sources!": ["src/pty_relay.c"] }]
      ]
    }
  ]
}
