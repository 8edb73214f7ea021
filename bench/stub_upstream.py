"""A small asyncio HTTP/1.1 upstream, used where nginx is not installed.

``python -m bench.stub_upstream PORT [DELAY_S] [FILES_DIR]`` answers every request
like bench's nginx configuration does, after DELAY_S seconds.
"""

import asyncio
import os
import sys

from bench.responses import answer_for


class Upstream(asyncio.Protocol):
    def __init__(self, delay, files):
        self.delay, self.files, self.buffer = delay, files, b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            asyncio.get_running_loop().create_task(self.reply(method, path))

    async def reply(self, method, path):
        if self.delay:
            await asyncio.sleep(self.delay)
        status, headers, body = answer_for(method, path.split("?")[0], self.files)
        head = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.transport.write(head.encode() + b"\r\n" + body)


async def main(port, delay, files):
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Upstream(delay, files), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    port, delay = int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    files = sys.argv[3] if len(sys.argv) > 3 else os.getcwd()
    asyncio.run(main(port, delay, files))
