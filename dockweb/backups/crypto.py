"""Backup encryption with age (pyrage), streamed; and sealing small secrets (S3 keys) with the site's secret key.

A passphrase policy never stores the passphrase in any form. Saving the policy makes a fresh age x25519 identity,
keeps its public key (archives are encrypted to it, so scheduled runs need no secret) and the identity itself
only as an age scrypt file opened by the passphrase ("wrapped"). Restoring asks for the passphrase, unwraps the
identity, and decrypts. With an age public key, only that key is stored and restoring asks for the identity.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from contextlib import contextmanager
from typing import BinaryIO, Callable, Iterator

import pyrage
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.exceptions import ValidationError
from pyrage import passphrase as age_passphrase
from pyrage import x25519

PIPE_CHUNK = 1 << 20


# -- sealing small secrets ---------------------------------------------------------------------------------------

def _fernet() -> Fernet:
    # A key derived from SECRET_KEY: a database dump alone does not reveal the secrets; rotating SECRET_KEY
    # means entering them again.
    digest = hashlib.sha256(b"dockweb.backups.seal:" + settings.SECRET_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(secret: str) -> str:
    """Encrypt a short secret for storage (Fernet, key derived from SECRET_KEY)."""
    return _fernet().encrypt(secret.encode()).decode()


def unseal(token: str) -> str:
    """Decrypt what seal() made; ValueError when SECRET_KEY changed since."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise ValueError("a stored secret cannot be decrypted: was DOCKWEB_SECRET_KEY changed? "
                         "Enter the secret again") from None


# -- age keys ----------------------------------------------------------------------------------------------------

def recipient_of(text: str) -> x25519.Recipient:
    """Parse an age public key (age1...); ValidationError when it is not one."""
    try:
        return x25519.Recipient.from_str(text.strip())
    except (pyrage.RecipientError, ValueError):
        raise ValidationError({"age_recipient": ["not an age public key: it starts with age1 "
                                                 "(age-keygen -y key.txt prints it)"]}) from None


def identity_of(text: str) -> x25519.Identity:
    """Parse an age identity (AGE-SECRET-KEY-1...), ignoring comment lines; ValidationError when it is not one."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip() and not ln.startswith("#")]
    try:
        return x25519.Identity.from_str(lines[0] if lines else "")
    except (pyrage.IdentityError, ValueError):
        raise ValidationError({"secret": ["not an age identity: it starts with AGE-SECRET-KEY-1"]}) from None


def new_passphrase_identity(phrase: str) -> tuple[str, str]:
    """Make an identity for a passphrase policy; return (its public key, the identity wrapped by the phrase)."""
    if len(phrase) < 8:
        raise ValidationError({"passphrase": ["use a passphrase of at least 8 characters"]})
    ident = x25519.Identity.generate()
    wrapped = age_passphrase.encrypt(str(ident).encode(), phrase)   # scrypt: deliberately slow to guess
    return str(ident.to_public()), base64.b64encode(wrapped).decode()


def unwrap_identity(wrapped: str, phrase: str) -> x25519.Identity:
    """Open a wrapped identity with its passphrase; ValidationError when the passphrase is wrong."""
    try:
        return x25519.Identity.from_str(age_passphrase.decrypt(base64.b64decode(wrapped), phrase).decode())
    except pyrage.DecryptError:
        raise ValidationError({"secret": ["wrong passphrase for this backup"]}) from None


def identity_for(encryption: str, wrapped: str, secret: str) -> x25519.Identity:
    """Return the identity that decrypts a backup, from what the user typed at restore time."""
    if not secret:
        raise ValidationError({"secret": ["this backup is encrypted: give its "
                                          + ("passphrase" if encryption == "passphrase" else "age identity")]})
    if encryption == "passphrase":
        return unwrap_identity(wrapped, secret)
    return identity_of(secret)


# -- streams -----------------------------------------------------------------------------------------------------

def encrypt_stream(src: BinaryIO, dst: BinaryIO, recipient: str) -> None:
    """Encrypt src into dst for the recipient, in 64 KiB age chunks: memory stays flat."""
    pyrage.encrypt_io(src, dst, [recipient_of(recipient)])


def decrypt_stream(src: BinaryIO, dst: BinaryIO, identity: x25519.Identity) -> None:
    """Decrypt src into dst; ValidationError when the key does not open it (nothing authenticated is lost)."""
    try:
        pyrage.decrypt_io(src, dst, [identity])
    except pyrage.DecryptError as e:
        raise ValidationError({"secret": [f"this key does not decrypt the backup ({e})"]}) from None
    except OSError as e:
        # pyrage reports a chunk that fails authentication (a flipped byte) as an I/O error of its reader.
        if "decrypt" not in str(e):
            raise
        raise ValidationError({"secret": [f"the archive is damaged or was altered: {e}"]}) from None


class _PipeWriter:
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        pass


@contextmanager
def piped(produce: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
    """Run produce(writer) in a thread and yield a reader of what it writes (an OS pipe: bounded memory).

    An error in produce is raised here after the reader hits the end; closing the reader early makes the
    producer's next write fail (EPIPE), so it stops too.
    """
    rfd, wfd = os.pipe()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            produce(_PipeWriter(wfd))   # type: ignore[arg-type]
        except BaseException as e:      # handed to the reading side
            errors.append(e)
        finally:
            os.close(wfd)

    thread = threading.Thread(target=run, name="dockweb-backup-pipe", daemon=True)
    reader = os.fdopen(rfd, "rb", buffering=PIPE_CHUNK)
    thread.start()
    try:
        yield reader
    finally:
        reader.close()
        thread.join()
    if errors and not isinstance(errors[0], BrokenPipeError):
        raise errors[0]
