"""Exceptions of the store, grouped by what the caller can do about them.

None of them ever carries a token or a key: messages name rows by id and attributes by name.
Database driver errors are translated in the repositories and chained `from None`, because a
driver's message quotes the statement's parameters.
"""

from __future__ import annotations


class StoreError(Exception):
    """Any failure of the store that the caller may want to handle."""


class NotFound(StoreError):
    """No such row for this owner (another owner's row is not found either, never a leak)."""


class AccountNotFound(NotFound):
    """No account with this id."""


class ConnectionNotFound(NotFound):
    """No Toggl or Exist connection with this id for this owner."""


class ConnectionPending(StoreError):
    """The Toggl connection was created without a token and the user has not pasted one yet."""


class DuplicateAccount(StoreError):
    """An account with this email already exists."""


class AttributeClaimed(StoreError):
    """The attribute is already claimed by another integration of the same user.

    Exist lets one service own an attribute, and the user's other integration (Trakt, say)
    feeds it: mapping a Toggl project to it would make the two overwrite each other's minutes.
    """

    def __init__(self, attribute: str, holder: str) -> None:
        super().__init__(
            f"{attribute!r} is already used by your {holder} integration; "
            f"remove it there before mapping it here"
        )
        self.attribute = attribute
        self.holder = holder


class AttributeStillMapped(StoreError):
    """A Toggl claim cannot be released while a project is still mapped to the attribute."""


class InvalidMapping(StoreError):
    """A mapping that cannot be stored (a blank attribute name, say)."""


class SecretKeyError(StoreError):
    """The configured secret keys are missing or malformed (the message never shows a key)."""


class UndecryptableSecret(StoreError):
    """A stored secret cannot be decrypted with any configured key (a key was removed before
    `timebridge secrets rotate` ran, or the ciphertext is damaged)."""
