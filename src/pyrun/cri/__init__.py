"""pyrun's CRI shim: the Kubernetes Container Runtime Interface over gRPC on a unix socket.

  translate.py      CRI messages <-> spec objects and records, security contexts included (pure)
  filters.py        List* filters and label selectors (pure)
  errors.py         the one place errors become gRPC status codes
  service.py        RuntimeService + ImageService on pyrun.runtime.api.Runtime, the one way into the
                    runtime (the CLI's too): exec, logs, stats, updates and port-forward live there
  stats.py          runtime usage samples -> CRI stats messages
  server.py         the grpc server: runtime.v1 and runtime.v1alpha2 on one socket, one log line per RPC
  streaming.py      the HTTP server behind Exec/Attach/PortForward URLs: single-use tokens (60 s)
  websocket.py      a minimal RFC 6455 implementation (handshake, framing) on the standard library
  spdy.py           SPDY/3.1 frames, header compression and a server session (as moby/spdystream)
  remotecommand.py  exec and attach sessions (remotecommand over WebSocket: v5/v4/channel.k8s.io, or SPDY)
  portforward.py    port-forward sessions (WebSocket channels or SPDY streams, a data/error pair per port);
                    the runtime dials the pod side (a thread that joined the pod's netns), no helper process

Streaming speaks WebSocket (crictl >= 1.30) and SPDY/3.1 (a kubelet proxying kubectl, older crictl).
Attach writes stdin to the workload through the pipe or pty its monitor holds (stdin, tty containers).
Only `pyrun cri serve` imports this package (grpc costs ~85 ms to import).
"""
