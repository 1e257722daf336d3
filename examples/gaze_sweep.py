#!/usr/bin/env python3
"""A robot controller in miniature: sweep both eyes' gaze in a figure of eight over pieyes'
Unix control socket, and close the loop on what the cameras really did.

It subscribes with `watch`, sends each `look … over <ms>`, and waits for the `event arrived`
of that glide (the first frame captured at or after the `until=` sequence the reply named)
before moving on. Standard library only.

    python3 examples/gaze_sweep.py [--socket PATH] [--loops N] [--steps N] [--step-ms MS] [--zoom Z]
"""
import argparse
import math
import os
import socket
import sys


def default_socket():
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "pieyes.sock") if runtime else "/tmp/pieyes.sock"


class Pieyes:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5.0)
        self.sock.connect(path)
        self.buf = b""
        self.events = []

    def _line(self):
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("pieyes closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def command(self, cmd):
        """Send one command; return its reply (events that arrive meanwhile are kept)."""
        self.sock.sendall(cmd.encode() + b"\n")
        while True:
            line = self._line()
            if line.startswith("event "):
                self.events.append(line)
                continue
            if line.startswith("err "):
                raise RuntimeError(f"{cmd!r}: {line}")
            return line

    def wait_arrived(self, eye, seq):
        """Wait for the event saying `eye` arrived where it was sent (a frame at or after
        `seq` was captured); return that frame's sequence and crop."""
        while True:
            line = self.events.pop(0) if self.events else self._line()
            if line.startswith(f"event arrived eye={eye} "):
                fields = dict(f.split("=", 1) for f in line.split()[2:])
                if int(fields["seq"]) >= seq:
                    return int(fields["seq"]), fields["crop"]


def fields(reply):
    return dict(f.split("=", 1) for f in reply.split()[1:] if "=" in f)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default=default_socket())
    ap.add_argument("--loops", type=int, default=2)
    ap.add_argument("--zoom", type=float, default=2.0)
    ap.add_argument("--step-ms", type=int, default=150)
    ap.add_argument("--steps", type=int, default=24, help="steps per figure of eight")
    args = ap.parse_args()

    eyes = Pieyes(args.socket)
    eyes.command("watch")
    print(eyes.command(f"zoom both {args.zoom} over 500"))
    steps = args.steps
    for i in range(args.loops * steps):
        a = 2 * math.pi * i / steps
        x, y = 0.8 * math.sin(a), 0.6 * math.sin(2 * a)
        reply = fields(eyes.command(f"look both {x:.3f} {y:.3f} over {args.step_ms}"))
        last = int(reply.get("until", reply["seq"]))
        seq, crop = eyes.wait_arrived(0, last)
        print(f"look {x:+.2f} {y:+.2f}: eye 0 frame {seq} crop {crop} (asked {reply['crop0']})")
        if crop != reply["crop0"]:
            print("  the camera applied a different crop than commanded", file=sys.stderr)
    print(eyes.command("look both 0 0 over 500"))


if __name__ == "__main__":
    main()
