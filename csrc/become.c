/* See become.h. No allocation. */
#define _GNU_SOURCE
#include "become.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define RETRY(call) ({ long r_; do r_ = (call); while (r_ < 0 && errno == EINTR); r_; })

extern char **environ;

int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t len = 0;
	ssize_t n = 1;
	char extra;

	if (fd < 0)
		return -1;
	while (n > 0 && len < size - 1)
		if ((n = RETRY(read(fd, buf + len, size - 1 - len))) > 0)
			len += n;
	if (n > 0 && RETRY(read(fd, &extra, 1)) != 0)
		n = -1; /* more than fits: refuse rather than cut it short */
	close(fd);
	if (n < 0)
		return -1;
	buf[len] = 0;
	return (int)len;
}

int load_bpf_file(const char *path, struct bpf_prog *prog)
{
	char extra;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	prog->len = 0;
	if (fd < 0)
		return -1;
	n = RETRY(read(fd, prog->insns, sizeof(prog->insns)));
	if (n == (ssize_t)sizeof(prog->insns) && RETRY(read(fd, &extra, 1)) != 0) {
		close(fd);
		errno = E2BIG;
		return -1;
	}
	close(fd);
	if (n <= 0 || n % sizeof(struct sock_filter)) {
		errno = n < 0 ? errno : EINVAL;
		return -1;
	}
	prog->len = (unsigned short)(n / sizeof(struct sock_filter));
	return 0;
}

int read_cap_last_cap(void)
{
	char text[16];
	int last;

	if (read_small_file("/proc/sys/kernel/cap_last_cap", text, sizeof(text)) <= 0 || sscanf(text, "%d", &last) != 1 ||
	    last < 1 || last > 63)
		return 0;
	return last;
}

/* (A parent outside the caller's PID namespace shows as 0.) */
void die_with_parent(pid_t parent)
{
	pid_t now;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || ((now = getppid()) != parent && now != 0))
		_exit(126);
}

static void __attribute__((noreturn)) fail(const char *who, const char *step, int code)
{
	fprintf(stderr, "%s: %s: %s\n", who, step, strerror(errno));
	_exit(code);
}

static int load_seccomp(const struct bpf_prog *filter)
{
	struct sock_fprog prog = { filter->len, (struct sock_filter *)filter->insns };

	return filter->len ? prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) : 0;
}

/* The container's limits; a raise this process may not make (no CAP_SYS_RESOURCE) keeps the current hard
 * limit, as pyrun.runtime.security.apply_rlimits does. */
static int set_limits(const struct creds *c)
{
	for (int r = 0; r < RLIM_NLIMITS; r++) {
		struct rlimit want = c->limits[r], have;

		if (!(c->rlimits_set & (1ULL << r)))
			continue;
		if (setrlimit(r, &want) == 0)
			continue;
		if (getrlimit(r, &have) < 0)
			return -1;
		if (want.rlim_cur == RLIM_INFINITY || (have.rlim_max != RLIM_INFINITY && want.rlim_cur > have.rlim_max))
			want.rlim_cur = have.rlim_max;
		want.rlim_max = have.rlim_max;
		if (setrlimit(r, &want) < 0)
			return -1;
	}
	return 0;
}

void become_and_exec(const struct creds *c, const struct bpf_prog *filter, int cap_last, const char *workdir,
		     const char *fallback_dir, char **argv, char **env, pid_t parent, const char *who)
{
	struct __user_cap_header_struct head = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct data[2] = {
		{ (unsigned)c->eff, (unsigned)c->prm, (unsigned)c->inh },
		{ (unsigned)(c->eff >> 32), (unsigned)(c->prm >> 32), (unsigned)(c->inh >> 32) },
	};

	if (set_limits(c) < 0)
		fail(who, "rlimits", 126);
	if (!c->nnp && load_seccomp(filter) < 0)
		fail(who, "seccomp", 126);
	for (int cap = 0; cap <= cap_last; cap++)
		if (!(c->bnd & (1ULL << cap)) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
			fail(who, "bounding set", 126);
	if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups(c->ngroups, c->groups) < 0 ||
	    setresgid(c->gid[0], c->gid[1], c->gid[2]) < 0 || setresuid(c->uid[0], c->uid[1], c->uid[2]) < 0)
		fail(who, "setuid", 126);
	if (syscall(SYS_capset, &head, data) < 0 || prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0 ||
	    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail(who, "capabilities", 126);
	for (int cap = 0; cap < 64; cap++)
		if ((c->amb & (1ULL << cap)) && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
			fail(who, "capabilities (ambient)", 126);
	if (c->nnp && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(who, "no_new_privs", 126);
	if (c->nnp && load_seccomp(filter) < 0)
		fail(who, "seccomp", 126);
	/* again after the credential change, which clears it; the parent (outside this PID namespace) shows as 0 */
	if (parent)
		die_with_parent(parent);
	if (chdir(workdir) < 0 && (!fallback_dir || chdir(fallback_dir) < 0)) {
		int err = errno;

		fprintf(stderr, "%s: working directory %s in the container: %s\n", who, workdir, strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	environ = env;
	execvp(argv[0], argv);
	fprintf(stderr, "%s: exec %s: %s\n", who, argv[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}
