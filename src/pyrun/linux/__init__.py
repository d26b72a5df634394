"""The platform layer: every Linux primitive pyrun uses, and nothing above it.

  syscalls   mount, pivot_root, unshare, setns, sethostname, mknod, cgroup file writes
             (the only importer of the cffi module pyrun._syscalls; explain mode speaks here)
  mounts     reading /proc/self/mountinfo, unmounting what pyrun left under a directory
  caps       capability names and numbers, the bounding/effective/ambient sets
  procs      a process known by (pid, start time): alive, signal, wait, terminate

Packages above (runtime, cgroups, netns, images, spec) import from here; this package
imports only pyrun.errors and pyrun.explain.
"""
