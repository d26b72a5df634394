"""The server's handle on a zygote's child (pyrun.runtime.zygote.ZygoteChild): its reply socket is closed
once its exit is known or it is let go, whichever thread is reading it at that moment."""
from __future__ import annotations

import socket
import threading

from pyrun.runtime.zygote import EXIT_UNKNOWN, ZygoteChild


def child() -> tuple[ZygoteChild, socket.socket]:
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return ZygoteChild(4242, mine), theirs


def test_let_go_closes_the_reply_socket():
    c, theirs = child()
    c.let_go()
    assert c.reply.fileno() == -1 and c.returncode == EXIT_UNKNOWN
    assert c.poll() == EXIT_UNKNOWN and c.wait(0) == EXIT_UNKNOWN
    theirs.close()


def test_let_go_while_another_thread_reads_leaves_the_close_to_that_reader():
    """ExecSync lets its helper go while a poll() of another thread holds the reader's lock: that poll
    closes the socket as it ends (it used to stay open: one descriptor per ExecSync in that race)."""
    c, theirs = child()
    reading, finish = threading.Event(), threading.Event()

    def slow_take(timeout):  # a read in progress that finds nothing
        reading.set()
        finish.wait(10)
        return None
    c._take = slow_take  # type: ignore[method-assign]
    poller = threading.Thread(target=c.poll)
    poller.start()
    assert reading.wait(10)
    c.let_go()  # returns at once: the lock is held
    assert c.reply.fileno() != -1
    finish.set()
    poller.join(10)
    assert c.reply.fileno() == -1 and c.returncode == EXIT_UNKNOWN
    theirs.close()


def test_an_exit_read_by_wait_closes_the_socket_and_a_later_let_go_changes_nothing():
    from pyrun.runtime import sync
    c, theirs = child()
    sync.send(theirs, "exited", code=3)
    assert c.wait(5) == 3 and c.reply.fileno() == -1
    c.let_go()
    assert c.returncode == 3
    theirs.close()
