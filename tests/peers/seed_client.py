#!/usr/bin/env python3
"""Stand-in for the original FileShare client ("seed" protocol), for interoperability tests.

Usage: seed_client.py HOST PORT NAME OUTPUT

Sends NAME, expects b"ok" and then writes every byte up to the server's close into OUTPUT.
Exit codes: 0 done, 2 the server answered -1e (not found), 3 it answered -2e (server error),
4 any other answer.
"""
import socket
import sys

NOT_FOUND = 2
SERVER_ERROR = 3
UNEXPECTED = 4


def main():
    host, port, name, output = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    with socket.create_connection((host, port), timeout=10) as connection:
        connection.sendall(name.encode("utf-8"))
        answer = b""
        while len(answer) < 2:
            data = connection.recv(2 - len(answer))
            if not data:
                break
            answer += data

        if answer != b"ok":
            rest = connection.recv(16)
            print(f"server answered {answer + rest!r}", file=sys.stderr)
            return NOT_FOUND if answer == b"-1" else SERVER_ERROR if answer == b"-2" else UNEXPECTED

        with open(output, "wb") as target:
            while data := connection.recv(1 << 20):
                target.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
