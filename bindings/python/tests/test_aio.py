"""asyncio: start_server with corral accepting, and async iteration of sockets."""

from __future__ import annotations

import asyncio

import pytest

import corral
import corral.aio


@pytest.mark.asyncio
async def test_start_server_has_the_shape_of_asyncio_start_server():
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readline():
            writer.write(data.upper())
            await writer.drain()
        writer.close()

    server = await corral.aio.start_server(echo, "127.0.0.1", 0, acceptors=2)
    async with server:
        assert server.is_serving()
        for i in range(5):
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(f"hello {i}\n".encode())
            assert await asyncio.wait_for(reader.readline(), 30) == f"HELLO {i}\n".encode()
            writer.close()
            await writer.wait_closed()
        assert server.listener.stats()["accepts"] == 5
    assert not server.is_serving()
    assert server.listener.closed


@pytest.mark.asyncio
async def test_serve_forever_until_closed():
    async def handle(reader, writer):
        writer.write(b"hi")
        await writer.drain()
        writer.close()

    server = await corral.aio.start_server(handle, start_serving=False)
    task = asyncio.create_task(server.serve_forever())
    await asyncio.sleep(0)
    reader, writer = await asyncio.open_connection(*server.address)
    assert await asyncio.wait_for(reader.read(), 30) == b"hi"
    writer.close()
    server.close()
    await asyncio.wait_for(task, 30)
    await server.wait_closed()


@pytest.mark.asyncio
async def test_async_for_sockets():
    with corral.listen(("127.0.0.1", 0)) as listener:
        clients = [await asyncio.open_connection(*listener.address) for _ in range(3)]
        got = []
        async for sock in listener:
            got.append(sock)
            if len(got) == 3:
                break
        assert sorted(s.getpeername() for s in got) == sorted(w.get_extra_info("sockname") for _, w in clients)
        for s in got:
            s.close()
        for _, w in clients:
            w.close()
            await w.wait_closed()
