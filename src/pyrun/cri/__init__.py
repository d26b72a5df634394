"""pyrun's CRI shim: the Kubernetes Container Runtime Interface over gRPC on a unix socket.

  translate.py  CRI messages <-> spec objects and records (pure)
  filters.py    List* filters and label selectors (pure)
  errors.py     the one place errors become gRPC status codes
  service.py    RuntimeService + ImageService on top of pyrun.runtime (API version agnostic)
  stats.py      cgroup stats -> CRI stats messages
  server.py     the grpc server: runtime.v1 and runtime.v1alpha2 on one socket, one log line per RPC

Only `pyrun cri serve` imports this package (grpc costs ~85 ms to import).
"""
