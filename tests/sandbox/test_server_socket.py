"""The rehearsal server's socket: answers are not held back by Nagle's algorithm (see loopback_socket)."""

from __future__ import annotations

import asyncio
import socket

from sandbox.testing import loopback_socket


def test_accepted_connections_send_without_nagle() -> None:
    async def main() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        listening = loopback_socket(0)
        server = await asyncio.start_server(accepted, sock=listening)
        async with server:
            _, writer = await asyncio.open_connection(*listening.getsockname())
            value = await asyncio.wait_for(seen, 5)
            writer.close()
        return value

    assert asyncio.run(main()) != 0


def test_a_taken_port_falls_back_to_a_free_one() -> None:
    first = loopback_socket(0)
    first.listen()
    try:
        second = loopback_socket(first.getsockname()[1])
        try:
            assert second.getsockname()[1] != first.getsockname()[1]
        finally:
            second.close()
    finally:
        first.close()
