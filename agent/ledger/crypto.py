"""AES-256-GCM for personal fields and Ed25519 for checkpoints; the one place that calls ``cryptography``.

Nonces are 12 random bytes per record. A data key seals at most one pseudonym epoch's records (a day by
default),
far below the 2**32 random-nonce limit for one key.
"""

from __future__ import annotations

import base64
import hashlib
import os

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from agent.errors import KeyStoreError

DATA_KEY_SIZE = 32
NONCE_SIZE = 12
SIGNING_KEY_SIZE = 32


def new_data_key() -> bytes:
    return os.urandom(DATA_KEY_SIZE)


def seal(key: bytes, plaintext: bytes, associated: bytes) -> tuple[bytes, bytes]:
    """(nonce, ciphertext): ``associated`` binds the ciphertext to its record (sequence number and type)."""
    nonce = os.urandom(NONCE_SIZE)
    return nonce, AESGCM(key).encrypt(nonce, plaintext, associated)


def unseal(key: bytes, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes | None:
    """The plaintext, or None when the key does not open it (wrong key, or damaged ciphertext)."""
    if len(key) != DATA_KEY_SIZE or len(nonce) != NONCE_SIZE:
        return None
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, associated)
    except InvalidTag:
        return None


class Opener:
    """Decrypts many records under one data key (one cipher object, not one per record)."""

    def __init__(self, key: bytes) -> None:
        self._cipher = AESGCM(key)

    def open(self, nonce: bytes, ciphertext: bytes, associated: bytes) -> bytes | None:
        if len(nonce) != NONCE_SIZE:
            return None
        try:
            return self._cipher.decrypt(nonce, ciphertext, associated)
        except InvalidTag:
            return None


class Signer:
    """The device's Ed25519 checkpoint key."""

    def __init__(self, private_bytes: bytes) -> None:
        if len(private_bytes) != SIGNING_KEY_SIZE:
            raise KeyStoreError("the signing key file has the wrong size")
        self._key = Ed25519PrivateKey.from_private_bytes(private_bytes)
        self.public_key = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @staticmethod
    def generate_private_bytes() -> bytes:
        return os.urandom(SIGNING_KEY_SIZE)  # any 32 bytes are a valid Ed25519 seed

    def sign(self, message: bytes) -> bytes:
        return self._key.sign(message)


def signature_valid(public_key: bytes, message: bytes, signature: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


FINGERPRINT_PREFIX = "SHA256:"


def key_fingerprint(public_key: bytes) -> str:
    """``SHA256:`` and the unpadded standard base64 of SHA-256 over the raw 32-byte Ed25519 public key (43
    characters; the style of OpenSSH's fingerprints, but over the raw key, not an SSH key blob)."""
    digest = hashlib.sha256(public_key).digest()
    return FINGERPRINT_PREFIX + base64.b64encode(digest).decode("ascii").rstrip("=")
