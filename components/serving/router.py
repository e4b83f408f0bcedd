"""The local endpoint: one address on 127.0.0.1 that splits live traffic between the stable and the candidate
model server, as a KServe InferenceService or a Vertex endpoint does on a cluster.

``python -m components.serving.router --routes FILE --port PORT`` forwards every request (v1, v2, metadata,
health) to the stable or the candidate server. The split is exact, not random: of every 100 requests the
candidate gets its percent, spread evenly. Each answer says which model served it (``x-model-version``), so the
split can be counted by the caller. The routes file (``{"stable": {"url", "version"}, "candidate": ... | null,
"percent": N}``) is re-read when it changes, so a rollout moves traffic by rewriting it. ``GET /router/status``
shows the routes and how many requests each version served.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, ClientTimeout, web

log = logging.getLogger("components.serving.router")
VERSION_HEADER = "x-model-version"
CLIENT: web.AppKey[ClientSession] = web.AppKey("client", ClientSession)
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


class Routes:
    """The routes file, re-read when its modification time changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: float = -1.0
        self.data: dict[str, Any] = {}
        self.sent = 0
        self.counts: dict[str, int] = {}

    def current(self) -> dict[str, Any]:
        """The routes in force now."""
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return self.data
        if mtime != self._mtime:
            self.data, self._mtime = json.loads(self.path.read_text()), mtime
        return self.data

    def pick(self) -> dict[str, Any] | None:
        """The backend for the next request: the candidate on ``percent`` of every 100, spread evenly."""
        routes = self.current()
        stable, candidate, percent = routes.get("stable"), routes.get("candidate"), int(routes.get("percent", 0))
        k = self.sent
        self.sent += 1
        if candidate and ((k + 1) * percent) // 100 > (k * percent) // 100:
            return dict(candidate)
        return dict(stable) if stable else (dict(candidate) if candidate else None)


def make_app(routes: Routes) -> web.Application:
    """The aiohttp application forwarding to the routed model servers."""
    app = web.Application(client_max_size=64 * 1024 * 1024)

    async def start(app: web.Application) -> None:
        app[CLIENT] = ClientSession(timeout=ClientTimeout(total=60))

    async def stop(app: web.Application) -> None:
        await app[CLIENT].close()

    async def status(request: web.Request) -> web.Response:
        return web.json_response({"routes": routes.current(), "served": routes.counts, "requests": routes.sent})

    async def forward(request: web.Request) -> web.StreamResponse:
        target = routes.pick()
        if target is None:
            return web.json_response({"error": "no model is deployed behind this endpoint"}, status=503)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        url = target["url"].rstrip("/") + request.rel_url.path_qs
        try:
            async with request.app[CLIENT].request(request.method, url, data=body, headers=headers) as answer:
                payload = await answer.read()
                out = {k: v for k, v in answer.headers.items() if k.lower() not in _HOP}
        except OSError as err:
            return web.json_response({"error": f"model server {target['version']} unreachable: {err}"}, status=502)
        version = str(target.get("version", ""))
        routes.counts[version] = routes.counts.get(version, 0) + 1
        out[VERSION_HEADER] = version
        return web.Response(body=payload, status=answer.status, headers=out)

    app.router.add_get("/router/status", status)
    app.router.add_route("*", "/{tail:.*}", forward)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    return app


def main(argv: list[str] | None = None) -> int:
    """Serve the endpoint until SIGTERM or SIGINT (aiohttp stops cleanly on both)."""
    parser = argparse.ArgumentParser(prog="python -m components.serving.router", description=__doc__)
    parser.add_argument("--routes", required=True, help="routes file (JSON), re-read when it changes")
    parser.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s router %(levelname)s %(message)s")
    web.run_app(make_app(Routes(Path(args.routes))), host="127.0.0.1", port=args.port, print=None,
                access_log=None, handle_signals=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
