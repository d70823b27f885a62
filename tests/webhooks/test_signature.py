"""The receiver's signature check against Toggl's documented vector, written out as raw bytes
(independent of the simulator's encoder)."""

from __future__ import annotations

from timebridge.webhooks.signature import signature, verify

#: The PING on Toggl's "validating received events" page, compact, as Toggl sends it.
DOCUMENTED_BODY = (
    b'{"event_id":0,"created_at":"2022-06-25T03:58:10.207820267Z","creator_id":6,'
    b'"metadata":{"request_type":"POST","event_user_id":6},"payload":"ping",'
    b'"subscription_id":6,"timestamp":"2022-06-25T03:58:10.207820267Z",'
    b'"url_callback":"https://callback-url.com"}'
)
DOCUMENTED_SECRET = "PGuRrhCFajIyEvFlreKL"
DOCUMENTED_SIGNATURE = "sha256=bf829606cda0ca6923defb5ca70a43135adc7e8887486a201a19cb50ca6006b1"


def test_toggls_documented_vector() -> None:
    assert signature(DOCUMENTED_SECRET, DOCUMENTED_BODY) == DOCUMENTED_SIGNATURE
    assert verify(DOCUMENTED_SECRET, DOCUMENTED_BODY, DOCUMENTED_SIGNATURE)


def test_any_change_to_body_secret_or_header_is_refused() -> None:
    assert not verify(DOCUMENTED_SECRET, DOCUMENTED_BODY + b" ", DOCUMENTED_SIGNATURE)
    assert not verify(
        DOCUMENTED_SECRET, DOCUMENTED_BODY.replace(b":6", b":7"), DOCUMENTED_SIGNATURE
    )
    assert not verify("pGuRrhCFajIyEvFlreKL", DOCUMENTED_BODY, DOCUMENTED_SIGNATURE)
    assert not verify(DOCUMENTED_SECRET, DOCUMENTED_BODY, DOCUMENTED_SIGNATURE[:-1])
    assert not verify(
        DOCUMENTED_SECRET, DOCUMENTED_BODY, DOCUMENTED_SIGNATURE.removeprefix("sha256=")
    )
    assert not verify(DOCUMENTED_SECRET, DOCUMENTED_BODY, None)
    assert not verify(DOCUMENTED_SECRET, DOCUMENTED_BODY, "")
    assert not verify(DOCUMENTED_SECRET, DOCUMENTED_BODY, "sha256=ü")
