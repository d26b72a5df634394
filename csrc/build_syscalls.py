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

    /* glibc has no wrapper for pivot_root(2). */
    static int pyrun_pivot_root(const char *new_root, const char *put_old)
    {
        return (int)syscall(SYS_pivot_root, new_root, put_old);
    }
    """,
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
