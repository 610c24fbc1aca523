"""Customer email addresses encrypted at rest: Fernet (AES-128-CBC + HMAC-SHA256, from
`cryptography`) under a MultiFernet of the configured keys, newest first. The newest key
encrypts; every listed key decrypts, so adding a new key in front keeps old addresses readable,
and `rotate` re-encrypts them under the newest."""
from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class ContactKeyError(Exception):
    """No key is configured, or none of the configured keys opens a stored address."""


def new_key() -> str:
    """A fresh key for TRACKING_CONTACT_KEYS."""
    return Fernet.generate_key().decode("ascii")


class ContactCipher:
    """Encrypts and decrypts addresses with the keys of TRACKING_CONTACT_KEYS (comma-separated)."""

    def __init__(self, keys: str) -> None:
        parts = [part.strip() for part in keys.split(",") if part.strip()]
        self._fernet = MultiFernet([Fernet(part.encode("ascii")) for part in parts]) if parts else None

    @property
    def is_configured(self) -> bool:
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise ContactKeyError("TRACKING_CONTACT_KEYS is empty: customer addresses cannot be encrypted")
        return self._fernet

    def encrypt(self, address: str) -> str:
        """Raises: ContactKeyError when no key is configured."""
        return self._require().encrypt(address.strip().encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Raises: ContactKeyError when no configured key opens it."""
        try:
            return self._require().decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ContactKeyError("no configured TRACKING_CONTACT_KEYS key decrypts this address") from None

    def rotate(self, token: str) -> str:
        """The same address encrypted under the newest key.

        Raises: ContactKeyError when no configured key opens it."""
        try:
            return self._require().rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ContactKeyError("no configured TRACKING_CONTACT_KEYS key decrypts this address") from None
