"""The event loop a gateway or a receiver runs on: the standard library's (``asyncio``) or
``uvloop`` (libuv under the same asyncio API; its transports write in C).

    loops.run(main(), "uvloop")
"""
import asyncio
from typing import Callable, Optional

LOOPS = ("asyncio", "uvloop")


def loop_factory(name: str) -> Optional[Callable[[], asyncio.AbstractEventLoop]]:
    if name == "uvloop":
        import uvloop
        return uvloop.new_event_loop
    if name != "asyncio":
        raise ValueError(f"an event loop is one of {', '.join(LOOPS)}, not {name!r}")
    return None


def run(main, loop: str = "asyncio"):
    with asyncio.Runner(loop_factory=loop_factory(loop)) as runner:
        return runner.run(main)
