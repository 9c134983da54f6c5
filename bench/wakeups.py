"""What a wake-up costs on this machine: the unit price under every per-message figure.

``python -m bench.wakeups``

Each process on the event path sleeps in the kernel between messages and pays for every
wake-up; on a virtual machine that price can be several times a bare-metal one, and at
moderate rates (a message every millisecond or two, too sparse to batch) it, not the
Python work, is what a message costs. Printed: CPU per round trip between two processes
over a socket pair (two wake-ups, one each side), per timer wake-up, and per asyncio
loop iteration that sleeps on a timer, next to one that does not.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
import sys
import time

from bench.common import table

ROUND_TRIPS = 20_000
TIMER_WAKES = 2_000


def round_trip_cpu() -> tuple[float, float]:
    """CPU s per round trip in this process and in its peer."""
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        for _ in range(ROUND_TRIPS):
            b.send(b.recv(64))
        os._exit(0)
    start = time.process_time()
    for _ in range(ROUND_TRIPS):
        a.send(b"x")
        a.recv(64)
    mine = time.process_time() - start
    os.waitpid(pid, 0)
    child = os.times()
    return mine / ROUND_TRIPS, (child.children_user + child.children_system) / ROUND_TRIPS


def timer_cpu() -> float:
    start = time.process_time()
    for _ in range(TIMER_WAKES):
        select.select([], [], [], 0.0005)
    return (time.process_time() - start) / TIMER_WAKES


async def loop_cpu() -> tuple[float, float]:
    start = time.process_time()
    for _ in range(ROUND_TRIPS):
        await asyncio.sleep(0)
    busy = (time.process_time() - start) / ROUND_TRIPS
    start = time.process_time()
    for _ in range(TIMER_WAKES):
        await asyncio.sleep(0.0005)
    return busy, (time.process_time() - start) / TIMER_WAKES


def main() -> int:
    mine, peer = round_trip_cpu()
    timer = timer_cpu()
    busy, sleeping = asyncio.run(loop_cpu())
    def us(seconds: float) -> str:
        return f"{seconds * 1e6:.1f}"

    print(table("Wake-up costs on this machine", ["what", "CPU us"], [
        ["socket round trip, this side (one wake-up)", us(mine)],
        ["socket round trip, the peer (one wake-up)", us(peer)],
        ["timer wake-up (select, 0.5 ms)", us(timer)],
        ["asyncio loop iteration, nothing to wait for", us(busy)],
        ["asyncio loop iteration sleeping on a 0.5 ms timer", us(sleeping)],
    ]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
