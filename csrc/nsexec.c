/*
 * pyrun/bin/nsexec: the second half of `pyrun exec POD CTR -- CMD` (pyrun.runtime.fastexec), what
 * runc's nsenter does for `runc exec`. The CLI has found the container, checked that it runs, and
 * turned its exec profile (containers/<id>/exec.json, written when it started) into these arguments;
 * the command's environment is this program's own.
 *
 *   nsexec --container NAME --pid PID --start-time TICKS --uid U --gid G [--groups G,G...]
 *          --caps HEX --ambient HEX --nnp 0|1 [--seccomp-bpf FILE] [--rlimit RES:SOFT:HARD]...
 *          [--cgroup-procs FILE]... --cwd DIR -- CMD [ARG...]
 *
 *   1. pidfd_open(PID), then check /proc/PID/stat's start time is TICKS (so the pidfd is the
 *      container's workload, not a process that reused its pid) and that it is not a zombie;
 *   2. open /proc/PID/ns/{ipc,uts,net,pid,cgroup,mnt}; the workload must still run (pidfd);
 *   3. read the seccomp filter and cap_last_cap (host files: before the mount namespace changes);
 *   4. write 0 to each cgroup.procs (join the container's cgroups);
 *   5. setns(2) into each namespace that differs from ours, the mount namespace last;
 *   6. fork (a PID namespace applies to children only); the child becomes the container's process
 *      (csrc/become.c: rlimits, seccomp, bounding set, setuid, capabilities, no_new_privs, chdir)
 *      and execs CMD; this process forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to it (not
 *      those a terminal sends to its whole process group, which the child gets anyway), waits, and
 *      exits with CMD's code: 128+N if a signal N ended it.
 *
 * Fail closed: a step that fails (an argument this program cannot parse included) ends it with a
 * message naming the step on stderr and exit code 126 before CMD runs (127 if CMD is not found).
 */
#define _GNU_SOURCE
#include "become.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define RETRY(call) ({ long r_; do r_ = (call); while (r_ < 0 && errno == EINTR); r_; })
#define MAX_CGROUPS 16

extern char **environ;

static const char *const ns_kinds[] = { "ipc", "uts", "net", "pid", "cgroup", "mnt" };
#define N_NS (sizeof(ns_kinds) / sizeof(ns_kinds[0]))

static const char *container = "?";
static volatile pid_t child;

#define EXIT_INVALID_STATE 5 /* pyrun.errors.InvalidState's */

static void __attribute__((noreturn)) fail(int code, const char *step, const char *detail)
{
	fprintf(stderr, "pyrun: error: exec in container %s: %s: %s\n", container, step, detail);
	exit(code);
}

static void __attribute__((noreturn)) die(const char *step, const char *detail)
{
	fail(126, step, detail);
}

static unsigned long long number(const char *text, int base, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, base);
	if (errno || end == text || *end || *text == '-')
		die("arguments", what);
	return v;
}

/* --rlimit RES:SOFT:HARD (-1: unlimited) */
static void parse_rlimit(struct creds *c, const char *spec)
{
	char buf[96], *soft, *hard;
	unsigned long long r;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf) || !(soft = strchr(buf, ':')) ||
	    !(hard = strchr(soft + 1, ':')))
		die("arguments", "bad --rlimit");
	*soft++ = 0;
	*hard++ = 0;
	if ((r = number(buf, 10, "bad --rlimit")) >= RLIM_NLIMITS)
		die("arguments", "bad --rlimit");
	c->limits[r].rlim_cur = strcmp(soft, "-1") ? number(soft, 10, "bad --rlimit") : RLIM_INFINITY;
	c->limits[r].rlim_max = strcmp(hard, "-1") ? number(hard, 10, "bad --rlimit") : RLIM_INFINITY;
	c->rlimits_set |= 1ULL << r;
}

static void parse_groups(struct creds *c, char *list)
{
	for (char *g = strtok(list, ","); g; g = strtok(NULL, ",")) {
		if (c->ngroups == MAX_GROUPS)
			die("arguments", "too many --groups");
		c->groups[c->ngroups++] = (gid_t)number(g, 10, "bad --groups");
	}
}

/* The workload's state and start time from /proc/<pid>/stat (fields 3 and 22); -1 if it cannot be read. */
static int stat_of(pid_t pid, char *state, unsigned long long *start)
{
	char path[64], buf[1024], *p;
	int i;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if (read_small_file(path, buf, sizeof(buf)) < 0 || !(p = strrchr(buf, ')')))
		return -1;
	p += 2;
	*state = *p;
	for (i = 0; i < 19 && p; i++)
		if ((p = strchr(p, ' ')))
			p++;
	if (!p)
		return -1;
	*start = strtoull(p, NULL, 10);
	return 0;
}

static int still_running(int pidfd)
{
	struct pollfd p = { pidfd, POLLIN, 0 };

	return RETRY(poll(&p, 1, 0)) == 0;
}

static void forward(int sig, siginfo_t *info, void *context)
{
	(void)context;
	if (child > 0 && info->si_code <= 0) /* sent with kill(2) and the like: not the terminal's */
		kill(child, sig);
}

int main(int argc, char **argv)
{
	static struct creds c;
	static struct bpf_prog filter;
	const char *cgroups[MAX_CGROUPS], *bpf_path = NULL, *cwd = NULL;
	char **cmd = NULL, state;
	int ncgroups = 0, ns[N_NS], pidfd, cap_last, status, have[6] = { 0 };
	unsigned long long start_time = 0, started;
	pid_t pid = 0;
	struct sigaction sa;
	sigset_t none;

	/* Python (the CLI) ignores these and ignored signals stay ignored across execve: CMD must not inherit that */
	signal(SIGPIPE, SIG_DFL);
	signal(SIGXFSZ, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int i = 1; i < argc; i += 2) {
		const char *name = argv[i], *value = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(name, "--")) {
			cmd = argv + i + 1;
			break;
		}
		if (!value)
			die("arguments", name);
		if (!strcmp(name, "--container"))
			container = value;
		else if (!strcmp(name, "--pid"))
			pid = (pid_t)number(value, 10, "bad --pid"), have[0] = 1;
		else if (!strcmp(name, "--start-time"))
			start_time = number(value, 10, "bad --start-time"), have[1] = 1;
		else if (!strcmp(name, "--uid"))
			c.uid[0] = c.uid[1] = c.uid[2] = (unsigned)number(value, 10, "bad --uid"), have[2] = 1;
		else if (!strcmp(name, "--gid"))
			c.gid[0] = c.gid[1] = c.gid[2] = (unsigned)number(value, 10, "bad --gid"), have[3] = 1;
		else if (!strcmp(name, "--groups"))
			parse_groups(&c, argv[i + 1]);
		else if (!strcmp(name, "--caps"))
			c.bnd = c.eff = c.prm = number(value, 16, "bad --caps"), have[4] = 1;
		else if (!strcmp(name, "--ambient"))
			c.inh = c.amb = number(value, 16, "bad --ambient");
		else if (!strcmp(name, "--nnp"))
			c.nnp = (int)number(value, 10, "bad --nnp");
		else if (!strcmp(name, "--seccomp-bpf"))
			bpf_path = value;
		else if (!strcmp(name, "--rlimit"))
			parse_rlimit(&c, value);
		else if (!strcmp(name, "--cgroup-procs") && ncgroups < MAX_CGROUPS)
			cgroups[ncgroups++] = value;
		else if (!strcmp(name, "--cgroup-procs"))
			die("arguments", "too many --cgroup-procs"); /* never an exec outside one of its cgroups */
		else if (!strcmp(name, "--cwd"))
			cwd = value, have[5] = 1;
		else
			die("arguments", name);
	}
	for (int i = 0; i < 6; i++)
		if (!have[i])
			die("arguments", "--pid, --start-time, --uid, --gid, --caps and --cwd are required");
	if (!cmd || !cmd[0])
		die("arguments", "no command");
	if ((c.amb & ~c.prm) || c.nnp > 1)
		die("arguments", "bad --ambient or --nnp");

	/* 1, 2: the workload, then its namespaces, then the workload again */
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd < 0 || stat_of(pid, &state, &started) < 0 || started != start_time || state == 'Z' || state == 'X')
		fail(EXIT_INVALID_STATE, "find the container's process", "the container exited");
	for (unsigned i = 0; i < N_NS; i++) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, ns_kinds[i]);
		if ((ns[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			die("open namespaces", strerror(errno));
	}
	if (!still_running(pidfd))
		fail(EXIT_INVALID_STATE, "open namespaces", "the container exited");
	/* 3 */
	if (bpf_path && load_bpf_file(bpf_path, &filter) < 0)
		die("seccomp filter", strerror(errno));
	if (!(cap_last = read_cap_last_cap()))
		die("capabilities", "cannot read /proc/sys/kernel/cap_last_cap");
	/* 4 */
	for (int i = 0; i < ncgroups; i++) {
		int fd = open(cgroups[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0 || RETRY(write(fd, "0", 1)) != 1) {
			fprintf(stderr, "pyrun: error: exec in container %s: join cgroup %s: %s\n", container, cgroups[i],
				strerror(errno));
			exit(126);
		}
		close(fd);
	}
	/* 5 */
	for (unsigned i = 0; i < N_NS; i++) {
		char self[64];
		struct stat mine, theirs;

		snprintf(self, sizeof(self), "/proc/self/ns/%s", ns_kinds[i]);
		if (stat(self, &mine) < 0 || fstat(ns[i], &theirs) < 0)
			die("setns", strerror(errno));
		if ((mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev) && setns(ns[i], 0) < 0) {
			fprintf(stderr, "pyrun: error: exec in container %s: setns %s: %s\n", container, ns_kinds[i],
				strerror(errno));
			exit(126);
		}
		close(ns[i]);
	}
	/* 6 */
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (int i = 0, sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT }; i < 4; i++)
		sigaction(sigs[i], &sa, NULL); /* before the fork: none may end this process and leave CMD behind */
	child = fork();
	if (child < 0)
		die("fork", strerror(errno));
	if (child == 0) {
		close(pidfd);
		become_and_exec(&c, &filter, cap_last, cwd, NULL, cmd, environ, 0, "pyrun: error: exec");
	}
	if (RETRY(waitpid(child, &status, 0)) < 0)
		die("wait", strerror(errno));
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
