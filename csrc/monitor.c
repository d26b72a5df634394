/*
 * monitor: the long-lived half of a container's monitor.
 *
 * The Python monitor (src/pyrun/runtime/monitor.py) sets the container up and,
 * once the workload has exec'd, execve()s this program in the same process.
 * execve(2) keeps the pid, so this program is still the workload's parent, and
 * it keeps the fds the Python side cleared of O_CLOEXEC. From then on it:
 *
 *   - copies the workload's stdout/stderr pipes into the log file in the CRI
 *     format "<RFC3339Nano UTC> <stdout|stderr> <F|P> <content>\n", the same
 *     bytes as pyrun.runtime.logs.LineSplitter fed the whole stream at once;
 *   - answers "status", "reopen-log", "start" and "attach" on ctl.sock
 *     (SOCK_SEQPACKET, one JSON object per datagram, see pyrun.runtime.sync);
 *   - holds the workload's input for an attach (see attach_input below);
 *   - reaps the workload, drains the pipes for at most a second, and writes
 *     exit.json atomically (temp file + rename(2)); then removes ctl.sock.
 *
 * Usage (every value comes from the Python monitor):
 *   monitor --cdir DIR --pid N --start-time T --started-at NS
 *           --stdout FD --stderr FD --log-fd FD --log-path PATH --ctl FD
 *           --reply FD --oom-events PATH --oom-baseline N
 *           [--pending-stdout HEX] [--pending-stderr HEX]
 *           [--stdin FD --stdin-once 0|1 --tty 0|1]
 *           [--restart-policy P ... : restarts, probes, hooks; see csrc/supervise.c]
 *   (--reply -1: a restarted instance, nobody to answer)
 *   monitor --selftest-log STREAM NS   stdin -> CRI lines on stdout, time fixed
 *
 * No allocation: one fixed line buffer per stream.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervise.h"

#define MAX_LINE 16384 /* pyrun.runtime.logs.MAX_LINE */

/* Run a system call again while a signal interrupts it (GNU statement expression). */
#define RETRY(call) ({ long r_; do r_ = (call); while (r_ < 0 && errno == EINTR); r_; })

struct stream {
	const char *name; /* "stdout" or "stderr" */
	int fd;           /* the pipe's read end; -1 after EOF */
	size_t len;
	char buf[MAX_LINE + 1]; /* one byte more, to see a newline right after 16 KiB */
};

static struct stream out = { "stdout", -1, 0, { 0 } };
static struct stream err = { "stderr", -1, 0, { 0 } };
static const char *cdir, *log_path, *oom_events;
static long long child_pid, start_time, started_at, oom_baseline, fixed_ns = -1;
static int log_fd = -1, ctl_fd = -1;
static int stdin_fd = -1, stdin_once, tty; /* the workload's input (attach_input) */
static int reaped; /* the workload was reaped (ctl.sock is served during a back-off) */

static void warn(const char *what)
{
	fprintf(stderr, "pyrun monitor: %s: %s\n", what, strerror(errno));
}

static void die(const char *what)
{
	warn(what);
	exit(1);
}

static long long now_ns(void)
{
	struct timespec ts;

	if (fixed_ns >= 0)
		return fixed_ns;
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		die("clock_gettime");
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* writev(2) everything, across short writes and EINTR. */
static int write_all(int fd, struct iovec *iov, int cnt)
{
	while (cnt > 0) {
		ssize_t n = writev(fd, iov, cnt);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++, cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (char *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

/* One log entry, written with a single writev (the log is O_APPEND). */
static void emit(struct stream *s, int partial, size_t n)
{
	char head[96];
	long long ns = now_ns();
	time_t secs = ns / 1000000000LL;
	struct tm tm;
	size_t h;

	if (!gmtime_r(&secs, &tm))
		die("gmtime_r");
	h = strftime(head, sizeof(head), "%Y-%m-%dT%H:%M:%S", &tm);
	h += snprintf(head + h, sizeof(head) - h, ".%09lldZ %s %c ", ns % 1000000000LL, s->name,
		      partial ? 'P' : 'F');
	if (h >= sizeof(head)) /* only a very long --selftest-log stream name */
		h = sizeof(head) - 1;
	struct iovec iov[3] = { { head, h }, { s->buf, n }, { "\n", 1 } };
	if (write_all(log_fd, iov, 3) < 0)
		warn("write log"); /* keep going: the exit status matters more */
}

static void consume(struct stream *s, size_t n)
{
	memmove(s->buf, s->buf + n, s->len - n);
	s->len -= n;
}

/*
 * Turn buffered bytes into entries: a line of at most 16 KiB is one F entry;
 * without a newline in the first 16 KiB + 1 bytes, 16 KiB go out as P. At EOF
 * what is left is a P if it is exactly 16 KiB (as LineSplitter.feed does),
 * else an F.
 */
static void split(struct stream *s, int at_eof)
{
	for (;;) {
		char *nl = memchr(s->buf, '\n', s->len);

		if (nl) {
			emit(s, 0, nl - s->buf);
			consume(s, nl - s->buf + 1);
		} else if (s->len > MAX_LINE || (at_eof && s->len == MAX_LINE)) {
			emit(s, 1, MAX_LINE);
			consume(s, MAX_LINE);
		} else {
			break;
		}
	}
	if (at_eof && s->len > 0) {
		emit(s, 0, s->len);
		s->len = 0;
	}
}

/* Read what the pipe has; at EOF (or a read error) flush and close it. */
static void read_stream(struct stream *s)
{
	ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n < 0 && !(tty && errno == EIO)) /* EIO: the pty's last slave closed */
		warn(s->name);
	if (n <= 0) {
		split(s, 1);
		if (close(s->fd) < 0)
			warn("close pipe");
		s->fd = -1;
		return;
	}
	s->len += n;
	split(s, 0);
}

/* Bytes the Python monitor had read but not yet written (hex, no newline in them). */
static void take_pending(struct stream *s, const char *hex)
{
	for (; hex && hex[0] && hex[1] && s->len < MAX_LINE; hex += 2) {
		char pair[3] = { hex[0], hex[1], 0 };
		s->buf[s->len++] = (char)strtol(pair, NULL, 16);
	}
	split(s, 0);
}

static void reply(int conn, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (RETRY(send(conn, msg, strlen(msg), MSG_NOSIGNAL)) < 0)
		warn("send reply");
}

/* The value of "type" in a flat JSON object (types are plain words). */
static int json_type(const char *msg, char *type, size_t size)
{
	const char *p = strstr(msg, "\"type\"");
	size_t n = 0;

	if (!p)
		return 0;
	for (p += 6; *p == ' ' || *p == ':'; p++)
		;
	if (*p++ != '"')
		return 0;
	while (*p && *p != '"' && n + 1 < size)
		type[n++] = *p++;
	type[n] = 0;
	return *p == '"';
}

static void reopen_log(int conn)
{
	int fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);

	if (fd < 0) {
		reply(conn, "{\"type\": \"error\", \"step\": \"reopen-log\", \"message\": \"open %s: %s\"}",
		      log_path, strerror(errno));
		return;
	}
	if (close(log_fd) < 0)
		warn("close log");
	log_fd = fd;
	reply(conn, "{\"type\": \"reopen-log-ok\"}");
}

/*
 * "attach": hand the workload's input to the caller (SCM_RIGHTS), as the Python monitor does: a tty
 * container's pty master, else the write end of its stdin pipe. With stdin_once the pipe is let go of
 * once handed out, so the workload reads EOF when that attach closes it (containerd's StdinOnce; not
 * for a tty, as containerd). attach-ok without a descriptor when there is none (any more).
 */
static void attach_input(int conn)
{
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} control;
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "{\"type\": \"attach-ok\", \"tty\": %s, \"stdin\": %s}",
			 tty ? "true" : "false", stdin_fd >= 0 ? "true" : "false");
	struct iovec iov = { msg, (size_t)n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (stdin_fd >= 0) {
		struct cmsghdr *c;

		memset(&control, 0, sizeof(control));
		mh.msg_control = control.buf;
		mh.msg_controllen = sizeof(control.buf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &stdin_fd, sizeof(int));
	}
	if (RETRY(sendmsg(conn, &mh, MSG_NOSIGNAL)) < 0) {
		warn("send attach-ok");
		return;
	}
	if (stdin_fd >= 0 && stdin_once && !tty) {
		if (close(stdin_fd) < 0)
			warn("close stdin");
		stdin_fd = -1;
	}
}

/* One control request per connection, as the Python monitor does (5 s to send it). */
static void handle_ctl(void)
{
	struct timeval tv = { 5, 0 };
	char msg[4096], type[32];
	ssize_t n;
	int conn = accept4(ctl_fd, NULL, NULL, SOCK_CLOEXEC);

	if (conn < 0) {
		if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
			warn("accept");
		return;
	}
	if (setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
		warn("SO_RCVTIMEO");
	n = RETRY(recv(conn, msg, sizeof(msg) - 1, 0));
	if (n > 0) {
		msg[n] = 0;
		if (!json_type(msg, type, sizeof(type)))
			; /* not a request: close without a reply, like sync.recv */
		else if (!strcmp(type, "status") && reaped) /* a supervised one backing off: no process now */
			reply(conn, "{\"type\": \"status-ok\", \"state\": \"waiting\", \"pid\": null}");
		else if (!strcmp(type, "status"))
			reply(conn, "{\"type\": \"status-ok\", \"state\": \"running\", \"pid\": %lld, "
			      "\"start_time\": %lld, \"started_at\": %lld}", child_pid, start_time, started_at);
		else if (!strcmp(type, "reopen-log"))
			reopen_log(conn);
		else if (!strcmp(type, "attach"))
			attach_input(conn);
		else if (!strcmp(type, "start"))
			reply(conn, "{\"type\": \"error\", \"step\": \"start\", "
			      "\"message\": \"container is running, not created\"}");
		else
			sup_request(conn, type, msg);
	}
	if (close(conn) < 0)
		warn("close connection");
}

/* The `oom_kill N` counter of memory.events (v2) or memory.oom_control (v1); 0 if unknown. */
static long long oom_count(void)
{
	char buf[4096], *p;
	ssize_t n;
	int fd;

	if (!oom_events || !*oom_events)
		return 0;
	fd = open(oom_events, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = RETRY(read(fd, buf, sizeof(buf) - 1));
	if (close(fd) < 0)
		warn("close oom events");
	if (n <= 0)
		return 0;
	buf[n] = 0;
	for (p = buf; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (!strncmp(p, "oom_kill ", 9))
			return atoll(p + 9);
	return 0;
}

/* exit.json, atomically: pyrun's StateStore merges it over status.json. */
static void write_exit(int wstatus)
{
	char tmp[PATH_MAX], path[PATH_MAX], doc[256], sig[32] = "null";
	int code = -1, fd;
	const char *reason;

	if (WIFEXITED(wstatus)) {
		code = WEXITSTATUS(wstatus);
	} else if (WIFSIGNALED(wstatus)) {
		const char *abbrev = sigabbrev_np(WTERMSIG(wstatus));

		code = 128 + WTERMSIG(wstatus);
		if (abbrev)
			snprintf(sig, sizeof(sig), "\"SIG%s\"", abbrev);
	}
	if (oom_count() > oom_baseline)
		reason = "OOMKilled";
	else
		reason = code == 0 ? "Completed" : "Error";
	snprintf(doc, sizeof(doc), "{\"exit_code\": %d, \"finished_at\": %lld, \"reason\": \"%s\", "
		 "\"signal\": %s, \"state\": \"exited\"}\n", code, now_ns(), reason, sig);
	if (snprintf(tmp, sizeof(tmp), "%s/.exit.json.tmp", cdir) >= (int)sizeof(tmp) ||
	    snprintf(path, sizeof(path), "%s/exit.json", cdir) >= (int)sizeof(path)) {
		errno = ENAMETOOLONG;
		die(cdir);
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		die(tmp);
	struct iovec iov = { doc, strlen(doc) };
	if (write_all(fd, &iov, 1) < 0 || fsync(fd) < 0 || close(fd) < 0)
		die(tmp);
	if (rename(tmp, path) < 0)
		die(path);
}

/* After the workload exited: copy what is left, giving up after a second. */
static void drain(void)
{
	struct timespec start, now;

	if (clock_gettime(CLOCK_MONOTONIC, &start) < 0)
		die("clock_gettime");
	for (;;) {
		struct pollfd p[2] = { { out.fd, POLLIN, 0 }, { err.fd, POLLIN, 0 } };
		long left;

		if (clock_gettime(CLOCK_MONOTONIC, &now) < 0)
			die("clock_gettime");
		left = 1000 - ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000);
		if ((out.fd < 0 && err.fd < 0) || left <= 0)
			break;
		if (poll(p, 2, left) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents)
			read_stream(&out);
		if (p[1].revents)
			read_stream(&err);
	}
	split(&out, 1);
	split(&err, 1);
}

static void serve(void)
{
	int pidfd = syscall(SYS_pidfd_open, (pid_t)child_pid, 0);
	int wstatus, exited = 0;
	char sock[PATH_MAX];

	if (pidfd < 0)
		die("pidfd_open");
	while (!exited) {
		struct pollfd p[4 + SUP_MAX_FDS] = { { out.fd, POLLIN, 0 }, { err.fd, POLLIN, 0 },
						     { ctl_fd, POLLIN, 0 }, { pidfd, POLLIN, 0 } };
		int n = 4 + sup_pollfds(p + 4);

		if (poll(p, n, sup_timeout_ms()) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		sup_after_poll(p + 4, n - 4);
		if (p[0].revents)
			read_stream(&out);
		if (p[1].revents)
			read_stream(&err);
		if (p[2].revents)
			handle_ctl();
		exited = p[3].revents != 0;
	}
	if (RETRY(waitpid((pid_t)child_pid, &wstatus, 0)) < 0)
		die("waitpid");
	reaped = 1;
	drain();
	sup_after_exit(wstatus, oom_count() > oom_baseline, handle_ctl); /* returns unless it restarts */
	write_exit(wstatus);
	if (snprintf(sock, sizeof(sock), "%s/ctl.sock", cdir) < (int)sizeof(sock) && unlink(sock) < 0 &&
	    errno != ENOENT)
		warn("unlink ctl.sock");
}

static const char *arg(int argc, char **argv, const char *name, int required)
{
	const char *value = sup_arg(argc, argv, name);

	if (value)
		return value;
	if (required) {
		fprintf(stderr, "pyrun monitor: missing %s\n", name);
		exit(2);
	}
	return NULL;
}

static long long num(int argc, char **argv, const char *name)
{
	const char *s = arg(argc, argv, name, 1);
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || *end) {
		fprintf(stderr, "pyrun monitor: %s: not a number: %s\n", name, s);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "--selftest-log")) {
		out.name = argv[2];
		out.fd = 0;
		log_fd = 1;
		fixed_ns = strtoll(argv[3], NULL, 10);
		while (out.fd >= 0)
			read_stream(&out);
		return 0;
	}
	cdir = arg(argc, argv, "--cdir", 1);
	log_path = arg(argc, argv, "--log-path", 1);
	oom_events = arg(argc, argv, "--oom-events", 1);
	child_pid = num(argc, argv, "--pid");
	start_time = num(argc, argv, "--start-time");
	started_at = num(argc, argv, "--started-at");
	oom_baseline = num(argc, argv, "--oom-baseline");
	out.fd = (int)num(argc, argv, "--stdout");
	err.fd = (int)num(argc, argv, "--stderr");
	log_fd = (int)num(argc, argv, "--log-fd");
	ctl_fd = (int)num(argc, argv, "--ctl");
	if (arg(argc, argv, "--stdin", 0)) {
		stdin_fd = (int)num(argc, argv, "--stdin");
		stdin_once = (int)num(argc, argv, "--stdin-once");
		tty = (int)num(argc, argv, "--tty");
		/* a tty's master is also --stdout, which is closed at its EOF: keep a copy of our own */
		if (tty && stdin_fd == out.fd && (stdin_fd = fcntl(stdin_fd, F_DUPFD_CLOEXEC, 3)) < 0)
			die("dup terminal");
	}
	take_pending(&out, arg(argc, argv, "--pending-stdout", 0));
	take_pending(&err, arg(argc, argv, "--pending-stderr", 0));

	/* The Python side ran `start`; this program answers it, so the caller
	 * only sees start-ok once the small monitor is in place. */
	int conn = (int)num(argc, argv, "--reply");
	if (conn >= 0) {
		reply(conn, "{\"type\": \"start-ok\", \"pid\": %lld}", child_pid);
		if (close(conn) < 0)
			warn("close reply socket");
	}
	sup_init(argc, argv, cdir, child_pid, started_at, &log_fd, ctl_fd);
	serve();
	return 0;
}
