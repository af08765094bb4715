"""Helper processes (newswire/child_process.py): a fresh interpreter running one function,
talking to its parent over a pipe, ending with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from newswire.child_process import Child


def echo(pipe, greeting: str) -> None:
    """A child's target: answers its parent's messages until told ``stop``."""
    pipe.send((greeting, os.getpid(), os.getppid(), signal.getsignal(signal.SIGINT) is signal.SIG_IGN))
    while (message := pipe.recv()) != "stop":
        pipe.send(message.upper())


def fail(pipe) -> None:
    raise SystemExit(3)


def test_a_child_runs_its_target_with_the_arguments_and_talks_over_the_pipe():
    child = Child(echo, "hello", name="test-echo")
    greeting, pid, parent, ignores_ctrl_c = child.pipe.recv()
    assert (greeting, pid, parent, ignores_ctrl_c) == ("hello", child.pid, os.getpid(), True)
    child.pipe.send("word")
    assert child.pipe.recv() == "WORD"
    assert child.alive() and child.exitcode is None
    child.pipe.send("stop")
    assert child.join(30)
    assert child.exitcode == 0 and child.ended() == "it ended with exit code 0"


def test_how_a_child_ended_is_said_for_a_person():
    failing = Child(fail, name="test-fail")
    assert failing.join(30)
    assert failing.ended() == "it ended with exit code 3"
    killed = Child(echo, "hi", name="test-kill")
    killed.pipe.recv()
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.join(30)
    assert not killed.alive()
    assert killed.ended() == "it was killed by signal 9 (SIGKILL)"


def test_a_child_dies_with_its_parent(tmp_path):
    """The parent (a python process that starts a Child, then is killed with -9) takes its child along."""
    script = tmp_path / "parent.py"
    script.write_text(
        "import sys, time\n"
        f"sys.path[:0] = {sys.path!r}\n"
        "from newswire.child_process import Child\n"
        "from tests.test_child_process import echo\n"
        "child = Child(echo, 'hi', name='orphan')\n"
        "child.pipe.recv()\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n")
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        child_pid = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(30)
        deadline = time.monotonic() + 30
        while _running(child_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child_pid), "the child outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"  # a zombie has ended (its parent is gone)
    except FileNotFoundError:
        return False
