/*
 * become: what a process entering a running container does last, in C: take the container's
 * credentials, resource limits, capabilities, no_new_privs and seccomp filter (the order of
 * pyrun.runtime.finalize) and exec the command. Shared by the monitor's exec probes and hooks
 * (csrc/supervise.c) and `pyrun exec`'s helper (csrc/nsexec.c).
 */
#ifndef PYRUN_BECOME_H
#define PYRUN_BECOME_H

#include <linux/filter.h>
#include <stddef.h>
#include <sys/resource.h>
#include <sys/types.h>

#define MAX_GROUPS 1024
#define MAX_BPF 4096 /* BPF_MAXINSNS */

struct creds {
	unsigned uid[3], gid[3]; /* real, effective, saved */
	gid_t groups[MAX_GROUPS];
	int ngroups, nnp, seccomp;
	unsigned long long inh, prm, eff, bnd, amb;
	unsigned long long rlimits_set; /* bit r: set limits[r] (the others stay as inherited) */
	struct rlimit limits[RLIM_NLIMITS];
};

struct bpf_prog {
	struct sock_filter insns[MAX_BPF];
	unsigned short len; /* 0: no filter */
};

/* The whole of a small file (up to size - 1 bytes; -1 if it is longer or unreadable), NUL-terminated. */
int read_small_file(const char *path, char *buf, size_t size);
/* A BPF program libseccomp exported (pyrun.runtime.seccomp.export_bpf) into prog; -1 with errno
 * (EINVAL: not a filter, E2BIG: longer than BPF_MAXINSNS) if it cannot be had. */
int load_bpf_file(const char *path, struct bpf_prog *prog);
/* /proc/sys/kernel/cap_last_cap; 0 if it cannot be read. */
int read_cap_last_cap(void);
/* PR_SET_PDEATHSIG SIGKILL, and _exit(126) if `parent` (not 0) is no longer the parent. */
void die_with_parent(pid_t parent);
/*
 * Become the container's process and exec argv with env (execvp: PATH from env):
 *   rlimits, seccomp (without no_new_privs), bounding set, keep-caps, setgroups/setresgid/setresuid,
 *   capabilities (effective, permitted, inheritable; ambient raised), no_new_privs + seccomp,
 *   PR_SET_PDEATHSIG (parent not 0), chdir(workdir) (or fallback_dir if not NULL), exec.
 * Never returns: a failed step is reported on stderr as "<who>: <step>: <error>" and ends the
 * process with 126 (127: the command was not found).
 */
void become_and_exec(const struct creds *c, const struct bpf_prog *filter, int cap_last, const char *workdir,
		     const char *fallback_dir, char **argv, char **env, pid_t parent, const char *who)
	__attribute__((noreturn));

#endif
