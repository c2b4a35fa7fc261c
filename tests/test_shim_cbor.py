"""The guard's CBOR encoder (firmware_shims/privacy_guard.py) against the golden vectors and against cbor2."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import cbor2
import pytest
from hypothesis import given
from hypothesis import strategies as st

SHIMS = Path(__file__).resolve().parents[1] / "firmware_shims"
VECTORS = Path(__file__).resolve().parent / "data" / "guard"
if str(SHIMS) not in sys.path:
    sys.path.append(str(SHIMS))  # appended: never shadows installed modules

import privacy_guard  # noqa: E402

VECTOR_NAMES = sorted(path.stem for path in VECTORS.glob("*.hex"))

ints64 = st.integers(min_value=-(2**64), max_value=2**64 - 1)
scalars = st.none() | st.booleans() | ints64 | st.text(max_size=40)
status_maps = st.recursive(
    st.dictionaries(st.text(max_size=12), scalars, max_size=12),
    lambda children: st.dictionaries(st.text(max_size=12), scalars | children, max_size=6),
    max_leaves=30,
)


def load_vector(name: str) -> tuple[bytes, Any]:
    raw = bytes.fromhex((VECTORS / f"{name}.hex").read_text().strip())
    value = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return raw, value


def depth(value: Any) -> int:
    if not isinstance(value, dict):
        return 0
    return 1 + max((depth(item) for item in value.values()), default=0)


def test_vectors_are_present() -> None:
    assert len(VECTOR_NAMES) >= 10
    assert "status_off_repaired_at_boot" in VECTOR_NAMES


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_shim_encoder_reproduces_vector_byte_for_byte(name: str) -> None:
    raw, value = load_vector(name)
    assert privacy_guard.cbor_encode(value) == raw


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_cbor2_decodes_vector_to_expected_value(name: str) -> None:
    raw, value = load_vector(name)
    assert cbor2.loads(raw) == value


@pytest.mark.parametrize("name", VECTOR_NAMES)
def test_vector_is_cbor2_canonical_form(name: str) -> None:
    raw, value = load_vector(name)
    assert cbor2.dumps(value, canonical=True) == raw


def test_status_vector_has_guard_status_keys_in_canonical_order() -> None:
    raw, value = load_vector("status_on_positioning")
    keys = list(cbor2.loads(raw))
    assert keys == ["on", "sim", "gnss", "error", "model", "proto", "ticks", "source", "repairs", "persisted"]
    assert set(keys) == set(value)


@given(status_maps)
def test_encoder_matches_cbor2_canonical_for_any_status_map(value: dict[str, Any]) -> None:
    if depth(value) > privacy_guard.MAX_CBOR_DEPTH:
        return
    encoded = privacy_guard.cbor_encode(value)
    assert encoded == cbor2.dumps(value, canonical=True)
    assert cbor2.loads(encoded) == value


@given(ints64)
def test_integers_use_the_shortest_head(number: int) -> None:
    encoded = privacy_guard.cbor_encode(number)
    magnitude = number if number >= 0 else -1 - number
    expected_length = 1 if magnitude < 24 else 2 if magnitude < 2**8 else 3 if magnitude < 2**16 else (
        5 if magnitude < 2**32 else 9)
    assert len(encoded) == expected_length
    assert cbor2.loads(encoded) == number


@pytest.mark.parametrize(
    "value",
    [1.5, b"raw", [1, 2], (1,), {1: "int key"}, {"k": 0.1}, {"k": [1]}, 2**64, -(2**64) - 1, object()],
    ids=["float", "bytes", "list", "tuple", "int-key", "float-value", "list-value", "2**64", "-2**64-1",
         "object"],
)
def test_values_outside_the_status_subset_are_refused(value: Any) -> None:
    with pytest.raises(ValueError):
        privacy_guard.cbor_encode(value)


def test_nesting_is_bounded() -> None:
    nested: dict[str, Any] = {"leaf": 1}
    for _ in range(privacy_guard.MAX_CBOR_DEPTH - 1):
        nested = {"n": nested}
    assert cbor2.loads(privacy_guard.cbor_encode(nested)) == nested
    with pytest.raises(ValueError, match="nested"):
        privacy_guard.cbor_encode({"n": nested})


@given(st.binary(max_size=64))
def test_to_hex_matches_bytes_hex(data: bytes) -> None:
    assert privacy_guard.to_hex(data) == data.hex()


@given(st.binary(max_size=64))
def test_adler32_matches_zlib(data: bytes) -> None:
    import zlib

    assert privacy_guard.adler32(data) == zlib.adler32(data)
