"""The OpenAPI document lists every route the app serves, with its method, body and permission."""

from __future__ import annotations

from starlette.routing import Mount, Route

from manager.routes import ROUTES
from supernode.routes import ROUTES as SUPERNODE_ROUTES
from tests.manager.conftest import Running


async def test_openapi_lists_every_route(sqlite_platform: Running) -> None:
    answer = await sqlite_platform.http.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    doc = answer.json()
    assert doc["openapi"].startswith("3.1")
    listed = {(method.upper(), path) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for route in sqlite_platform.app.app.routes:
        assert isinstance(route, Route | Mount)
        if not route.path.startswith("/api/"):
            # The web console (manager/console/): pages for a browser, not the API, so not in its document.
            assert route.path == "/" or route.path.startswith("/console"), route.path
            continue
        assert isinstance(route, Route)
        served |= {(m, route.path) for m in (route.methods or ()) if m != "HEAD"}
    assert listed == served == {(r.method, r.path) for r in ROUTES}
    assert len(listed) == 39
    create = doc["paths"]["/api/v1/users"]["post"]
    assert create["x-permission"] == "users:write"
    assert set(create["requestBody"]["content"]["application/json"]["schema"]["properties"]) == {
        "name", "role", "password"}
    assert "security" not in doc["paths"]["/api/v1/login"]["post"]
    traffic = doc["paths"]["/api/v1/analysis/traffic"]["get"]
    assert traffic["x-permission"] == "analysis:read"
    assert {(p["name"], p["in"]) for p in traffic["parameters"]} == {
        ("since", "query"), ("step", "query"), ("cluster", "query"), ("host", "query"), ("format", "query")}


def test_no_platform_path_is_one_the_supernode_routes() -> None:
    from starlette.routing import compile_path

    supernode = [compile_path(r.path)[0] for r in SUPERNODE_ROUTES]
    for route in ROUTES:
        sample = route.path.replace("{name}", "x").replace("{token_id}", "1").replace("{task_id}", "1")
        assert not any(p.match(sample) for p in supernode), route.path
    for path in ("/", "/console", "/console/", "/console/hosts/x/cordon", "/console/static/console.css"):
        assert not any(p.match(path) for p in supernode), path
