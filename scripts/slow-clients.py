#!/usr/bin/env python3
"""Holds connections the way a slow or greedy client does and reports what the server did.

    scripts/slow-clients.py HOST:PORT [--connections N] [--seconds S] [--mode silent|header|idle]

silent: connect and send nothing; header: send half a request head, then a byte every second;
idle: send one complete request, read the answer, then stay quiet (keep-alive).
Every second it prints how many connections are still open, and whether a fresh client gets
`GET /healthz` answered (and how fast). Used for BENCHMARKS.md ("Connections").
"""
import argparse
import select
import socket
import time


def healthz(host, port):
    started = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=5) as conn:
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: roster\r\nConnection: close\r\n\r\n")
            answer = conn.recv(64)
        status = answer.split(b" ")[1].decode() if answer.startswith(b"HTTP/") else "no answer"
    except OSError as error:
        status = type(error).__name__
    return status, (time.monotonic() - started) * 1000


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("address")
    parser.add_argument("--connections", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=70)
    parser.add_argument("--mode", choices=["silent", "header", "idle"], default="silent")
    args = parser.parse_args()
    host, port = args.address.rsplit(":", 1)
    port = int(port)
    conns, refused = [], 0
    for _ in range(args.connections):
        try:
            conn = socket.create_connection((host, port), timeout=5)
        except OSError:
            refused += 1
            continue
        conn.setblocking(False)
        if args.mode == "header":
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: roster\r\nX-Slow: ")
        elif args.mode == "idle":
            conn.send(b"GET /healthz HTTP/1.1\r\nHost: roster\r\n\r\n")
        conns.append(conn)
    print(f"mode {args.mode}: {len(conns)} connected, {refused} refused at connect")
    opened = time.monotonic()
    open_conns = set(conns)
    poller = select.epoll()
    by_fd = {conn.fileno(): conn for conn in conns}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN | select.EPOLLRDHUP)
    for second in range(1, args.seconds + 1):
        deadline = opened + second
        while time.monotonic() < deadline:
            for fd, _ in poller.poll(max(0.0, min(0.05, deadline - time.monotonic()))):
                conn = by_fd.get(fd)
                if conn is None:
                    continue
                try:
                    data = conn.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    poller.unregister(fd)
                    del by_fd[fd]
                    open_conns.discard(conn)
                    conn.close()
        if args.mode == "header":
            for conn in list(open_conns):
                try:
                    conn.send(b"a")
                except OSError:
                    pass
        if second in (1, 2, 5, 10, 11, 15, 30, 60, 61, 65, args.seconds):
            status, millis = healthz(host, port)
            print(f"t={second:>3}s open={len(open_conns):>5}  fresh GET /healthz: {status} in {millis:.1f} ms")


if __name__ == "__main__":
    main()
