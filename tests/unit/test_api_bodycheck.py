"""wf_gateway.bodycheck: JSON bodies that would break something further in are refused up front."""
import pytest

from wf_gateway.bodycheck import MAX_DEPTH, check_json


@pytest.mark.parametrize("body", [b'{"a": 1}', b'[]', b'"text"', b'{"s": "caf\xc3\xa9 \\u00e9"}', b'1e308',
                                  b'{"n": 18446744073709551615}'])
def test_acceptable(body):
    assert check_json(body) is None


@pytest.mark.parametrize("body, words", [
    (b'{"a": "\xff\xfe"}', "not valid UTF-8"),
    (b'{"a": 1', "not valid JSON"),
    (b'{"a": NaN}', "not a JSON number"),
    (b'{"a": Infinity}', "not a JSON number"),
    (b'{"a": 1e400}', "out of range"),
    (b'{"a": 184467440737095516150}', "out of range"),
    (b'{"a": "x\\u0000y"}', "NUL"),
    (b'{"a\\u0000": 1}', "NUL"),
    (b'{"a": "\\ud800"}', "lone surrogate"),
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested too deeply"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, "nested too deeply"),
])
def test_refused_with_a_reason(body, words):
    reason = check_json(body)
    assert reason is not None and words in reason


def test_depth_limit_is_inclusive():
    assert check_json(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is None
