"""The LINE stand-in behaves like the platform where tsunagu depends on it, driven by the real SDK."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from linebot.v3 import SignatureValidator
from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    MessagingApi,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    TextMessage,
)
from linebot.v3.messaging.exceptions import ApiException

from tests.line_standin import SECRET, StandIn


def texts(standin: StandIn, user_id: str) -> list[str]:
    chat = standin.control.get(f"/_control/users/{user_id}/chat").json()
    return [e["message"].get("text", "") for e in chat if e["sender"] == "bot"]


def test_push_reaches_a_friend_and_counts_against_the_quota(
    standin: StandIn, messaging: MessagingApi
) -> None:
    friend = standin.user()
    response = messaging.push_message(
        PushMessageRequest(to=friend, messages=[TextMessage(text="こんにちは")])
    )
    assert len(response.sent_messages) == 1
    assert texts(standin, friend) == ["こんにちは"]
    assert messaging.get_profile(friend).display_name == "テスト 太郎"
    assert messaging.get_message_quota().value == 5000
    assert messaging.get_message_quota_consumption().total_usage == 1


def test_a_wrong_access_token_is_refused(standin: StandIn) -> None:
    friend = standin.user()
    with (
        ApiClient(Configuration(host=standin.url, access_token="wrong")) as client,
        pytest.raises(ApiException) as refused,
    ):
        MessagingApi(client).push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="x")]))
    assert refused.value.status == 401
    assert texts(standin, friend) == []


def test_a_repeated_retry_key_answers_409_and_delivers_once(
    standin: StandIn, messaging: MessagingApi
) -> None:
    friends = [standin.user(f"友 {i}") for i in range(3)]
    key = str(uuid.uuid4())
    request = MulticastRequest(to=friends, messages=[TextMessage(text="お知らせ")])
    first = messaging.multicast_with_http_info(request, x_line_retry_key=key)
    assert first.status_code == 200
    with pytest.raises(ApiException) as again:
        messaging.multicast(request, x_line_retry_key=key)
    assert again.value.status == 409
    assert again.value.headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    summary = standin.control.get("/_control/summary").json()
    assert (summary["recipients"], summary["duplicates"], summary["quota_used"]) == (3, 0, 3)


def test_retry_keys_are_refused_on_reply_and_must_be_uuids(standin: StandIn, messaging: MessagingApi) -> None:
    friend = standin.user()
    with pytest.raises(ApiException) as not_uuid:
        messaging.push_message(
            PushMessageRequest(to=friend, messages=[TextMessage(text="x")]), x_line_retry_key="abc"
        )
    assert not_uuid.value.status == 400
    reply = standin.control.post(
        "/v2/bot/message/reply",
        headers={"authorization": "Bearer stand-in-test-token", "x-line-retry-key": str(uuid.uuid4())},
        json={"replyToken": "x", "messages": [{"type": "text", "text": "x"}]},
    )
    assert reply.status_code == 400
    assert texts(standin, friend) == []


def test_a_lost_response_is_answered_409_on_retry(standin: StandIn, messaging: MessagingApi) -> None:
    friend = standin.user()
    standin.control.post("/_control/faults", json={"endpoint": "push", "kind": "accept_then_error"})
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=friend, messages=[TextMessage(text="一度だけ")])
    with pytest.raises(ApiException) as lost:
        messaging.push_message(request, x_line_retry_key=key)
    assert lost.value.status == 500
    with pytest.raises(ApiException) as retried:
        messaging.push_message(request, x_line_retry_key=key)
    assert retried.value.status == 409
    assert texts(standin, friend) == ["一度だけ"]


def test_an_error_before_acceptance_leaves_the_key_unused(standin: StandIn, messaging: MessagingApi) -> None:
    friend = standin.user()
    standin.control.post("/_control/faults", json={"endpoint": "push", "kind": "error"})
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=friend, messages=[TextMessage(text="再送")])
    with pytest.raises(ApiException) as failed:
        messaging.push_message(request, x_line_retry_key=key)
    assert failed.value.status == 500
    assert messaging.push_message_with_http_info(request, x_line_retry_key=key).status_code == 200
    assert texts(standin, friend) == ["再送"]


def test_rate_limit_429_does_not_use_up_the_retry_key(standin: StandIn, messaging: MessagingApi) -> None:
    friend = standin.user()
    standin.control.patch("/_control/config", json={"rate_limits": {"multicast": 2}})
    request = MulticastRequest(to=[friend], messages=[TextMessage(text="x")])
    messaging.multicast(request)
    messaging.multicast(request)
    key = str(uuid.uuid4())
    with pytest.raises(ApiException) as limited:
        messaging.multicast(request, x_line_retry_key=key)
    assert limited.value.status == 429
    time.sleep(1.05)
    assert messaging.multicast_with_http_info(request, x_line_retry_key=key).status_code == 200


def test_the_monthly_quota_stops_sending_but_not_replies(standin: StandIn, messaging: MessagingApi) -> None:
    a, b = standin.user("甲"), standin.user("乙")
    standin.control.patch("/_control/config", json={"monthly_quota": 3})
    messaging.multicast(MulticastRequest(to=[a, b], messages=[TextMessage(text="1")]))
    with pytest.raises(ApiException) as exhausted:
        messaging.multicast(MulticastRequest(to=[a, b], messages=[TextMessage(text="2")]))
    assert exhausted.value.status == 429
    assert "monthly limit" in json.loads(exhausted.value.body)["message"]
    assert messaging.get_message_quota_consumption().total_usage == 2
    event = standin.act(a, "message", text="もしもし").json()["event"]
    messaging.reply_message(
        ReplyMessageRequest(reply_token=event["replyToken"], messages=[TextMessage(text="はい")])
    )
    assert texts(standin, a) == ["1", "はい"]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "あ" * 5001}]}, "messages[0].text"),
        ({"to": "U" + "0" * 32, "messages": [{"type": "text", "text": "x"}] * 6}, "messages"),
        ({"to": ["U" + "0" * 32] * 501, "messages": [{"type": "text", "text": "x"}]}, "to"),
        (
            {
                "to": "U" + "0" * 32,
                "messages": [
                    {
                        "type": "flex",
                        "altText": "x",
                        "contents": {"type": "carousel", "contents": [{"type": "bubble"}] * 13},
                    }
                ],
            },
            "messages[0].contents.contents",
        ),
        ({"to": "nobody", "messages": [{"type": "text", "text": "x"}]}, "to"),
    ],
)
def test_bodies_over_the_platform_limits_are_400(
    standin: StandIn, body: dict[str, object], problem: str
) -> None:
    endpoint = "multicast" if isinstance(body["to"], list) else "push"
    response = standin.control.post(
        f"/v2/bot/message/{endpoint}", headers={"authorization": "Bearer stand-in-test-token"}, json=body
    )
    assert response.status_code == 400
    assert problem in [d["property"] for d in response.json()["details"]]
    assert standin.control.get("/_control/summary").json()["delivered"] == 0


def test_malformed_json_is_400(standin: StandIn) -> None:
    response = standin.control.post(
        "/v2/bot/message/push",
        headers={"authorization": "Bearer stand-in-test-token", "content-type": "application/json"},
        content=b"{not json",
    )
    assert response.status_code == 400


def test_blocked_and_strangers_are_neither_reached_nor_counted(
    standin: StandIn, messaging: MessagingApi
) -> None:
    friend, stranger, blocker = standin.user("友"), standin.user("他人", friend=False), standin.user("拒否")
    standin.act(blocker, "unfollow")
    messaging.multicast(MulticastRequest(to=[friend, stranger, blocker], messages=[TextMessage(text="x")]))
    assert (texts(standin, friend), texts(standin, stranger), texts(standin, blocker)) == (["x"], [], [])
    assert messaging.get_message_quota_consumption().total_usage == 1
    with pytest.raises(ApiException) as gone:
        messaging.get_profile(blocker)
    assert gone.value.status == 404


def test_webhooks_are_signed_and_follow_reports_unblocking(standin: StandIn) -> None:
    user = standin.user("新しい人", friend=False)
    standin.act(user, "follow")
    standin.act(user, "unfollow")
    standin.act(user, "follow")
    validator = SignatureValidator(SECRET)
    events = []
    for headers, body in standin.sink.posts:
        assert validator.validate(body.decode(), headers["x-line-signature"])
        events.extend(json.loads(body)["events"])
    assert [e["type"] for e in events] == ["follow", "unfollow", "follow"]
    assert [e.get("follow", {}).get("isUnblocked") for e in events] == [False, None, True]
    assert "replyToken" not in events[1]
    assert len({e["webhookEventId"] for e in events}) == 3


def test_a_reply_token_works_once(standin: StandIn, messaging: MessagingApi) -> None:
    user = standin.user()
    token = standin.act(user, "message", text="相談先を探す").json()["event"]["replyToken"]
    messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="はい")]))
    with pytest.raises(ApiException) as reused:
        messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="二度目")]))
    assert reused.value.status == 400
    assert texts(standin, user) == ["はい"]


def test_failed_webhooks_are_redelivered_with_the_same_event_id(standin: StandIn) -> None:
    user = standin.user()
    standin.sink.status = 500
    first = standin.act(user, "postback", data="menu=find").json()
    assert first["webhook_status"] == 500
    standin.sink.status = 200
    assert standin.control.post("/_control/webhook/redeliver").json() == {"redelivered": 1}
    redelivered = json.loads(standin.sink.posts[-1][1])["events"][0]
    assert redelivered["webhookEventId"] == first["event"]["webhookEventId"]
    assert redelivered["deliveryContext"] == {"isRedelivery": True}
    assert standin.control.post("/_control/webhook/redeliver").json() == {"redelivered": 0}


def test_account_link_dialog_sends_the_nonce_once(standin: StandIn, messaging: MessagingApi) -> None:
    user = standin.user()
    link_token = messaging.issue_link_token(user).link_token
    page = standin.control.get("/dialog/bot/accountLink", params={"linkToken": link_token, "nonce": "n" * 24})
    assert page.status_code == 200 and "テスト 太郎" in page.text
    confirm = {"linkToken": link_token, "nonce": "n" * 24}
    assert standin.control.post("/dialog/bot/accountLink", data=confirm).status_code == 303
    assert standin.control.get("/dialog/bot/accountLink", params=confirm).status_code == 400
    standin.control.post("/dialog/bot/accountLink", data=confirm)
    links = [json.loads(body)["events"][0]["link"] for _, body in standin.sink.posts]
    assert links == [{"result": "ok", "nonce": "n" * 24}, {"result": "failed", "nonce": "n" * 24}]


def test_an_expired_link_token_fails(standin: StandIn, messaging: MessagingApi) -> None:
    user = standin.user()
    standin.control.patch("/_control/config", json={"link_token_ttl_seconds": 0})
    link_token = messaging.issue_link_token(user).link_token
    time.sleep(0.01)
    standin.control.post("/dialog/bot/accountLink", data={"linkToken": link_token, "nonce": "n" * 24})
    assert json.loads(standin.sink.posts[-1][1])["events"][0]["link"]["result"] == "failed"


def test_link_tokens_only_for_friends(standin: StandIn, messaging: MessagingApi) -> None:
    stranger = standin.user(friend=False)
    with pytest.raises(ApiException) as refused:
        messaging.issue_link_token(stranger)
    assert refused.value.status == 400


def test_the_phone_simulator_renders_flex_and_sends_taps(standin: StandIn, messaging: MessagingApi) -> None:
    user = standin.user("画面 確認", friend=False)
    assert "画面 確認" in standin.control.get("/").text
    assert standin.control.post(f"/phone/{user}/follow").status_code == 303
    carousel = {
        "type": "flex",
        "altText": "相談先",
        "contents": {
            "type": "carousel",
            "contents": [
                {
                    "type": "bubble",
                    "body": {
                        "type": "box",
                        "layout": "vertical",
                        "contents": [{"type": "text", "text": f"こども食堂 {i}"}],
                    },
                    "footer": {
                        "type": "box",
                        "layout": "vertical",
                        "contents": [
                            {
                                "type": "button",
                                "action": {"type": "postback", "label": "詳しく", "data": f"resource={i}"},
                            },
                            {
                                "type": "button",
                                "action": {"type": "uri", "label": "地図", "uri": "javascript:alert(1)"},
                            },
                        ],
                    },
                }
                for i in range(2)
            ],
        },
    }
    standin.control.post(
        "/v2/bot/message/push",
        headers={"authorization": "Bearer stand-in-test-token"},
        json={"to": user, "messages": [carousel, {"type": "text", "text": "<b>問い合わせ先</b>"}]},
    ).raise_for_status()
    page = standin.control.get(f"/phone/{user}").text
    assert "こども食堂 1" in page and 'value="resource=1"' in page
    assert "javascript:" not in page
    assert "&lt;b&gt;問い合わせ先&lt;/b&gt;" in page
    assert standin.control.post(f"/phone/{user}/postback", data={"data": "resource=1"}).status_code == 303
    assert standin.control.post(f"/phone/{user}/say", data={"text": "ありがとう"}).status_code == 303
    kinds = [json.loads(body)["events"][0]["type"] for _, body in standin.sink.posts]
    assert kinds == ["follow", "postback", "message"]
