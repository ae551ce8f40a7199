"""Exception classes raised by tokenwire.

Every decoding failure is a subclass of `DecodeError`. Transports and hooks
catch these (and anything else raised inside tokenwire) so that a fault never
reaches the caller; the record of that exchange is flagged instead.
Configuration mistakes raise `ConfigurationError` at configuration time.
"""

from __future__ import annotations


class TokenwireError(Exception):
    """Base class of every exception tokenwire raises."""


class DecodeError(TokenwireError):
    """Provider bytes that cannot be decoded (framing, encoding or JSON)."""


class ConfigurationError(TokenwireError, ValueError):
    """An invalid setting; the message names the setting and the fix."""
