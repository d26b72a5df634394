/*
 * supervise: what the C monitor does for a container of a `pyrun pod create` pod with a
 * restartPolicy other than Never, probes or lifecycle hooks (pyrun.runtime.supervise plans it;
 * CRI containers never get it: the kubelet does this work itself).
 *
 *   restart     when the workload exits and the policy says so: the kubelet's back-off (the first
 *               restart at once, then 10 s doubling up to 5 min; reset after 10 min of running),
 *               waiting meanwhile (sup.json: state waiting, reason CrashLoopBackOff), then
 *               execve() of the Python monitor in this same process (pid and ctl.sock kept):
 *               `python -I -m pyrun.runtime.monitor --restart --cdir D --ctl FD --sup-state S`;
 *               it forks a new init and execs this program again with --sup-state S.
 *   probes      liveness, readiness, startup on their timers (initialDelaySeconds, periodSeconds,
 *               timeoutSeconds, success/failureThreshold; startup holds the other two back):
 *                 exec  fork; join the workload's cgroups and namespaces (ipc uts net pid mnt);
 *                       fork again (the PID namespace); take the workload's credentials from
 *                       /proc/<pid>/status (uid, gid, groups, bounding/permitted/effective/
 *                       inheritable/ambient capabilities, no_new_privs; every field or none),
 *                       its resource limits (/proc/<pid>/limits) and the container's seccomp
 *                       filter (--seccomp-bpf, exported by the Python monitor); exec the command
 *                       with the workload's environment. Exit 0 is success.
 *                 tcp   connect(2) from a socket made inside the pod's network namespace (setns
 *                       there, socket(), setns back: this process is single-threaded).
 *                 http  the same connection, one GET; a status 200-399 is success.
 *                 https, grpc: a short-lived helper, `python -m pyrun.runtime.probehelper`, forked
 *                       into the pod's network namespace (TLS and HTTP/2 stay out of this program).
 *               A liveness or startup failure kills the workload (SIGTERM, SIGKILL after the grace
 *               period); the restart policy then applies.
 *   hooks       postStart right after the start (probes wait for it; failure kills the workload);
 *               preStop on a "stop" request, then SIGTERM, SIGKILL at the end of the grace period;
 *               after a stop nothing restarts.
 *   fail closed what cannot be run as the container would run it (no seccomp filter for a
 *               confined workload, a pod network namespace that cannot be opened, credentials
 *               that cannot be read, a spec this program cannot parse) fails with a message in
 *               sup.json; it never runs with more privilege nor from the host's network
 *               namespace, and the container is not ready.
 *   stop, kill  ctl.sock requests: "stop" runs preStop, then SIGTERM, SIGKILL after the grace
 *               period; "kill" (pod rm -f, gc) skips preStop and kills at once.
 *   status      sup.json, atomically (temp + rename): restart_count, last_state, ready, started,
 *               probes, log offsets; merged by pyrun.runtime.state.read_status.
 *
 * No allocation: fixed buffers per probe.
 */
#define _GNU_SOURCE
#include "supervise.h"
#include "become.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/capability.h>
#include <linux/close_range.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RETRY(call) ({ long r_; do r_ = (call); while (r_ < 0 && errno == EINTR); r_; })

enum { A_EXEC, A_TCP, A_HTTP, A_HTTPS, A_GRPC };
enum { R_UNKNOWN = -1, R_FAILURE = 0, R_SUCCESS = 1 };
enum { LIVENESS, READINESS, STARTUP, POSTSTART, PRESTOP, N_ACTIONS };
static const char *const action_names[N_ACTIONS] = { "liveness", "readiness", "startup", "post_start", "pre_stop" };
static const char *const action_args[N_ACTIONS] = { "--probe-liveness", "--probe-readiness", "--probe-startup",
						     "--hook-poststart", "--hook-prestop" };

struct action {
	int configured, bad, type, port; /* bad: a spec this program cannot run: fails, never ready */
	int initial, period, timeout, success_thr, failure_thr;
	char host[64], path[1024], headers[2048];
	char words[4096];
	char *cmd[64];
	/* a run in progress */
	int running, pidfd, outfd, sock, phase; /* phase: 1 connecting, 2 reading the reply */
	pid_t pid;
	long long due_ms, deadline_ms;
	char rbuf[1024];
	size_t rlen;
	/* results */
	int successes, failures, result, done;
	char message[256];
	long long at_ns;
};

static struct action actions[N_ACTIONS];
static int supervising, policy; /* 0 never, 1 onfailure, 2 always */
static int grace = 30, ctl_fd = -1, netns_fd = -1, host_netns_fd = -1;
static const int *log_fd; /* the monitor's: reopen-log replaces it */
static const char *cdir, *python, *pod_ip = "127.0.0.1";
static char cgroup_words[4096], *cgroup_procs[16], workdir[1024] = "/";
static struct bpf_prog bpf; /* the container's seccomp filter (--seccomp-bpf) */
/* set up problems that make actions fail closed (a message instead of a run with more privilege) */
static const char *exec_broken, *net_broken;
static int cap_last = -1;
static pid_t monitor_pid;
static long long child_pid, started_at, start_ms;
static int started, ready, poststart_done, stopping;
static long long term_at_ms = -1, kill_at_ms = -1;
/* carried across restarts in --sup-state */
static int restarts, backoff_s, wait_s, last_code = -1;
static long long last_started_at, last_finished_at, prev_log_start, log_start;
static char last_reason[32] = "-", last_signal[32] = "-";

static void warn(const char *what)
{
	fprintf(stderr, "pyrun monitor: supervise: %s: %s\n", what, strerror(errno));
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

static long long real_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *sup_arg(int argc, char **argv, const char *name)
{
	for (int i = 1; i + 1 < argc; i += 2)
		if (!strcmp(argv[i], name))
			return argv[i + 1];
	return NULL;
}

/* Hex (or "-" for empty) into out; returns 0 if it does not fit or is not hex. */
static int unhex(const char *hex, size_t n, char *out, size_t size)
{
	size_t len = 0;

	if (n == 1 && hex[0] == '-')
		n = 0;
	if (n % 2 || n / 2 >= size)
		return 0;
	for (size_t i = 0; i < n; i += 2) {
		char pair[3] = { hex[i], hex[i + 1], 0 };
		char *end;
		long v = strtol(pair, &end, 16);

		if (*end)
			return 0;
		out[len++] = (char)v;
	}
	out[len] = 0;
	return 1;
}

/* "hex,hex,..." into NUL-separated words in buf, pointers in vec (NULL-terminated). */
static int unhex_list(const char *list, char *buf, size_t size, char **vec, int max)
{
	int count = 0;
	size_t used = 0;

	while (list && *list && count + 1 < max) {
		const char *comma = strchr(list, ',');
		size_t n = comma ? (size_t)(comma - list) : strlen(list);

		if (used >= size || !unhex(list, n, buf + used, size - used))
			return 0;
		vec[count++] = buf + used;
		used += strlen(buf + used) + 1;
		list = comma ? comma + 1 : NULL;
	}
	vec[count] = NULL;
	return !(list && *list); /* words left over: too many */
}

/* "initial period timeout success failure TYPE ARGS..." (pyrun.runtime.supervise.supervise_argv). */
static int parse_action(struct action *a, const char *spec)
{
	static char w1[8200], w2[4200], w3[4200], w4[4200];
	char type[16];
	int used = -1, n, words;

	w1[0] = w2[0] = w3[0] = w4[0] = 0;
	n = sscanf(spec, "%d %d %d %d %d %15s %8199s %4199s %4199s %4199s%n", &a->initial, &a->period, &a->timeout,
		   &a->success_thr, &a->failure_thr, type, w1, w2, w3, w4, &used);
	if (n < 7 || a->period < 1 || a->timeout < 1 || a->success_thr < 1 || a->failure_thr < 1 || a->initial < 0)
		return 0;
	if (!strcmp(type, "exec")) {
		a->type = A_EXEC;
		words = 1;
	} else if (!strcmp(type, "tcp") || !strcmp(type, "grpc")) {
		a->type = strcmp(type, "tcp") ? A_GRPC : A_TCP;
		words = 2;
	} else if (!strcmp(type, "http") || !strcmp(type, "https")) {
		a->type = strcmp(type, "https") ? A_HTTP : A_HTTPS;
		words = 4;
	} else {
		return 0;
	}
	/* exactly the words of this type, nothing cut short or left over */
	if (n != 6 + words || (n == 10 ? used < 0 || spec[used] : strlen(w1) >= 8199 || strlen(w2) >= 4199))
		return 0;
	if (a->type == A_EXEC)
		return unhex_list(w1, a->words, sizeof(a->words), a->cmd, 64) && a->cmd[0];
	char *end;
	long port = strtol(w1, &end, 10);
	if (*end || port < 1 || port > 65535)
		return 0;
	a->port = (int)port;
	if (a->type == A_TCP)
		return unhex(w2, strlen(w2), a->host, sizeof(a->host));
	if (a->type == A_GRPC)
		return unhex(w2, strlen(w2), a->path, sizeof(a->path)); /* the service */
	return unhex(w2, strlen(w2), a->host, sizeof(a->host)) && unhex(w3, strlen(w3), a->path, sizeof(a->path)) &&
	       unhex(w4, strlen(w4), a->headers, sizeof(a->headers));
}

static void update_ready(void);

/* --- status: sup.json ------------------------------------------------------------------------ */

/* JSON string contents: quotes, backslashes, control and non-ASCII bytes made safe. */
static void json_text(char *out, size_t size, const char *in)
{
	size_t o = 0;

	for (; *in && o + 7 < size; in++) {
		unsigned char c = (unsigned char)*in;

		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			o += snprintf(out + o, size - o, c < 0x20 ? "\\u%04x" : "?", c);
		} else {
			out[o++] = (char)c;
		}
	}
	out[o] = 0;
}

static const char *result_name(int r)
{
	return r == R_SUCCESS ? "success" : r == R_FAILURE ? "failure" : "unknown";
}

static void write_state(long long next_start_ns)
{
	static char doc[8192];
	char tmp[PATH_MAX], path[PATH_MAX], text[600];
	size_t n = 0;
	int fd, first = 1;

	n += snprintf(doc + n, sizeof(doc) - n, "{\"restart_count\": %d, \"ready\": %s, \"started\": %s, "
		      "\"log_start\": %lld, \"previous_log_start\": %lld", restarts, ready ? "true" : "false",
		      started ? "true" : "false", log_start, prev_log_start);
	if (last_code >= 0)
		n += snprintf(doc + n, sizeof(doc) - n, ", \"last_state\": {\"exit_code\": %d, \"reason\": \"%s\", "
			      "\"signal\": %s%s%s, \"started_at\": %lld, \"finished_at\": %lld}", last_code, last_reason,
			      strcmp(last_signal, "-") ? "\"" : "", strcmp(last_signal, "-") ? last_signal : "null",
			      strcmp(last_signal, "-") ? "\"" : "", last_started_at, last_finished_at);
	if (next_start_ns)
		n += snprintf(doc + n, sizeof(doc) - n, ", \"state\": \"waiting\", \"reason\": \"CrashLoopBackOff\", "
			      "\"next_start_at\": %lld, \"backoff_seconds\": %d", next_start_ns, wait_s);
	n += snprintf(doc + n, sizeof(doc) - n, ", \"probes\": {");
	for (int i = 0; i < N_ACTIONS && n < sizeof(doc); i++) {
		if (!actions[i].configured)
			continue;
		json_text(text, sizeof(text), actions[i].message);
		n += snprintf(doc + n, sizeof(doc) - n, "%s\"%s\": {\"result\": \"%s\", \"message\": \"%s\", \"at\": %lld}",
			      first ? "" : ", ", action_names[i], result_name(actions[i].result), text, actions[i].at_ns);
		first = 0;
	}
	if (n < sizeof(doc))
		n += snprintf(doc + n, sizeof(doc) - n, "}}\n");
	if (n >= sizeof(doc))
		return;
	snprintf(tmp, sizeof(tmp), "%s/.sup.json.tmp", cdir);
	snprintf(path, sizeof(path), "%s/sup.json", cdir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		warn(tmp);
		return;
	}
	if (RETRY(write(fd, doc, n)) != (long)n || close(fd) < 0 || rename(tmp, path) < 0)
		warn(path);
}

/* --- set up ---------------------------------------------------------------------------------- */

int sup_init(int argc, char **argv, const char *dir, long long pid, long long started_ns, const int *logfd, int ctlfd)
{
	const char *p = sup_arg(argc, argv, "--restart-policy"), *s;

	if (!p)
		return 0;
	supervising = 1;
	policy = !strcmp(p, "always") ? 2 : !strcmp(p, "onfailure") ? 1 : 0;
	cdir = dir;
	child_pid = pid;
	started_at = started_ns;
	log_fd = logfd;
	ctl_fd = ctlfd;
	start_ms = mono_ms() - (real_ns() - started_ns) / 1000000;
	if ((s = sup_arg(argc, argv, "--grace")))
		grace = atoi(s);
	python = sup_arg(argc, argv, "--python");
	if ((s = sup_arg(argc, argv, "--pod-ip")) && *s)
		pod_ip = s;
	monitor_pid = getpid();
	/* the Python monitor and probe helper run from here: never from a directory someone could plant modules in */
	if (chdir("/") < 0)
		warn("chdir /");
	if (!(cap_last = read_cap_last_cap()))
		exec_broken = "cannot read /proc/sys/kernel/cap_last_cap";
	if ((s = sup_arg(argc, argv, "--netns")) && *s) {
		netns_fd = open(s, O_RDONLY | O_CLOEXEC);
		host_netns_fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
		if (netns_fd < 0 || host_netns_fd < 0) { /* both or neither: never probe from the host's */
			warn("open network namespaces");
			net_broken = "cannot open the pod's network namespace";
			if (netns_fd >= 0)
				close(netns_fd);
			if (host_netns_fd >= 0)
				close(host_netns_fd);
			netns_fd = host_netns_fd = -1;
		}
	}
	if (!unhex_list(sup_arg(argc, argv, "--cgroup-procs"), cgroup_words, sizeof(cgroup_words), cgroup_procs, 16)) {
		fprintf(stderr, "pyrun monitor: supervise: bad --cgroup-procs\n");
		exec_broken = "bad --cgroup-procs";
	}
	if ((s = sup_arg(argc, argv, "--workdir")) && !unhex(s, strlen(s), workdir, sizeof(workdir)))
		strcpy(workdir, "/");
	if ((s = sup_arg(argc, argv, "--seccomp-bpf")) && *s && load_bpf_file(s, &bpf) < 0) {
		fprintf(stderr, "pyrun monitor: supervise: %s: %s\n", s, strerror(errno));
		exec_broken = "cannot load the container's seccomp filter";
	}
	if ((s = sup_arg(argc, argv, "--sup-state")))
		sscanf(s, "%d %d %d %lld %lld %31s %31s %lld %lld", &restarts, &backoff_s, &last_code, &last_started_at,
		       &last_finished_at, last_reason, last_signal, &prev_log_start, &log_start);
	for (int i = 0; i < N_ACTIONS; i++) {
		struct action *a = &actions[i];

		a->result = R_UNKNOWN;
		a->pidfd = a->outfd = a->sock = -1;
		if (!(s = sup_arg(argc, argv, action_args[i])))
			continue;
		a->configured = 1;
		if (!parse_action(a, s)) { /* fails closed: a failure that never runs, never ready */
			fprintf(stderr, "pyrun monitor: supervise: bad %s: %s\n", action_args[i], s);
			a->bad = 1;
			a->result = R_FAILURE;
			a->at_ns = real_ns();
			snprintf(a->message, sizeof(a->message), "pyrun cannot run this %s (bad %s)",
				 i < POSTSTART ? "probe" : "hook", action_args[i]);
		}
		a->due_ms = start_ms + a->initial * 1000LL;
	}
	started = !actions[STARTUP].configured;
	poststart_done = !actions[POSTSTART].configured;
	if (actions[POSTSTART].configured)
		actions[POSTSTART].due_ms = mono_ms();
	update_ready();
	write_state(0);
	return 1;
}

/* --- running an action ----------------------------------------------------------------------- */


/* The hex number after "\nName:" in a /proc/<pid>/status text; 0 if missing. */
static int status_hex(const char *buf, const char *name, unsigned long long *value)
{
	const char *p = strstr(buf, name);
	char *end;

	if (!p)
		return 0;
	*value = strtoull(p + strlen(name), &end, 16);
	return end != p + strlen(name);
}

/* /proc/<pid>/limits: one line per resource in RLIMIT_* order, the soft and hard limits after column 26. */
static int workload_limits(struct creds *c)
{
	static char buf[8192];
	char path[64], *line;
	int i = 0;

	snprintf(path, sizeof(path), "/proc/%lld/limits", child_pid);
	if (read_small_file(path, buf, sizeof(buf)) < 0 || !(line = strchr(buf, '\n')))
		return -1;
	for (line++; i < RLIM_NLIMITS && line && strlen(line) > 26; i++) {
		char soft[32], hard[32];

		if (sscanf(line + 26, "%31s %31s", soft, hard) != 2)
			return -1;
		c->limits[i].rlim_cur = strcmp(soft, "unlimited") ? strtoull(soft, NULL, 10) : RLIM_INFINITY;
		c->limits[i].rlim_max = strcmp(hard, "unlimited") ? strtoull(hard, NULL, 10) : RLIM_INFINITY;
		line = strchr(line, '\n');
		line = line ? line + 1 : NULL;
	}
	c->rlimits_set = (1ULL << RLIM_NLIMITS) - 1;
	return i == RLIM_NLIMITS ? 0 : -1;
}

/*
 * The workload's credentials, capabilities, no_new_privs, seccomp mode (/proc/<pid>/status) and
 * resource limits (/proc/<pid>/limits). Every field must be there: -1 (with a message) if not.
 */
static int workload_creds(struct creds *c, char *message, size_t size)
{
	static char buf[32768];
	char path[64], *p, *end;
	unsigned long long nnp = 0, mode = 0;
	int ok = 1;

	memset(c, 0, sizeof(*c));
	snprintf(path, sizeof(path), "/proc/%lld/status", child_pid);
	if (read_small_file(path, buf, sizeof(buf)) < 0) {
		snprintf(message, size, "the container's process is gone");
		return -1;
	}
	ok &= (p = strstr(buf, "\nUid:")) && sscanf(p + 5, "%u %u %u", &c->uid[0], &c->uid[1], &c->uid[2]) == 3;
	ok &= (p = strstr(buf, "\nGid:")) && sscanf(p + 5, "%u %u %u", &c->gid[0], &c->gid[1], &c->gid[2]) == 3;
	if ((p = strstr(buf, "\nGroups:"))) {
		for (p += 8; ok; p = end) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if (c->ngroups == MAX_GROUPS)
				ok = 0;
			else
				c->groups[c->ngroups++] = (gid_t)g;
		}
	} else {
		ok = 0;
	}
	ok &= status_hex(buf, "\nCapInh:", &c->inh) && status_hex(buf, "\nCapPrm:", &c->prm) &&
	      status_hex(buf, "\nCapEff:", &c->eff) && status_hex(buf, "\nCapBnd:", &c->bnd) &&
	      status_hex(buf, "\nCapAmb:", &c->amb) && status_hex(buf, "\nNoNewPrivs:", &nnp) &&
	      status_hex(buf, "\nSeccomp:", &mode);
	c->nnp = (int)nnp;
	c->seccomp = (int)mode;
	if (!ok || workload_limits(c) < 0) {
		snprintf(message, size, "cannot read the container's credentials from /proc/%lld", child_pid);
		return -1;
	}
	if (c->seccomp && !bpf.len) { /* confined, but no filter here to confine the action with */
		snprintf(message, size, "the container has a seccomp filter pyrun cannot give this action");
		return -1;
	}
	return 0;
}

/* The probe's process: join the workload's cgroups and namespaces, fork into its PID namespace. */
static void exec_child(struct action *a, const struct creds *c, int ns[5], int out)
{
	static char envbuf[65536];
	static char *env[512];
	char path[64];
	int n, count = 0, status;
	pid_t pid, self = getpid();

	die_with_parent(monitor_pid);
	snprintf(path, sizeof(path), "/proc/%lld/environ", child_pid);
	if ((n = read_small_file(path, envbuf, sizeof(envbuf))) < 0)
		_exit(126);
	for (int i = 0; n > 0 && i < n && count < 511; i += strlen(envbuf + i) + 1)
		env[count++] = envbuf + i;
	env[count] = NULL;
	if (dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(126);
	/* nothing of the monitor's (the log, ctl.sock, the output pipes) may reach the container */
	if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		_exit(126);
	for (int i = 0; cgroup_procs[i]; i++) {
		int fd = open(cgroup_procs[i], O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(126);
		close(fd);
	}
	for (int i = 0; i < 5; i++)
		if (setns(ns[i], 0) < 0) {
			perror("setns");
			_exit(126);
		}
	pid = fork();
	if (pid < 0)
		_exit(126);
	if (pid == 0) {
		die_with_parent(self);
		become_and_exec(c, &bpf, cap_last, workdir, "/", a->cmd, env, self, "pyrun probe");
	}
	if (RETRY(waitpid(pid, &status, 0)) < 0)
		_exit(126);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static int start_exec(struct action *a)
{
	static const char *const kinds[5] = { "ipc", "uts", "net", "pid", "mnt" };
	int ns[5], pipefd[2], i, ok = 1;
	struct creds c;
	char path[64];

	if (exec_broken) {
		snprintf(a->message, sizeof(a->message), "%s", exec_broken);
		return -1;
	}
	if (workload_creds(&c, a->message, sizeof(a->message)) < 0)
		return -1;
	for (i = 0; i < 5; i++) {
		snprintf(path, sizeof(path), "/proc/%lld/ns/%s", child_pid, kinds[i]);
		ns[i] = open(path, O_RDONLY | O_CLOEXEC);
		ok &= ns[i] >= 0;
	}
	if (ok && pipe2(pipefd, O_CLOEXEC) == 0) {
		a->pid = fork();
		if (a->pid == 0)
			exec_child(a, &c, ns, pipefd[1]);
		close(pipefd[1]);
		a->outfd = pipefd[0];
		fcntl(a->outfd, F_SETFL, O_NONBLOCK);
		if (a->pid > 0)
			a->pidfd = (int)syscall(SYS_pidfd_open, a->pid, 0);
	} else {
		a->pid = -1;
	}
	for (i = 0; i < 5; i++)
		if (ns[i] >= 0)
			close(ns[i]);
	if (a->pid < 0 || a->pidfd < 0) {
		snprintf(a->message, sizeof(a->message), "cannot start the probe: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void tohex(const char *in, char *out, size_t size)
{
	size_t o = 0;

	for (; *in && o + 3 < size; in++)
		o += snprintf(out + o, size - o, "%02x", (unsigned char)*in);
	if (!o && size > 1)
		out[o++] = '-';
	out[o] = 0;
}

/*
 * HTTPS and gRPC: the short-lived helper (python -m pyrun.runtime.probehelper, see there), forked
 * into the pod's network namespace; its one line of output is the message, exit 0 success.
 */
static int start_helper(struct action *a)
{
	static char path[2100], headers[4100];
	char port[16], timeout[16];
	int pipefd[2];

	if (net_broken) {
		snprintf(a->message, sizeof(a->message), "%s", net_broken);
		return -1;
	}
	if (!python || pipe2(pipefd, O_CLOEXEC) < 0) {
		snprintf(a->message, sizeof(a->message), "cannot start the probe helper");
		return -1;
	}
	tohex(a->path, path, sizeof(path));
	tohex(a->headers, headers, sizeof(headers));
	snprintf(port, sizeof(port), "%d", a->port);
	snprintf(timeout, sizeof(timeout), "%d", a->timeout);
	a->pid = fork();
	if (a->pid == 0) {
		/* -I: no cwd, PYTHON* variables nor user site on sys.path */
		char *https[] = { (char *)python, "-I", "-m", "pyrun.runtime.probehelper", "https",
				  a->host[0] ? a->host : (char *)pod_ip, port, path, headers, timeout, NULL };
		char *grpc[] = { (char *)python, "-I", "-m", "pyrun.runtime.probehelper", "grpc",
				 a->host[0] ? a->host : (char *)pod_ip, port, path, timeout, NULL };

		if (dup2(pipefd[1], 1) < 0 || dup2(pipefd[1], 2) < 0 ||
		    syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0 ||
		    (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0))
			_exit(126);
		die_with_parent(monitor_pid);
		execv(python, a->type == A_HTTPS ? https : grpc);
		_exit(127);
	}
	close(pipefd[1]);
	a->outfd = pipefd[0];
	fcntl(a->outfd, F_SETFL, O_NONBLOCK);
	if (a->pid > 0)
		a->pidfd = (int)syscall(SYS_pidfd_open, a->pid, 0);
	if (a->pid < 0 || a->pidfd < 0) {
		snprintf(a->message, sizeof(a->message), "cannot start the probe helper: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* Whether the probe's own httpHeaders set `name` (then the default one is left out, as the kubelet does). */
static int has_header(const struct action *a, const char *name)
{
	size_t n = strlen(name);

	for (const char *line = a->headers; *line; line = strstr(line, "\r\n") ? strstr(line, "\r\n") + 2 : "")
		if (!strncasecmp(line, name, n) && line[n] == ':')
			return 1;
	return 0;
}

/* A TCP connection from inside the pod's network namespace (non-blocking, in progress). */
static int start_connect(struct action *a)
{
	const char *host = a->host[0] ? a->host : pod_ip;
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6, .sin6_port = htons(a->port) };
	struct sockaddr_in in4 = { .sin_family = AF_INET, .sin_port = htons(a->port) };
	int v6 = strchr(host, ':') != NULL;

	if (net_broken) {
		snprintf(a->message, sizeof(a->message), "%s", net_broken);
		return -1;
	}
	if (v6 ? inet_pton(AF_INET6, host, &in6.sin6_addr) != 1 : inet_pton(AF_INET, host, &in4.sin_addr) != 1) {
		snprintf(a->message, sizeof(a->message), "bad address %s", host);
		return -1;
	}
	if (netns_fd >= 0 && setns(netns_fd, CLONE_NEWNET) < 0) {
		snprintf(a->message, sizeof(a->message), "setns: %s", strerror(errno));
		return -1;
	}
	a->sock = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (netns_fd >= 0 && setns(host_netns_fd, CLONE_NEWNET) < 0) {
		warn("setns back to the host's network namespace");
		abort(); /* never go on in the wrong namespace */
	}
	if (a->sock < 0) {
		snprintf(a->message, sizeof(a->message), "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(a->sock, v6 ? (struct sockaddr *)&in6 : (struct sockaddr *)&in4,
		    v6 ? sizeof(in6) : sizeof(in4)) < 0 && errno != EINPROGRESS) {
		snprintf(a->message, sizeof(a->message), "dial tcp %s:%d: %s", host, a->port, strerror(errno));
		return -1;
	}
	a->phase = 1;
	return 0;
}

static void finish(struct action *a, int ok);

static void start_action(struct action *a, long long now)
{
	int rc;

	a->message[0] = 0;
	a->rlen = 0;
	a->deadline_ms = now + a->timeout * 1000LL;
	if (a->type == A_EXEC) {
		rc = start_exec(a);
	} else if (a->type == A_HTTPS || a->type == A_GRPC) {
		a->deadline_ms += 2000; /* the interpreter's start; the helper keeps to timeoutSeconds itself */
		rc = start_helper(a);
	} else {
		rc = start_connect(a);
	}
	if (rc < 0) {
		finish(a, 0);
		return;
	}
	a->running = 1;
}

static void stop_run(struct action *a)
{
	if (a->pid > 0) {
		kill(a->pid, SIGKILL); /* its grandchild has PR_SET_PDEATHSIG */
		RETRY(waitpid(a->pid, NULL, 0));
	}
	if (a->pidfd >= 0)
		close(a->pidfd);
	if (a->outfd >= 0)
		close(a->outfd);
	if (a->sock >= 0)
		close(a->sock);
	a->pid = -1;
	a->pidfd = a->outfd = a->sock = -1;
	a->running = a->phase = 0;
}

static void kill_workload(const char *why)
{
	fprintf(stderr, "pyrun monitor: %s: killing the container\n", why);
	ready = 0;
	if (term_at_ms < 0) {
		term_at_ms = mono_ms();
		kill(child_pid, SIGTERM);
		kill_at_ms = term_at_ms + grace * 1000LL;
	}
}

static void update_ready(void)
{
	int now_ready = started && poststart_done && !stopping && term_at_ms < 0 &&
			(!actions[READINESS].configured || actions[READINESS].result == R_SUCCESS);

	for (int i = LIVENESS; i <= STARTUP; i++)
		now_ready &= !actions[i].bad;
	ready = now_ready;
}

/* A run ended: thresholds, then what the result means for the container. */
static void finish(struct action *a, int ok)
{
	int idx = (int)(a - actions), before = a->result;

	stop_run(a);
	a->at_ns = real_ns();
	a->due_ms = mono_ms() + a->period * 1000LL;
	if (ok) {
		a->failures = 0;
		if (++a->successes >= a->success_thr)
			a->result = R_SUCCESS;
	} else {
		a->successes = 0;
		if (++a->failures >= a->failure_thr)
			a->result = R_FAILURE;
	}
	if (idx == POSTSTART) {
		a->done = 1;
		poststart_done = 1;
		if (!ok)
			kill_workload("postStart hook failed");
	} else if (idx == PRESTOP) {
		a->done = 1;
		if (term_at_ms < 0) {
			term_at_ms = mono_ms();
			kill(child_pid, SIGTERM);
		}
	} else if (idx == STARTUP && a->result == R_SUCCESS) {
		started = 1;
		for (int i = LIVENESS; i <= READINESS; i++) /* their initial delay counts from now */
			if (actions[i].due_ms < mono_ms())
				actions[i].due_ms = mono_ms();
	} else if ((idx == LIVENESS || idx == STARTUP) && a->result == R_FAILURE && !stopping) {
		kill_workload(idx == LIVENESS ? "liveness probe failed" : "startup probe failed");
	}
	update_ready();
	if (a->result != before || idx >= POSTSTART || !ok || a->successes == 1)
		write_state(0);
}

/* The probe's output: the first bytes kept as its message, the rest read and dropped; closed at EOF. */
static void read_output(struct action *a)
{
	char sink[4096];
	ssize_t n;

	for (int reads = 0; a->outfd >= 0 && reads < 64; reads++) { /* bounded: a fast writer cannot hold the loop */
		if (a->rlen + 1 < sizeof(a->rbuf))
			n = read(a->outfd, a->rbuf + a->rlen, sizeof(a->rbuf) - 1 - a->rlen);
		else
			n = read(a->outfd, sink, sizeof(sink));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			close(a->outfd);
			a->outfd = -1;
			break;
		}
		if (a->rlen + 1 < sizeof(a->rbuf))
			a->rlen += n;
	}
	a->rbuf[a->rlen] = 0;
}

static void exec_done(struct action *a)
{
	siginfo_t info = { 0 };

	if (waitid(P_PIDFD, a->pidfd, &info, WEXITED) < 0) {
		finish(a, 0);
		return;
	}
	a->pid = -1;
	read_output(a);
	while (a->rlen > 0 && (a->rbuf[a->rlen - 1] == '\n' || a->rbuf[a->rlen - 1] == ' '))
		a->rbuf[--a->rlen] = 0;
	if (info.si_code == CLD_EXITED && a->type != A_EXEC) /* the helper's message */
		snprintf(a->message, sizeof(a->message), "%s", a->rlen ? a->rbuf : "the probe helper failed");
	else if (info.si_code == CLD_EXITED)
		snprintf(a->message, sizeof(a->message), "%s%s(exit code %d)", a->rbuf, a->rlen ? " " : "",
			 info.si_status);
	else
		snprintf(a->message, sizeof(a->message), "killed by signal %d", info.si_status);
	finish(a, info.si_code == CLD_EXITED && info.si_status == 0);
}

static void socket_ready(struct action *a)
{
	int err = 0;
	socklen_t len = sizeof(err);

	if (a->phase == 1) {
		if (getsockopt(a->sock, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
			snprintf(a->message, sizeof(a->message), "dial tcp %s:%d: %s", a->host[0] ? a->host : pod_ip,
				 a->port, strerror(err ? err : errno));
			finish(a, 0);
			return;
		}
		if (a->type == A_TCP) {
			finish(a, 1);
			return;
		}
		char req[4096], host[96] = "";
		if (!has_header(a, "Host"))
			snprintf(host, sizeof(host), "Host: %s:%d\r\n", a->host[0] ? a->host : pod_ip, a->port);
		int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\n%s%s%sConnection: close\r\n%s\r\n", a->path, host,
				 has_header(a, "User-Agent") ? "" : "User-Agent: kube-probe/1.31\r\n",
				 has_header(a, "Accept") ? "" : "Accept: */*\r\n", a->headers);
		if (n >= (int)sizeof(req) || send(a->sock, req, n, MSG_NOSIGNAL) != n) {
			snprintf(a->message, sizeof(a->message), "send: %s", strerror(errno));
			finish(a, 0);
			return;
		}
		a->phase = 2;
		return;
	}
	ssize_t n = read(a->sock, a->rbuf + a->rlen, sizeof(a->rbuf) - 1 - a->rlen);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0)
		a->rlen += n;
	a->rbuf[a->rlen] = 0;
	if (n > 0 && !strstr(a->rbuf, "\r\n") && a->rlen + 1 < sizeof(a->rbuf))
		return;
	int code = 0;
	if (sscanf(a->rbuf, "HTTP/%*d.%*d %d", &code) != 1) {
		snprintf(a->message, sizeof(a->message), "no HTTP status line in the reply");
		finish(a, 0);
		return;
	}
	snprintf(a->message, sizeof(a->message), "HTTP probe %s with statuscode: %d",
		 code >= 200 && code < 400 ? "succeeded" : "failed", code);
	finish(a, code >= 200 && code < 400);
}

/* --- the monitor's loop ------------------------------------------------------------------------ */

static int wanted(int i)
{
	if (!actions[i].configured || actions[i].done || actions[i].bad)
		return 0;
	if (i == PRESTOP)
		return stopping;
	if (i == POSTSTART)
		return !stopping; /* a stop cancels it (sup_request) */
	if (stopping || term_at_ms >= 0 || !poststart_done)
		return 0;
	if (i == STARTUP)
		return !started;
	return started;
}

int sup_pollfds(struct pollfd *p)
{
	int n = 0;

	for (int i = 0; supervising && i < N_ACTIONS; i++) {
		struct action *a = &actions[i];

		if (!a->running)
			continue;
		if (a->pidfd >= 0) { /* the output too, or a chatty command blocks on a full pipe */
			p[n++] = (struct pollfd){ a->pidfd, POLLIN, 0 };
			p[n++] = (struct pollfd){ a->outfd, POLLIN, 0 }; /* -1 after EOF: poll ignores it */
		} else
			p[n++] = (struct pollfd){ a->sock, a->phase == 1 ? POLLOUT : POLLIN, 0 };
	}
	return n;
}

int sup_timeout_ms(void)
{
	long long now = mono_ms(), next = -1;

	if (!supervising)
		return -1;
	for (int i = 0; i < N_ACTIONS; i++) {
		long long t = actions[i].running ? actions[i].deadline_ms : wanted(i) ? actions[i].due_ms : -1;

		if (t >= 0 && (next < 0 || t < next))
			next = t;
	}
	if (kill_at_ms >= 0 && (next < 0 || kill_at_ms < next))
		next = kill_at_ms;
	if (next < 0)
		return -1;
	return next <= now ? 0 : (int)(next - now > 60000 ? 60000 : next - now);
}

void sup_after_poll(const struct pollfd *p, int n)
{
	long long now;
	int k = 0;

	if (!supervising)
		return;
	for (int i = 0; i < N_ACTIONS && k < n; i++) {
		struct action *a = &actions[i];

		if (!a->running)
			continue;
		if (a->pidfd >= 0) {
			if (p[k + 1].revents)
				read_output(a);
			if (p[k].revents)
				exec_done(a);
			k += 2;
			continue;
		}
		if (p[k].revents)
			socket_ready(a);
		k++;
	}
	now = mono_ms();
	for (int i = 0; i < N_ACTIONS; i++) {
		struct action *a = &actions[i];

		if (a->running && now >= a->deadline_ms) {
			if (a->outfd >= 0)
				read_output(a);
			snprintf(a->message, sizeof(a->message), "timed out after %ds", a->timeout);
			finish(a, 0);
		} else if (!a->running && wanted(i) && now >= a->due_ms) {
			start_action(a, now);
		}
	}
	if (stopping && term_at_ms < 0 && (!actions[PRESTOP].configured || actions[PRESTOP].done || actions[PRESTOP].bad)) {
		term_at_ms = now;
		kill(child_pid, SIGTERM);
	}
	if (kill_at_ms >= 0 && now >= kill_at_ms) {
		kill(child_pid, SIGKILL);
		kill_at_ms = -1;
	}
}

/* The number after "grace" in a flat JSON request, or -1. */
static int json_grace(const char *msg)
{
	const char *p = strstr(msg, "\"grace\"");

	if (!p)
		return -1;
	for (p += 7; *p == ' ' || *p == ':'; p++)
		;
	return *p >= '0' && *p <= '9' ? atoi(p) : -1;
}

/* "stop": no more restarts; preStop, SIGTERM, SIGKILL after the grace period. "kill": the same at
 * once, without preStop (pod rm -f, gc), also cutting a preStop short that a stop started. */
int sup_request(int conn, const char *type, const char *msg)
{
	char reply[64];
	int g = json_grace(msg), kill_now = !strcmp(type, "kill");

	if (!supervising || (strcmp(type, "stop") && !kill_now))
		return 0;
	if (kill_now) {
		g = 0;
		if (actions[PRESTOP].running)
			stop_run(&actions[PRESTOP]);
		actions[PRESTOP].done = 1;
		kill_at_ms = mono_ms();
	}
	if (g >= 0)
		grace = g;
	if (!stopping) {
		long long now = mono_ms();

		stopping = 1;
		for (int i = 0; i < N_ACTIONS; i++)
			if (i != PRESTOP && actions[i].running)
				stop_run(&actions[i]);
		update_ready();
		kill_at_ms = now + grace * 1000LL;
		actions[PRESTOP].due_ms = now;
		actions[PRESTOP].timeout = grace > 0 ? grace : 1;
		write_state(0);
	}
	snprintf(reply, sizeof(reply), "{\"type\": \"%s-ok\"}", type);
	if (RETRY(send(conn, reply, strlen(reply), MSG_NOSIGNAL)) < 0)
		warn("send stop-ok");
	return 1;
}

/* --- restarts -------------------------------------------------------------------------------- */

static void record_last(int wstatus, int oom)
{
	last_code = -1;
	strcpy(last_signal, "-");
	if (WIFEXITED(wstatus)) {
		last_code = WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(wstatus));

		last_code = 128 + WTERMSIG(wstatus);
		if (abbrev)
			snprintf(last_signal, sizeof(last_signal), "SIG%s", abbrev);
	}
	strcpy(last_reason, oom ? "OOMKilled" : last_code == 0 ? "Completed" : "Error");
	last_started_at = started_at;
	last_finished_at = real_ns();
}

static void exec_python(void)
{
	char state[512], ctl[16];
	struct stat st;

	prev_log_start = log_start;
	if (fstat(*log_fd, &st) == 0)
		log_start = st.st_size;
	restarts++;
	ready = started = 0;
	write_state(0); /* the probes' last results stay until the next instance reports its own */
	snprintf(state, sizeof(state), "%d %d %d %lld %lld %s %s %lld %lld", restarts, backoff_s, last_code,
		 last_started_at, last_finished_at, last_reason, last_signal, prev_log_start, log_start);
	snprintf(ctl, sizeof(ctl), "%d", ctl_fd);
	close(*log_fd);
	if (netns_fd >= 0)
		close(netns_fd);
	char *argv[] = { (char *)python, "-I", "-m", "pyrun.runtime.monitor", "--restart", "--cdir", (char *)cdir,
			 "--ctl", ctl, "--sup-state", state, NULL };
	fflush(stderr);
	execv(python, argv);
	warn(python);
	_exit(1); /* the log is closed: nothing sensible is left to do; the container reads MonitorGone */
}

void sup_after_exit(int wstatus, int oom, void (*serve_ctl)(void))
{
	long long wait_ms, until;
	int delay;

	if (!supervising)
		return;
	for (int i = 0; i < N_ACTIONS; i++)
		if (actions[i].running)
			stop_run(&actions[i]);
	record_last(wstatus, oom);
	ready = 0;
	if (stopping || !policy || (policy == 1 && last_code == 0) || !python) {
		write_state(0);
		return;
	}
	if (last_finished_at - started_at >= 600LL * 1000000000LL)
		backoff_s = 0; /* it ran ten minutes: forgiven */
	delay = wait_s = backoff_s;
	backoff_s = backoff_s ? (backoff_s * 2 > 300 ? 300 : backoff_s * 2) : 10;
	until = mono_ms() + delay * 1000LL;
	if (delay)
		write_state(real_ns() + delay * 1000000000LL);
	while (delay && !stopping && (wait_ms = until - mono_ms()) > 0) {
		struct pollfd p = { ctl_fd, POLLIN, 0 };

		if (poll(&p, 1, (int)wait_ms) > 0 && p.revents)
			serve_ctl();
	}
	if (stopping) {
		write_state(0);
		return;
	}
	exec_python();
}
