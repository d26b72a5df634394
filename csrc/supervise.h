/*
 * supervise: restartPolicy, probes and lifecycle hooks of a `pyrun pod create` container,
 * run by the container's C monitor (csrc/monitor.c). See csrc/supervise.c and
 * src/pyrun/runtime/supervise.py. Without --restart-policy every function is a no-op.
 */
#ifndef PYRUN_SUPERVISE_H
#define PYRUN_SUPERVISE_H

#include <poll.h>

#define SUP_MAX_FDS 10 /* two per action: an exec's pidfd and output */

/* The value after `name` in "--name value" pairs (argv[1..]), or NULL; the monitor's parser too. */
const char *sup_arg(int argc, char **argv, const char *name);
/* Read the --restart-policy, --probe-*, --hook-* ... arguments; returns 1 if supervising.
 * log_fd: the monitor's log descriptor (read when a restart hands over: reopen-log changes it). */
int sup_init(int argc, char **argv, const char *cdir, long long pid, long long started_at, const int *log_fd,
	     int ctl_fd);
/* The descriptors to poll for running probes and hooks (appended to p); returns how many. */
int sup_pollfds(struct pollfd *p);
/* Milliseconds until the next timer (a probe due, a deadline), or -1. */
int sup_timeout_ms(void);
/* After poll: the revents of what sup_pollfds added (in the same order), then the timers. */
void sup_after_poll(const struct pollfd *p, int n);
/* A control request of another type than the monitor's own; 1 if it was answered here. */
int sup_request(int conn, const char *type, const char *msg);
/*
 * The workload exited (oom: the OOM counter rose). Returns to let the monitor record the exit;
 * or waits out the back-off (serving ctl.sock through serve_ctl) and execs the Python monitor to
 * start the next instance (it returns if that exec fails or a stop came meanwhile).
 */
void sup_after_exit(int wstatus, int oom, void (*serve_ctl)(void));

#endif
