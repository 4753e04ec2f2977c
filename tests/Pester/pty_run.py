#!/usr/bin/env python3
"""Runs a command in a pseudo-terminal and presses Ctrl+C in it, the way a user at a console would.

Usage: pty_run.py [--marker TEXT] [--file PATH] [--trigger-timeout S] [--exit-timeout S] -- COMMAND [ARGS...]

The command gets a fresh session whose controlling terminal is the pty, so the b"\\x03" written to the master is
turned into SIGINT for its foreground process group by the terminal line discipline (not sent as a signal by us).
Ctrl+C is pressed once TEXT has appeared in the command's output or PATH exists (whichever comes first; with
neither, at once). The script then waits up to --exit-timeout seconds for the command to end, killing its process
group if it does not.

Prints one JSON object on stdout:
  triggered       the marker or file was seen before --trigger-timeout
  interrupted     Ctrl+C was written to the terminal
  exited          the command ended by itself (after Ctrl+C, or before any trigger)
  exit_code       its exit code, or -N when killed by signal N; null when it had to be killed here
  seconds_to_exit seconds from Ctrl+C to the command's end; null without Ctrl+C or exit
  output          everything the command wrote to the terminal (UTF-8, undecodable bytes replaced)
The script's own exit code is 0 whenever it ran, whatever happened to the command; callers judge the JSON.
"""
import argparse
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time


def parse():
    parser = argparse.ArgumentParser()
    parser.add_argument("--marker")
    parser.add_argument("--file")
    parser.add_argument("--trigger-timeout", type=float, default=30.0)
    parser.add_argument("--exit-timeout", type=float, default=15.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command and args.command[0] == "--":
        args.command = args.command[1:]
    if not args.command:
        parser.error("no command given")
    return args


answered = 0


def read_available(fd, output):
    """Reads what the terminal has; False once the child side is closed."""
    global answered
    try:
        ready, _, _ = select.select([fd], [], [], 0.02)
        if ready:
            data = os.read(fd, 65536)
            if not data:
                return False
            output.extend(data)
            # Answer cursor-position queries (ESC[6n) as a real terminal would; PowerShell's progress
            # rendering waits for the answer, and an unanswered query stalls it for seconds. Counting over the
            # whole output catches a query split across two reads.
            queries = output.count(b"\x1b[6n")
            while answered < queries:
                os.write(fd, b"\x1b[1;1R")
                answered += 1
    except OSError:
        return False  # EIO: every process holding the pty's slave side has gone.
    return True


def main():
    args = parse()
    pid, fd = pty.fork()
    if pid == 0:
        # A wide terminal so nothing the command prints is wrapped or truncated.
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 250, 0, 0))
        # A shell gives its foreground job default signal handling; without this a test run started in the
        # background (where SIGINT is ignored and the ignoring is inherited) would make Ctrl+C do nothing.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGQUIT, signal.SIG_DFL)
        try:
            os.execvp(args.command[0], args.command)
        finally:
            os._exit(127)

    output = bytearray()
    status = None
    open_ = True
    triggered = interrupted = False
    interrupted_at = None
    started = time.monotonic()

    def seen():
        if args.marker and args.marker.encode("utf-8") in output:
            return True
        if args.file and os.path.exists(args.file):
            return True
        return not args.marker and not args.file

    while status is None:
        if open_:
            open_ = read_available(fd, output)
        else:
            time.sleep(0.02)
        waited, code = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            status = code
            break

        now = time.monotonic()
        if not interrupted:
            if seen():
                triggered = True
                os.write(fd, b"\x03")
                interrupted, interrupted_at = True, now
            elif now - started > args.trigger_timeout:
                break
        elif now - interrupted_at > args.exit_timeout:
            break

    exited = status is not None
    ended_at = time.monotonic()
    if not exited:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)

    # Whatever is still buffered in the terminal (bounded: a leftover grandchild may hold it open).
    drain_until = time.monotonic() + 1.0
    while open_ and time.monotonic() < drain_until:
        open_ = read_available(fd, output)
    os.close(fd)

    exit_code = None
    if exited:
        exit_code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
    print(json.dumps({
        "triggered": triggered,
        "interrupted": interrupted,
        "exited": exited,
        "exit_code": exit_code,
        "seconds_to_exit": round(ended_at - interrupted_at, 3) if interrupted and exited else None,
        "output": output.decode("utf-8", errors="replace"),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
