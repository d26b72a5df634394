/*
 * pause: the process that holds a pod's namespaces open.
 *
 * Behaves like Kubernetes' pause container: it sleeps forever, reaps every
 * child that is re-parented to it (it is PID 1 when the pod shares one PID
 * namespace), and exits 0 on SIGINT or SIGTERM. Built -Os -static and
 * stripped, so it costs well under 1 MiB of memory per pod.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_stop(int sig)
{
	(void)sig;
	_exit(0);
}

static void on_child(int sig)
{
	(void)sig;
	int saved = errno;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved;
}

int main(int argc, char **argv)
{
	struct sigaction stop = { .sa_handler = on_stop };
	struct sigaction child = { .sa_handler = on_child, .sa_flags = SA_NOCLDSTOP | SA_RESTART };

	if (argc > 1 && strcmp(argv[1], "-v") == 0) {
		puts("pyrun pause 0.1.0");
		return 0;
	}
	if (sigaction(SIGINT, &stop, NULL) < 0 || sigaction(SIGTERM, &stop, NULL) < 0 ||
	    sigaction(SIGCHLD, &child, NULL) < 0) {
		perror("pause: sigaction");
		return 1;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: not PID 1; zombies are reaped only in a shared PID namespace\n");
	for (;;)
		pause();
	return 42; /* unreachable */
}
