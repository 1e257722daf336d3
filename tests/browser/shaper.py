#!/usr/bin/env python3
"""A netem in user space for the lossy-link bench (this machine's kernel has no sch_netem).

Creates two TUN devices, moves one into each of two network namespaces, and forwards IP
packets between them: each direction a 20 Mbit/s link (packets serialised one after another,
the queue unbounded like netem's default), then a fixed delay, with random loss applied before
it. SIGUSR1 turns 100 % loss on (a loss burst), SIGUSR2 back off.

usage: shaper.py NS_A ADDR_A NS_B ADDR_B [--rate BPS] [--delay MS] [--loss FRACTION]
Prints "ready" once both devices are up, then runs until killed.
"""
import argparse, fcntl, heapq, os, random, select, signal, struct, subprocess, sys, time

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000


def tun(name):
    fd = os.open('/dev/net/tun', os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    p = argparse.ArgumentParser()
    p.add_argument('ns_a'); p.add_argument('addr_a'); p.add_argument('ns_b'); p.add_argument('addr_b')
    p.add_argument('--rate', type=float, default=20e6)
    p.add_argument('--delay', type=float, default=5.0)
    p.add_argument('--loss', type=float, default=0.005)
    a = p.parse_args()
    burst = [False]
    signal.signal(signal.SIGUSR1, lambda *_: burst.__setitem__(0, True))
    signal.signal(signal.SIGUSR2, lambda *_: burst.__setitem__(0, False))
    ends = []
    for name, ns, addr, peer in (('pt-a', a.ns_a, a.addr_a, a.addr_b), ('pt-b', a.ns_b, a.addr_b, a.addr_a)):
        fd = tun(name)
        ip = ['ip', 'link', 'set', name, 'netns', ns]
        subprocess.run(ip, check=True)
        subprocess.run(['ip', '-n', ns, 'addr', 'add', addr, 'peer', peer, 'dev', name], check=True)
        subprocess.run(['ip', '-n', ns, 'link', 'set', name, 'mtu', '1500', 'up'], check=True)
        ends.append(fd)
    print('ready', flush=True)
    link_free = [0.0, 0.0]  # per direction: when the last queued packet has left the wire
    due = []  # (deliver at, order, out fd, packet)
    order = 0
    while True:
        now = time.monotonic()
        timeout = max(0.0, due[0][0] - now) if due else 1.0
        try:
            ready, _, _ = select.select(ends, [], [], timeout)
        except InterruptedError:
            continue
        now = time.monotonic()
        for fd in ready:
            d = ends.index(fd)
            while True:
                try:
                    pkt = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if burst[0] or random.random() < a.loss:
                    continue
                link_free[d] = max(now, link_free[d]) + len(pkt) * 8 / a.rate
                order += 1
                heapq.heappush(due, (link_free[d] + a.delay / 1000, order, ends[1 - d], pkt))
        while due and due[0][0] <= now:
            _, _, out, pkt = heapq.heappop(due)
            try:
                os.write(out, pkt)
            except OSError:
                pass


if __name__ == '__main__':
    sys.exit(main())
