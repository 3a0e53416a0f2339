"""Independent reads side by side under structured concurrency (a TaskGroup: one failing cancels the rest),
raising the first real error as itself so callers keep catching the exception types they expect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


async def _awaited(value: Awaitable[T]) -> T:
    return await value


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """The results of two independent awaitables run at the same time."""
    try:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(_awaited(first))
            b = tg.create_task(_awaited(second))
    except BaseExceptionGroup as group:
        error: BaseException = group
        while isinstance(error, BaseExceptionGroup):
            error = error.exceptions[0]
        raise error from None
    return a.result(), b.result()
