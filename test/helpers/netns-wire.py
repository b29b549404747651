"""Ethernet wires with latency, for kernels without tc netem (test/helpers/netns.ts).

Each wire is a pair of TAP devices: every frame read from one end is written
to the other after the wire's one-way delay, in both directions, in order.
The ends are created here (in the current network namespace) under temporary
names, then moved into their namespaces under their final names, so a wire
behaves like a veth pair whose both ends have `tc qdisc ... netem delay`.

argv[1]: JSON list of {"a": [ns, name], "b": [ns, name], "delayMs": n}; an
         ns of null leaves that end in the current namespace.
stdin:   one JSON command per line, answered by one line "ok" on stdout:
         {"wire": i, "delayMs": n}   change wire i's one-way delay.
Prints "ready" once every end is in place; exits when stdin closes (the
test process is gone), which removes every TAP device with it.
"""
import collections
import fcntl
import heapq
import json
import os
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000


def open_tap(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def main():
    specs = json.loads(sys.argv[1])
    tag = "%x" % (os.getpid() & 0xFFFFF)
    delays = []
    # fd -> (wire index, fd of the other end)
    peers = {}
    for i, spec in enumerate(specs):
        ends = []
        for side in ("a", "b"):
            ns, name = spec[side]
            temporary = "w%s%d%s" % (tag, i, side)
            fd = open_tap(temporary)
            if ns is None:  # this end stays in the current namespace
                subprocess.run(["ip", "link", "set", temporary, "name", name], check=True)
            else:
                subprocess.run(["ip", "link", "set", temporary, "netns", ns, "name", name], check=True)
            ends.append(fd)
        peers[ends[0]] = (i, ends[1])
        peers[ends[1]] = (i, ends[0])
        delays.append(spec["delayMs"] / 1000.0)
    print("ready", flush=True)

    # Frames in flight: (due, sequence, destination fd, frame). The sequence
    # keeps the order of frames due at the same time; `last_due` keeps each
    # direction in order when its delay is lowered.
    pending = []
    sequence = 0
    last_due = collections.defaultdict(float)
    commands = b""
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    while True:
        now = time.monotonic()
        while pending and pending[0][0] <= now:
            _, _, destination, frame = heapq.heappop(pending)
            try:
                os.write(destination, frame)
            except OSError:
                pass  # that end is down (the test cut the link): the frame is lost, as on a cable
        timeout = max(0.0, pending[0][0] - now) if pending else None
        readable, _, _ = select.select([stdin, *peers.keys()], [], [], timeout)
        for fd in readable:
            if fd == stdin:
                chunk = os.read(stdin, 4096)
                if not chunk:
                    return
                commands += chunk
                while b"\n" in commands:
                    line, commands = commands.split(b"\n", 1)
                    command = json.loads(line)
                    delays[command["wire"]] = command["delayMs"] / 1000.0
                    print("ok", flush=True)
                continue
            wire, destination = peers[fd]
            for _ in range(64):
                try:
                    frame = os.read(fd, 65536)
                except BlockingIOError:
                    break
                except OSError:
                    break
                due = max(time.monotonic() + delays[wire], last_due[fd])
                last_due[fd] = due
                sequence += 1
                heapq.heappush(pending, (due, sequence, destination, frame))


if __name__ == "__main__":
    main()
