"""Every 200 gets a validator: a weak ETag over the body unless the route set its own, and a
GET naming it in If-None-Match gets 304; other statuses and large bodies pass untouched."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from web.caching import MAX_BUFFERED_BYTES, ETags, weak_etag


async def plain(request):
    return JSONResponse({"queues": {"manual": 0}})


async def own(request):
    return JSONResponse({"a": 1}, headers={"ETag": 'W/"mine"'})


async def created(request):
    return JSONResponse({"status": "created"}, status_code=201)


async def streamed(request):
    async def chunks():
        yield b"{"
        yield b'"a": 1}'

    return StreamingResponse(chunks(), media_type="application/json")


async def huge(request):
    return Response(b"x" * (MAX_BUFFERED_BYTES + 1))


def client() -> TestClient:
    app = Starlette(routes=[Route("/plain", plain, methods=["GET", "POST"]), Route("/own", own),
                            Route("/created", created, methods=["POST"]), Route("/streamed", streamed),
                            Route("/huge", huge)],
                    middleware=[Middleware(ETags)])
    return TestClient(app)


def test_a_200_without_an_etag_gets_one_over_its_body_and_a_matching_get_gets_304():
    api = client()
    first = api.get("/plain")
    assert first.headers["etag"] == weak_etag(first.content)
    again = api.get("/plain", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
    assert api.get("/plain", headers={"If-None-Match": 'W/"other"'}).status_code == 200


def test_writes_get_an_etag_but_never_a_304():
    api = client()
    etag = api.post("/plain").headers["etag"]
    assert api.post("/plain", headers={"If-None-Match": etag}).status_code == 200


def test_a_routes_own_etag_and_other_statuses_are_left_alone():
    api = client()
    assert api.get("/own").headers["etag"] == 'W/"mine"'
    assert api.get("/own", headers={"If-None-Match": 'W/"mine"'}).status_code == 200
    assert "etag" not in api.post("/created").headers


def test_streamed_bodies_are_hashed_whole_and_huge_ones_pass_without_an_etag():
    api = client()
    assert api.get("/streamed").headers["etag"] == weak_etag(b'{"a": 1}')
    response = api.get("/huge")
    assert response.status_code == 200 and len(response.content) == MAX_BUFFERED_BYTES + 1
    assert "etag" not in response.headers
