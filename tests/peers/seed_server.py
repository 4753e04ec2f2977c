#!/usr/bin/env python3
"""Stand-in for the original FileShare server ("seed" protocol), for interoperability tests.

Usage: seed_server.py FOLDER [HOST] [PORT]   (PORT 0 picks a free one)

Each client sends a bare file name in one send (no terminator, at most 1024 bytes). The server answers
b"ok" followed by the file's bytes and closes; b"-1e" when the file does not exist; b"-2e" on any other
error. Prints the port it listens on, alone on a line, once it accepts connections. Runs until killed.
"""
import os
import socket
import sys
import threading


def serve(connection, folder):
    with connection:
        try:
            name = connection.recv(1024).decode("utf-8")
            source = open(os.path.join(folder, name), "rb")
        except FileNotFoundError:
            connection.sendall(b"-1e")
            return
        except Exception:
            connection.sendall(b"-2e")
            return

        with source:
            try:
                connection.sendall(b"ok")
                while chunk := source.read(1 << 20):
                    connection.sendall(chunk)
            except OSError:
                pass  # The client went away; nothing left to tell it.


def main():
    folder = sys.argv[1]
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    port = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    listener = socket.create_server((host, port), backlog=64)
    print(listener.getsockname()[1], flush=True)
    while True:
        connection, _ = listener.accept()
        threading.Thread(target=serve, args=(connection, folder), daemon=True).start()


if __name__ == "__main__":
    main()
