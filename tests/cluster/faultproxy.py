#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""TCP fault proxy for the cluster tests: one process, many directed links.

Each proxy listens on a loopback port and forwards every connection to a
target port. The tests route every peer address through one proxy per
direction (n1 dials n2 through "1->2"), so any link can be cut on its own.

Control: one TCP socket on 127.0.0.1, one request per line, one JSON reply
per line. A request is either JSON ({"cmd": "cut", "names": ["1->2"]}) or
words (cut 1->2 2->1):

  add NAME LISTEN TARGET [HOST]   create a proxy (LISTEN 0 = any free port);
                                  replies {"ok": true, "listen": PORT}
  cut NAME... [mode=reset|blackhole]
                                  reset: close every connection and close
                                  new ones at once; blackhole: keep them
                                  open but drop every byte (a silent link)
  resume NAME...                  forward again (new connections only; a
                                  cut kills the old ones)
  delay NAME MS                   hold every chunk MS ms in each direction
  list                            proxies, their state and counters
  remove NAME
  quit                            close everything and exit

A NAME may be "*" for every proxy. On start it prints "control PORT" on
stdout. SIGTERM, SIGINT, "quit", or the death of --parent-pid end it after
closing every socket. Buffers are bounded: a queue of at most 64 chunks of
64 KiB per direction, so a stalled side stalls the other (TCP backpressure)
instead of growing memory.
"""

import argparse
import asyncio
import json
import os
import signal
import sys
import time

CHUNK = 65536
QUEUE_CHUNKS = 64
MAX_PROXIES = 1024
MAX_CONNS = 256  # per proxy
MAX_LINE = 65536


class Conn:
    """One accepted connection and its outgoing twin."""

    def __init__(self, proxy):
        self.proxy = proxy
        self.tasks = []
        self.writers = []

    def abort(self):
        for w in self.writers:
            try:
                w.transport.abort()  # RST: the link dies at once
            except Exception:
                pass
        for t in self.tasks:
            t.cancel()


class Proxy:
    def __init__(self, name, target_host, target_port):
        self.name = name
        self.target_host = target_host
        self.target_port = target_port
        self.listen = 0
        self.server = None
        self.mode = "up"  # up, reset, blackhole
        self.delay_ms = 0
        self.conns = set()
        self.accepted = 0
        self.refused = 0
        self.bytes = 0

    def info(self):
        return {
            "name": self.name,
            "listen": self.listen,
            "target": self.target_port,
            "host": self.target_host,
            "state": self.mode,
            "delay_ms": self.delay_ms,
            "connections": len(self.conns),
            "accepted": self.accepted,
            "refused": self.refused,
            "bytes": self.bytes,
        }

    async def start(self, port):
        self.server = await asyncio.start_server(
            self.on_accept, "127.0.0.1", port, limit=CHUNK
        )
        self.listen = self.server.sockets[0].getsockname()[1]

    def cut(self, mode):
        self.mode = mode
        if mode == "reset":
            for c in list(self.conns):
                c.abort()
            self.conns.clear()

    async def close(self):
        self.cut("reset")
        if self.server:
            self.server.close()
            await self.server.wait_closed()

    async def on_accept(self, reader, writer):
        if self.mode == "reset" or len(self.conns) >= MAX_CONNS:
            self.refused += 1
            writer.transport.abort()
            return
        self.accepted += 1
        conn = Conn(self)
        conn.writers.append(writer)
        self.conns.add(conn)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.target_host, self.target_port, limit=CHUNK
                ),
                5,
            )
        except (OSError, asyncio.TimeoutError):
            # Target down: the dialler sees what it would see without us.
            self.conns.discard(conn)
            writer.transport.abort()
            return
        if conn not in self.conns:  # cut while we were connecting
            up_writer.transport.abort()
            return
        conn.writers.append(up_writer)
        loop = asyncio.get_running_loop()
        for r, w in ((reader, up_writer), (up_reader, writer)):
            q = asyncio.Queue(QUEUE_CHUNKS)
            conn.tasks.append(loop.create_task(self.pump_in(r, q)))
            conn.tasks.append(loop.create_task(self.pump_out(q, w)))
        try:
            await asyncio.gather(*conn.tasks)
        except (asyncio.CancelledError, OSError):
            pass  # a reset or a cut: either way the pair goes
        finally:
            conn.abort()
            self.conns.discard(conn)

    async def pump_in(self, reader, q):
        """Reads chunks and queues them with their delivery time."""
        while True:
            data = await reader.read(CHUNK)
            if not data:
                await q.put(None)
                return
            if self.mode == "blackhole":
                continue
            await q.put((time.monotonic() + self.delay_ms / 1000.0, data))

    async def pump_out(self, q, writer):
        """Delivers queued chunks in order, each no sooner than its time."""
        while True:
            item = await q.get()
            if item is None:
                # Half-close: pass the EOF on, keep the other way open.
                if writer.can_write_eof():
                    writer.write_eof()
                return
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if self.mode == "blackhole":
                continue
            writer.write(data)
            self.bytes += len(data)
            await writer.drain()


class Control:
    def __init__(self):
        self.proxies = {}
        self.done = asyncio.Event()

    def select(self, names):
        if not names:
            raise ValueError("no proxy named")
        if "*" in names:
            return list(self.proxies.values())
        missing = [n for n in names if n not in self.proxies]
        if missing:
            raise ValueError("no such proxy: " + ", ".join(missing))
        return [self.proxies[n] for n in names]

    async def handle(self, req):
        cmd = req.get("cmd")
        names = req.get("names") or ([req["name"]] if "name" in req else [])
        if cmd == "add":
            name = str(req["name"])
            if name in self.proxies:
                raise ValueError("proxy exists: " + name)
            if len(self.proxies) >= MAX_PROXIES:
                raise ValueError("too many proxies")
            p = Proxy(name, req.get("host", "127.0.0.1"), int(req["target"]))
            await p.start(int(req.get("listen", 0)))
            self.proxies[name] = p
            return {"ok": True, "listen": p.listen}
        if cmd == "cut":
            mode = req.get("mode", "reset")
            if mode not in ("reset", "blackhole"):
                raise ValueError("mode must be reset or blackhole")
            for p in self.select(names):
                p.cut(mode)
            return {"ok": True}
        if cmd == "resume":
            for p in self.select(names):
                p.mode = "up"
            return {"ok": True}
        if cmd == "delay":
            ms = int(req["ms"])
            if ms < 0 or ms > 600000:
                raise ValueError("delay out of range")
            for p in self.select(names):
                p.delay_ms = ms
            return {"ok": True}
        if cmd == "list":
            return {"ok": True, "proxies": [p.info() for p in self.proxies.values()]}
        if cmd == "remove":
            for p in self.select(names):
                await p.close()
                del self.proxies[p.name]
            return {"ok": True}
        if cmd == "quit":
            self.done.set()
            return {"ok": True}
        raise ValueError("unknown command: %r" % (cmd,))

    @staticmethod
    def parse(line):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
        words = line.split()
        if not words:
            raise ValueError("empty request")
        cmd, args = words[0], words[1:]
        req = {"cmd": cmd}
        if cmd == "add":
            req["name"], req["listen"], req["target"] = args[0], args[1], args[2]
            if len(args) > 3:
                req["host"] = args[3]
        elif cmd == "delay":
            req["name"], req["ms"] = args[0], args[1]
        else:
            for a in args:
                if a.startswith("mode="):
                    req["mode"] = a[5:]
                else:
                    req.setdefault("names", []).append(a)
        return req

    async def on_client(self, reader, writer):
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    break  # line over the limit
                if not line:
                    break
                try:
                    reply = await self.handle(self.parse(line.decode()))
                except Exception as e:  # any bad request gets an answer
                    reply = {"ok": False, "error": str(e)}
                writer.write((json.dumps(reply) + "\n").encode())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def shutdown(self):
        for p in list(self.proxies.values()):
            await p.close()
        self.proxies.clear()


async def watch_parent(pid, done):
    # Reparenting is the reliable sign: a dead parent may linger as a
    # zombie that kill(pid, 0) still finds.
    while not done.is_set():
        if os.getppid() != pid:
            done.set()
            return
        await asyncio.sleep(0.5)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--control-port", type=int, default=0)
    ap.add_argument("--parent-pid", type=int, default=0,
                    help="exit when this process is gone")
    args = ap.parse_args()

    ctl = Control()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, ctl.done.set)
    server = await asyncio.start_server(
        ctl.on_client, "127.0.0.1", args.control_port, limit=MAX_LINE
    )
    port = server.sockets[0].getsockname()[1]
    print("control %d" % port, flush=True)
    watcher = None
    if args.parent_pid:
        watcher = loop.create_task(watch_parent(args.parent_pid, ctl.done))
    await ctl.done.wait()
    server.close()
    await ctl.shutdown()
    if watcher:
        watcher.cancel()
    # Control connections still open are dropped with the loop.


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
