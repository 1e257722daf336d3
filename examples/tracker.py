#!/usr/bin/env python3
"""A closed-loop tracker: pieyes' eyes follow the synthetic scene's orbiting red disc.

It taps both eyes over the Unix control socket (`tap both size WxH`: a small downscaled copy
of each frame, its fd passed with the frame's line), finds the disc by its colour (V, the red
chroma, far above anything else in the scene), and steers: `look both x y over <ms>` aims the
pair at the mean of the two eyes' target positions, `verge d over <ms>` turns them in by the
difference, so each eye keeps the disc centred and the pair converges on it. Positions are
predicted ahead by the measured velocity to cover the loop's latency. Every second it prints
the tracking error (distance of the disc from the frame centre, in output pixels) per eye.

Python 3.9+ and numpy only.

    python3 examples/tracker.py [--socket PATH] [--seconds S] [--zoom Z] [--scale N] [--lead S]
"""
import argparse
import json
import mmap
import os
import socket
import sys
import time

import numpy as np

# The disc's chroma is V=210 (tiles stay within 98..158, the stamp band at 128).
RED_V = 184
MIN_PIXELS = 4


def default_socket():
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "pieyes.sock") if runtime else "/tmp/pieyes.sock"


class Tap:
    """One control connection: commands, their replies, and frame lines with their fds. An fd
    arrives with the first byte of its line, so taking fds in order for `{…}` lines pairs
    them right."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(path)
        self.buf = b""
        self.fds = []

    def send(self, line):
        self.sock.sendall(line.encode() + b"\n")

    def next(self):
        """('frame', dict, fd) or ('reply', text, None)."""
        while b"\n" not in self.buf:
            data, fds, _flags, _addr = socket.recv_fds(self.sock, 65536, 8)
            if not data:
                raise ConnectionError("pieyes closed the connection")
            self.buf += data
            self.fds.extend(fds)
        line, self.buf = self.buf.split(b"\n", 1)
        text = line.decode()
        if text.startswith("{"):
            return "frame", json.loads(text), self.fds.pop(0)
        return "reply", text, None

    def command(self, line):
        """Send a command and wait for its reply (frames on the way are released)."""
        self.send(line)
        while True:
            kind, body, fd = self.next()
            if kind == "reply":
                if body.startswith("err"):
                    raise RuntimeError(f"{line}: {body}")
                return body
            os.close(fd)
            self.send(f"release {body['seq']} {body['eye']}")


def find_disc(frame, fd):
    """Centre of the red disc in frame pixels (x, y), or None; reads the V plane through a
    read-only mapping of the fd and closes it."""
    try:
        mm = mmap.mmap(fd, frame["size"], mmap.MAP_SHARED, mmap.PROT_READ)
    finally:
        os.close(fd)
    try:
        w, h = frame["width"], frame["height"]
        cw, ch = w // 2, h // 2
        stride, off = frame["stride"][2], frame["offset"][2]
        v = np.frombuffer(mm, dtype=np.uint8, count=stride * ch, offset=off).reshape(ch, stride)[:, :cw]
        ys, xs = np.nonzero(v > RED_V)
        del v
    finally:
        mm.close()
    if len(xs) < MIN_PIXELS:
        return None
    return (2.0 * xs.mean() + 1.0, 2.0 * ys.mean() + 1.0)


class Track:
    """One eye's target in sensor coordinates over time, and its velocity (least squares over
    the last few sightings)."""

    def __init__(self):
        self.seen = []  # (t seconds, x, y) in sensor pixels

    def add(self, t, x, y):
        self.seen.append((t, x, y))
        del self.seen[:-6]

    def predict(self, t):
        if not self.seen:
            return None
        t0, x0, y0 = self.seen[-1]
        if len(self.seen) < 3:
            return x0, y0
        ts = np.array([s[0] for s in self.seen])
        tc = ts - ts.mean()
        den = (tc * tc).sum()
        if den <= 0:
            return x0, y0
        vx = (tc * np.array([s[1] for s in self.seen])).sum() / den
        vy = (tc * np.array([s[2] for s in self.seen])).sum() / den
        return x0 + vx * (t - t0), y0 + vy * (t - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--socket", default=default_socket())
    ap.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run until interrupted)")
    ap.add_argument("--zoom", type=float, default=2.0, help="zoom of both eyes (vertical room to move needs > 1)")
    ap.add_argument("--scale", type=int, default=4, help="tap frames downscaled by this factor per side")
    ap.add_argument("--lead", type=float, default=0.10, help="seconds to predict ahead beyond the frame's age")
    ap.add_argument("--over", type=int, default=60, help="each correction glides over this many ms")
    ap.add_argument("--steer-hz", type=float, default=15.0, help="corrections per second (two commands each)")
    a = ap.parse_args()

    tap = Tap(a.socket)
    status = json.loads(tap.command("status").split(" ", 1)[1])
    eyes = status["eyes"]
    if len(eyes) < 2:
        sys.exit("tracker: needs two eyes")
    sx, sy, sw, sh = eyes[0]["sensor"]
    out_w, out_h = eyes[0]["output"]
    tw, th = (out_w // a.scale) & ~1, (out_h // a.scale) & ~1
    tap.command(f"zoom both {a.zoom}")
    tap.command(f"tap both size {tw}x{th}")
    print(f"tracker: tapping both eyes at {tw}x{th}, zoom {a.zoom}, sensor {sw}x{sh}", flush=True)

    tracks = [Track(), Track()]
    crops = [None, None]
    errors = [[], []]
    missed = [0, 0]
    start = time.monotonic()
    next_report = start + 1.0
    next_steer = start
    verge = 0.0
    while not a.seconds or time.monotonic() - start < a.seconds:
        kind, body, fd = tap.next()
        if kind == "reply":
            if body.startswith("err"):
                print(f"tracker: {body}", file=sys.stderr, flush=True)
            continue
        frame = body
        eye, seq = frame["eye"], frame["seq"]
        found = find_disc(frame, fd)
        tap.send(f"release {seq} {eye}")
        cx, cy, cw, ch = frame["crop"]
        crops[eye] = (cw, ch)
        t = frame["capture_us"] / 1e6
        if found is None:
            missed[eye] += 1
        else:
            fx, fy = found
            # Error in output pixels: the tapped copy is `scale` times smaller.
            k = out_w / frame["width"]
            errors[eye].append(((fx - frame["width"] / 2) ** 2 + (fy - frame["height"] / 2) ** 2) ** 0.5 * k)
            tracks[eye].add(t, cx + fx / frame["width"] * cw, cy + fy / frame["height"] * ch)

        now = time.monotonic()
        if eye == 1 and now >= next_steer and all(tr.seen for tr in tracks) and all(crops):
            next_steer = now + 1.0 / a.steer_hz
            age = max(0.0, time.clock_gettime(time.CLOCK_MONOTONIC) - t)
            when = t + age + a.lead
            (x0, y0), (x1, y1) = tracks[0].predict(when), tracks[1].predict(when)
            w, h = crops[0]
            # The crop centre is mid + x·(sw−w)/2 ± d·sw/2 (eye 0 +, eye 1 −): solve for x, d.
            mx = ((x0 + x1) / 2 - (sx + sw / 2)) / max(1.0, (sw - w) / 2)
            my = ((y0 + y1) / 2 - (sy + sh / 2)) / max(1.0, (sh - h) / 2)
            verge = (x0 - x1) / sw
            clamp = lambda v: max(-1.0, min(1.0, v))
            tap.send(f"look both {clamp(mx):.4f} {clamp(my):.4f} over {a.over}")
            tap.send(f"verge {clamp(verge):.5f} over {a.over}")

        if now >= next_report:
            next_report += 1.0
            parts = []
            for e in (0, 1):
                errs = sorted(errors[e])
                if errs:
                    p90 = errs[min(len(errs) - 1, int(0.9 * len(errs)))]
                    parts.append(f"eye {e} mean {sum(errs) / len(errs):5.1f} px p90 {p90:5.1f} px ({len(errs)} seen, {missed[e]} missed)")
                else:
                    parts.append(f"eye {e} target not seen ({missed[e]} frames)")
            print(f"t={now - start:4.0f}s error: " + "; ".join(parts) + f"; verge {verge:+.4f}", flush=True)
            errors, missed = [[], []], [0, 0]
    tap.send("untap")


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
