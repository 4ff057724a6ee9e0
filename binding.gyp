{
  "targets": [
    {
      "target_name": "clowder_gcm",
      "sources": ["native/gcm.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
