"""Independent reads side by side under structured concurrency (a TaskGroup: one failing cancels the rest),
raising the first real error as itself so callers keep catching the exception types they expect."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import TypeVar

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")


def first_error(group: BaseExceptionGroup) -> BaseException:
    """The first real error of a TaskGroup's exception group."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


async def _awaited(value: Awaitable[T]) -> T:
    return await value


async def both(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """The results of two independent awaitables run at the same time."""
    try:
        async with asyncio.TaskGroup() as tg:
            a = tg.create_task(_awaited(first))
            b = tg.create_task(_awaited(second))
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return a.result(), b.result()


async def bounded(work: Sequence[Awaitable[T]], limit: int) -> list[T]:
    """The results of WORK in its order, at most LIMIT awaited at once."""
    slots = asyncio.Semaphore(max(1, limit))

    async def one(item: Awaitable[T]) -> T:
        async with slots:
            return await item

    try:
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(item)) for item in work]
    except BaseExceptionGroup as group:
        raise first_error(group) from None
    return [t.result() for t in tasks]
