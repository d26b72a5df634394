"""cffi build script for pyrun._syscalls: the Linux calls Python 3.11's os module lacks.

Each wrapper returns -1 and leaves errno set on failure; pyrun.runtime.linux turns
that into an OSError subclass that keeps errno and the path.
"""
from cffi import FFI

ffibuilder = FFI()
ffibuilder.cdef(
    """
    int mount(const char *source, const char *target, const char *filesystemtype,
              unsigned long mountflags, const void *data);
    int umount2(const char *target, int flags);
    int unshare(int flags);
    int setns(int fd, int nstype);
    int pyrun_pivot_root(const char *new_root, const char *put_old);
    int pyrun_bpf_prog_load(unsigned int prog_type, const void *insns, unsigned int insn_cnt,
                            const char *license, char *log_buf, unsigned int log_size, unsigned int log_level);
    int pyrun_bpf_prog_attach(int target_fd, int prog_fd, unsigned int attach_type, unsigned int flags);
    """
)
ffibuilder.set_source(
    "pyrun._syscalls",
    """
    #define _GNU_SOURCE
    #include <sched.h>
    #include <sys/mount.h>
    #include <sys/syscall.h>
    #include <unistd.h>
    #include <string.h>
    #include <stdint.h>
    #include <linux/bpf.h>

    /* glibc has no wrapper for pivot_root(2). */
    static int pyrun_pivot_root(const char *new_root, const char *put_old)
    {
        return (int)syscall(SYS_pivot_root, new_root, put_old);
    }

    /* glibc has no wrapper for bpf(2) either: BPF_PROG_LOAD returns the program's fd. */
    static int pyrun_bpf_prog_load(unsigned int prog_type, const void *insns, unsigned int insn_cnt,
                                   const char *license, char *log_buf, unsigned int log_size,
                                   unsigned int log_level)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.prog_type = prog_type;
        attr.insns = (uint64_t)(uintptr_t)insns;
        attr.insn_cnt = insn_cnt;
        attr.license = (uint64_t)(uintptr_t)license;
        attr.log_buf = (uint64_t)(uintptr_t)log_buf;
        attr.log_size = log_size;
        attr.log_level = log_level;
        return (int)syscall(SYS_bpf, BPF_PROG_LOAD, &attr, sizeof(attr));
    }

    /* BPF_PROG_ATTACH: attach prog_fd to the cgroup directory target_fd. */
    static int pyrun_bpf_prog_attach(int target_fd, int prog_fd, unsigned int attach_type, unsigned int flags)
    {
        union bpf_attr attr;
        memset(&attr, 0, sizeof(attr));
        attr.target_fd = target_fd;
        attr.attach_bpf_fd = prog_fd;
        attr.attach_type = attach_type;
        attr.attach_flags = flags;
        return (int)syscall(SYS_bpf, BPF_PROG_ATTACH, &attr, sizeof(attr));
    }
    """,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
