"""The local endpoint: an exact split between stable and candidate, answers naming the model, routes reloaded."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from components.serving.router import VERSION_HEADER, Routes, make_app


def model_app(version: str) -> web.Application:
    app = web.Application()

    async def predict(request: web.Request) -> web.Response:
        raw = await request.read()
        return web.json_response({"model": version, "echo": json.loads(raw) if raw else None, "path": request.path})

    app.router.add_route("*", "/{tail:.*}", predict)
    return app


async def _route(tmp_path: Path) -> dict:
    stable, candidate = TestServer(model_app("s1")), TestServer(model_app("c2"))
    await stable.start_server()
    await candidate.start_server()
    routes_file = tmp_path / "routes.json"

    def write(percent: int, with_candidate: bool = True) -> None:
        routes_file.write_text(json.dumps({
            "stable": {"url": str(stable.make_url("")), "version": "s1"},
            "candidate": {"url": str(candidate.make_url("")), "version": "c2"} if with_candidate else None,
            "percent": percent}))

    write(20)
    client = TestClient(TestServer(make_app(Routes(routes_file))))
    await client.start_server()
    out: dict = {}
    try:
        seen = []
        for i in range(100):
            answer = await client.post("/v1/models/m:predict", json={"instances": [i]})
            body = await answer.json()
            assert answer.headers[VERSION_HEADER] == body["model"] and body["echo"] == {"instances": [i]}
            assert body["path"] == "/v1/models/m:predict"
            seen.append(body["model"])
        out["split"] = {v: seen.count(v) for v in ("s1", "c2")}
        out["spread"] = max(len(run) for run in "".join("c" if v == "c2" else "s" for v in seen).split("c"))
        status = await (await client.get("/router/status")).json()
        out["status"] = status["served"]
        time.sleep(0.01)
        write(100, with_candidate=True)
        os.utime(routes_file)  # a changed file is re-read
        out["all_candidate"] = {(await (await client.get("/v2/health/ready")).json())["model"] for _ in range(10)}
        write(0, with_candidate=False)
        time.sleep(0.01)
        os.utime(routes_file)
        out["back"] = {(await (await client.get("/x")).json())["model"] for _ in range(10)}
    finally:
        await client.close()
        await stable.close()
        await candidate.close()
    return out


def test_the_endpoint_splits_exactly_names_the_model_and_follows_the_routes_file(tmp_path: Path) -> None:
    out = asyncio.run(_route(tmp_path))
    assert out["split"] == {"s1": 80, "c2": 20} and out["status"] == {"s1": 80, "c2": 20}
    assert out["spread"] <= 4  # spread evenly: at most 4 stable answers between two candidate ones
    assert out["all_candidate"] == {"c2"} and out["back"] == {"s1"}


def test_no_model_deployed_is_a_503(tmp_path: Path) -> None:
    async def run() -> int:
        client = TestClient(TestServer(make_app(Routes(tmp_path / "missing.json"))))
        await client.start_server()
        try:
            return (await client.get("/v2/health/ready")).status
        finally:
            await client.close()

    assert asyncio.run(run()) == 503
