"""The Lago-compatible loopback server: validation, atomic batches and injected faults."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

from tokenwire.testing.lago_server import DEFAULT_API_KEY, LagoServer, LagoServerProcess

AUTH = {"Authorization": f"Bearer {DEFAULT_API_KEY}"}


def event(transaction_id: str, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "transaction_id": transaction_id,
        "external_subscription_id": "sub_a",
        "code": "llm_input_tokens",
        "timestamp": 1750000000.5,
        "properties": {"value": 12, "model": "gpt"},
    }
    fields.update(overrides)
    return fields


@pytest.fixture
def server() -> Iterator[LagoServer]:
    with LagoServer() as running:
        yield running


@pytest.fixture
def client(server: LagoServer) -> Iterator[httpx2.Client]:
    with httpx2.Client(base_url=server.url, trust_env=False, headers=AUTH) as http:
        yield http


def post(client: httpx2.Client, events: list[Any]) -> httpx2.Response:
    return client.post("/api/v1/events/batch", json={"events": events})


def test_server_accepts_batch(server: LagoServer, client: httpx2.Client) -> None:
    response = post(client, [event("t1"), event("t2")])

    assert response.status_code == 200
    assert [item["transaction_id"] for item in response.json()["events"]] == ["t1", "t2"]
    assert server.accepted_ids() == [("sub_a", "t1"), ("sub_a", "t2")]
    assert server.accepted[0]["properties"] == {"value": 12, "model": "gpt"}


def test_server_requires_key(server: LagoServer, client: httpx2.Client) -> None:
    response = client.post(
        "/api/v1/events/batch",
        json={"events": [event("t1")]},
        headers={"Authorization": "Bearer wrong"},
    )

    assert response.status_code == 401
    assert server.accepted_ids() == []


def test_server_limits_batch_size(server: LagoServer, client: httpx2.Client) -> None:
    response = post(client, [event(f"t{index}") for index in range(101)])

    assert response.status_code == 422
    assert response.json()["error_details"] == {"events": ["too_many_events"]}
    assert server.accepted_ids() == []


def test_server_duplicate_rejects_whole_batch(server: LagoServer, client: httpx2.Client) -> None:
    post(client, [event("t1")])

    response = post(client, [event("t2"), event("t1"), event("t3")])

    assert response.status_code == 422
    assert response.json()["code"] == "validation_errors"
    assert response.json()["error_details"] == {"1": {"transaction_id": ["value_already_exist"]}}
    assert server.accepted_ids() == [("sub_a", "t1")]
    assert server.duplicates_rejected == 1


def test_server_same_id_other_subscription(client: httpx2.Client) -> None:
    post(client, [event("t1")])

    response = post(client, [event("t1", external_subscription_id="sub_b")])

    assert response.status_code == 200


def test_server_duplicate_within_batch(client: httpx2.Client) -> None:
    response = post(client, [event("t1"), event("t1")])

    assert response.status_code == 422
    assert response.json()["error_details"] == {"1": {"transaction_id": ["value_already_exist"]}}


@pytest.mark.parametrize(
    ("bad", "details"),
    [
        pytest.param(
            event(
                "",
            ),
            {"transaction_id": ["value_is_mandatory"]},
            id="no-id",
        ),
        pytest.param(event("t", code=None), {"code": ["value_is_mandatory"]}, id="no-code"),
        pytest.param(
            event("t", external_subscription_id=""),
            {"external_subscription_id": ["value_is_mandatory"]},
            id="no-sub",
        ),
        pytest.param(
            event("t", timestamp="yesterday"), {"timestamp": ["invalid_format"]}, id="timestamp"
        ),
        pytest.param(
            event("t", properties={"value": "12a"}),
            {"properties": ["value_is_not_valid_number"]},
            id="value",
        ),
        pytest.param(
            event("t", properties=[1]), {"properties": ["invalid_format"]}, id="properties-list"
        ),
    ],
)
def test_server_validates_event(
    server: LagoServer, client: httpx2.Client, bad: dict[str, Any], details: Any
) -> None:
    response = post(client, [event("ok"), bad])

    assert response.status_code == 422
    assert response.json()["error_details"] == {"1": details}
    assert server.accepted_ids() == []


def test_server_accepts_numeric_strings(client: httpx2.Client) -> None:
    response = post(client, [event("t", timestamp="1750000000.5", properties={"value": "3"})])

    assert response.status_code == 200


def test_server_known_subscriptions_only() -> None:
    with (
        LagoServer(subscriptions={"sub_a"}) as server,
        httpx2.Client(base_url=server.url, trust_env=False, headers=AUTH) as http,
    ):
        response = post(http, [event("t", external_subscription_id="sub_zzz")])

    assert response.status_code == 422
    assert response.json()["error_details"] == {
        "0": {"external_subscription_id": ["subscription_not_found"]}
    }


def test_server_poison_rule(server: LagoServer, client: httpx2.Client) -> None:
    server.poison(lambda item: item["transaction_id"] == "bad")

    response = post(client, [event("good"), event("bad")])

    assert response.status_code == 422
    assert response.json()["error_details"] == {"1": {"properties": ["value_is_not_valid_number"]}}


def test_server_fail_next_then_healthy(server: LagoServer, client: httpx2.Client) -> None:
    server.fail_next(2, status=503)
    server.fail_next(1, status=429, headers={"Retry-After": "1"})

    statuses = [post(client, [event(f"t{index}")]) for index in range(4)]

    assert [response.status_code for response in statuses] == [503, 503, 429, 200]
    assert statuses[2].headers["retry-after"] == "1"
    assert server.accepted_ids() == [("sub_a", "t3")]
    assert [request.fault for request in server.requests] == [
        "HTTP 503",
        "HTTP 503",
        "HTTP 429",
        None,
    ]


def test_server_down_refuses_connections(server: LagoServer) -> None:
    server.go_down()

    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", server.port), timeout=2),
    ):
        pass

    server.come_up()
    with httpx2.Client(base_url=server.url, trust_env=False, headers=AUTH) as http:
        assert post(http, [event("t1")]).status_code == 200


def test_server_down_drops_open_connection(server: LagoServer, client: httpx2.Client) -> None:
    post(client, [event("t1")])

    server.go_down()

    with pytest.raises(httpx2.TransportError):
        post(client, [event("t2")])


def test_server_rejects_chunked_body(server: LagoServer) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"events": []}'

    with httpx2.Client(base_url=server.url, trust_env=False, headers=AUTH) as http:
        response = http.post("/api/v1/events/batch", content=chunks())

    assert response.status_code == 411


def test_server_other_paths(client: httpx2.Client) -> None:
    assert client.post("/api/v1/events", json={}).status_code == 404
    assert client.get("/api/v1/events/batch").status_code == 405
    assert client.get("/_tokenwire/stats").json()["accepted"] == 0


def test_server_process_serves_and_counts() -> None:
    with (
        LagoServerProcess() as process,
        httpx2.Client(base_url=process.url, trust_env=False, headers=AUTH) as http,
    ):
        response = post(http, [event("t1"), event("t2")])
        statistics = process.statistics()

    assert response.status_code == 200
    assert statistics["accepted"] == 2
    assert statistics["requests"] == 1
