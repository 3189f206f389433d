"""The one codec for log payloads and bus messages. Nothing else calls json on them.

Decoders are built once (msgspec's fast path). Payloads are canonical: msgspec emits struct
fields in declaration order, so the same event always encodes to the same bytes, which the
hash chain relies on.
"""
from typing import Any

import msgspec

from .envelope import Recorded
from .events import AnyEvent
from .messages import StepResult

_enc = msgspec.json.Encoder()
_event_dec = msgspec.json.Decoder(AnyEvent)
_recorded_dec = msgspec.json.Decoder(Recorded)
_result_dec = msgspec.json.Decoder(StepResult)
_any_dec = msgspec.json.Decoder()


class DecodeError(ValueError):
    pass


def encode(obj: Any) -> bytes:
    return _enc.encode(obj)


def encode_event(event: AnyEvent) -> str:
    return _enc.encode(event).decode()


def decode_event(payload: str | bytes) -> AnyEvent:
    try:
        return _event_dec.decode(payload)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from exc


def decode_recorded(data: bytes) -> Recorded:
    try:
        return _recorded_dec.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from exc


def decode_result(data: bytes) -> StepResult:
    try:
        return _result_dec.decode(data)
    except msgspec.DecodeError as exc:
        raise DecodeError(str(exc)) from exc


def decode_json(data: bytes | str) -> Any:
    return _any_dec.decode(data)


def to_builtins(obj: Any) -> Any:
    return msgspec.to_builtins(obj)
