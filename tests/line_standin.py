"""The LINE stand-in served for real on an ephemeral port, with a webhook sink that records posts.

Imported by the conftest of each test package that needs it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from linebot.v3.messaging import ApiClient, Configuration, MessagingApi

from mocks.line.app import create_app
from mocks.line.state import Channel, Config
from tests.live_server import live_server

SECRET = "stand-in-test-secret"
TOKEN = "stand-in-test-token"


@dataclass
class Sink:
    """Receives the stand-in's webhooks; answers with `status`."""

    status: int = 200
    posts: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@dataclass
class StandIn:
    url: str
    channel: Channel
    sink: Sink
    control: httpx.Client

    def user(self, name: str = "テスト 太郎", *, friend: bool = True) -> str:
        response = self.control.post("/_control/users", json={"display_name": name, "friend": friend})
        response.raise_for_status()
        return str(response.json()["user_ids"][0])

    def act(self, user_id: str, kind: str, **fields: str) -> httpx.Response:
        return self.control.post(f"/_control/users/{user_id}/events", json={"type": kind, **fields})


@pytest.fixture(scope="module")
def sink_server() -> Iterator[tuple[str, Sink]]:
    sink = Sink()
    app = FastAPI()

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        sink.posts.append((dict(request.headers), await request.body()))
        return Response(status_code=sink.status)

    with live_server(app) as url:
        yield url, sink


@pytest.fixture(scope="module")
def standin_server(sink_server: tuple[str, Sink]) -> Iterator[tuple[str, Channel]]:
    config = Config(
        channel_secret=SECRET,
        access_token=TOKEN,
        webhook_url=f"{sink_server[0]}/hook",
        demo_users=(),
        redelivery_interval_seconds=3600,
        simulator_reply_wait_seconds=0,
    )
    app = create_app(config)
    with live_server(app) as url:
        yield url, app.state.channel


@pytest.fixture
def standin(standin_server: tuple[str, Channel], sink_server: tuple[str, Sink]) -> Iterator[StandIn]:
    url, channel = standin_server
    _, sink = sink_server
    with httpx.Client(base_url=url) as control:
        control.post("/_control/reset").raise_for_status()
        sink.status, sink.posts[:] = 200, []
        yield StandIn(url=url, channel=channel, sink=sink, control=control)
        control.patch(
            "/_control/config",
            json={
                "rate_limits": {"multicast": 200, "push": 2000},
                "monthly_quota": 5000,
                "quota_used": 0,
                "link_token_ttl_seconds": 600,
                "webhook_redelivery": True,
            },
        )


@pytest.fixture
def messaging(standin: StandIn) -> Iterator[MessagingApi]:
    """The real SDK (urllib3 on the wire), pointed at the stand-in."""
    with ApiClient(Configuration(host=standin.url, access_token=TOKEN)) as client:
        yield MessagingApi(client)
