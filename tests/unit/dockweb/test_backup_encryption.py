"""age encryption of backups: round trips through the streaming pipe, with a passphrase that is never stored, or
with a public key; wrong keys are refused; sealed secrets."""

from __future__ import annotations

import io
import os
import resource

import pytest
from django.core.exceptions import ValidationError
from pyrage import x25519

from dockweb.backups import crypto


def encrypt(data: bytes, recipient: str) -> bytes:
    out = io.BytesIO()
    with crypto.piped(lambda w: crypto.encrypt_stream(io.BytesIO(data), w, recipient)) as r:
        out.write(r.read())
    return out.getvalue()


def decrypt(data: bytes, identity) -> bytes:
    out = io.BytesIO()
    crypto.decrypt_stream(io.BytesIO(data), out, identity)
    return out.getvalue()


def test_passphrase_round_trip_and_the_passphrase_is_not_stored():
    recipient, wrapped = crypto.new_passphrase_identity("correct horse battery")
    data = os.urandom(300_000)
    sealed = encrypt(data, recipient)
    assert sealed.startswith(b"age-encryption.org/v1") and data not in sealed
    assert b"correct horse" not in wrapped.encode() and "correct horse" not in recipient
    identity = crypto.identity_for("passphrase", wrapped, "correct horse battery")
    assert decrypt(sealed, identity) == data


def test_a_wrong_passphrase_is_refused():
    _, wrapped = crypto.new_passphrase_identity("correct horse battery")
    with pytest.raises(ValidationError, match="wrong passphrase"):
        crypto.identity_for("passphrase", wrapped, "incorrect horse")


def test_a_short_passphrase_is_refused():
    with pytest.raises(ValidationError, match="at least 8"):
        crypto.new_passphrase_identity("short")


def test_age_public_key_round_trip_and_the_wrong_identity_fails():
    ident = x25519.Identity.generate()
    data = b"pg_dump output\n" * 1000
    sealed = encrypt(data, str(ident.to_public()))
    assert decrypt(sealed, crypto.identity_for("age", "", f"# created: now\n{ident}\n")) == data
    with pytest.raises(ValidationError, match="does not decrypt"):
        decrypt(sealed, x25519.Identity.generate())


def test_a_tampered_archive_does_not_decrypt():
    ident = x25519.Identity.generate()
    sealed = bytearray(encrypt(os.urandom(100_000), str(ident.to_public())))
    sealed[-100] ^= 1
    with pytest.raises(ValidationError):
        decrypt(bytes(sealed), ident)


def test_bad_keys_are_named():
    with pytest.raises(ValidationError, match="age1"):
        crypto.recipient_of("ssh-rsa AAAA")
    with pytest.raises(ValidationError, match="AGE-SECRET-KEY-1"):
        crypto.identity_of("age1notasecret")
    with pytest.raises(ValidationError, match="give its passphrase"):
        crypto.identity_for("passphrase", "x", "")


def test_encryption_streams_in_flat_memory():
    ident = x25519.Identity.generate()

    class Zeros(io.RawIOBase):
        left = 256 << 20

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left)
            b[:n] = bytes(n)
            self.left -= n
            return n

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    total = 0
    with crypto.piped(lambda w: crypto.encrypt_stream(Zeros(), w, str(ident.to_public()))) as r:
        while chunk := r.read(1 << 20):
            total += len(chunk)
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert total > 256 << 20
    assert grown_mib < 64, f"peak memory grew by {grown_mib:.0f} MiB while encrypting 256 MiB"


def test_a_failing_producer_raises_on_the_reading_side():
    def produce(w):
        w.write(b"partial")
        raise OSError("disk on fire")

    with pytest.raises(OSError, match="disk on fire"):
        with crypto.piped(produce) as r:
            assert r.read() == b"partial"


def test_sealed_secrets_open_with_the_same_secret_key_only():
    from django.test import override_settings

    token = crypto.seal("s3-secret")
    assert "s3-secret" not in token and crypto.unseal(token) == "s3-secret"
    with override_settings(SECRET_KEY="another-key-" + "y" * 40):
        with pytest.raises(ValueError, match="DOCKWEB_SECRET_KEY"):
            crypto.unseal(token)
