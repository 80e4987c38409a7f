"""An existing asyncio server whose accept moves to corral with a two-line change.

    python asyncio_offload.py [PORT]       serve until Ctrl-C
    python asyncio_offload.py --self-test  serve, run a few clients, check, exit

The server below is a plain asyncio line-echo server. The only changes from the
asyncio original are the import and the `start_server` call (marked).
"""

import asyncio
import sys

import corral.aio  # change 1 of 2


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def self_test(address) -> int:
    failures = 0
    for i in range(10):
        reader, writer = await asyncio.open_connection(*address)
        writer.write(f"hello {i}\n".encode())
        got = await asyncio.wait_for(reader.readline(), 30)
        failures += got != f"HELLO {i}\n".encode()
        writer.close()
        await writer.wait_closed()
    print(f"asyncio_offload: {10 - failures} passed, {failures} failed")
    return failures


async def main() -> int:
    test = "--self-test" in sys.argv
    port = 0 if test or len(sys.argv) < 2 else int(sys.argv[1])
    # was: server = await asyncio.start_server(handle, "127.0.0.1", port)
    server = await corral.aio.start_server(handle, "127.0.0.1", port)  # change 2 of 2
    async with server:
        print(f"asyncio_offload: serving on {server.address}", flush=True)
        if test:
            return await self_test(server.address)
        await server.serve_forever()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except KeyboardInterrupt:
        pass
