"""Who pays for a call: the Lago subscription and the dimensions of the active scope.

The scope lives in a `contextvars.ContextVar`, so it follows asyncio tasks,
anyio task groups and `contextvars.copy_context()` into threads. Transports
read it once, when the request is sent, and keep it with the exchange: a
stream read later, in another task or after the scope has exited, is still
billed to the subscription that sent the request.

Precedence, highest first: the innermost active scope (nested scopes merge
their dimensions, inner values win), then the client-level default given to
`MeteredClient(subscription=...)`.
"""

from __future__ import annotations

import contextvars
import functools
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar, overload

import msgspec

from .errors import ConfigurationError

__all__ = ["Attribution", "attribute", "current"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class Attribution(msgspec.Struct, frozen=True, kw_only=True):
    """A subscription (possibly unknown) and string dimensions such as `feature`."""

    subscription: str | None = None
    dimensions: Mapping[str, str] = msgspec.field(default_factory=dict)

    def merged(self, subscription: str | None, dimensions: Mapping[str, str]) -> Attribution:
        """Return this attribution overlaid with an inner scope's values."""
        return Attribution(
            subscription=subscription if subscription is not None else self.subscription,
            dimensions={**self.dimensions, **dimensions},
        )


_EMPTY = Attribution()
_scope: contextvars.ContextVar[Attribution] = contextvars.ContextVar(
    "tokenwire_attribution", default=_EMPTY
)


def current() -> Attribution:
    """Return the attribution of the active scope (empty outside any scope)."""
    return _scope.get()


def resolve(client_default: Attribution | None) -> Attribution:
    """Return the attribution for a request sent now, with the client default as fallback."""
    scope = _scope.get()
    if client_default is None:
        return scope
    return client_default.merged(scope.subscription, scope.dimensions)


def _validate(subscription: str | None, dimensions: Mapping[str, object]) -> dict[str, str]:
    if subscription is not None and (not isinstance(subscription, str) or not subscription):
        raise ConfigurationError(
            f"attribute(subscription=...) must be a non-empty string, got {subscription!r}"
        )
    checked: dict[str, str] = {}
    for key, value in dimensions.items():
        if not isinstance(value, str):
            raise ConfigurationError(
                f"attribute() dimension {key!r} must be a string, got {type(value).__name__}; "
                f"convert it with str() before passing it"
            )
        checked[key] = value
    return checked


class _Scope:
    """Context manager and decorator returned by `attribute()`."""

    def __init__(self, subscription: str | None, dimensions: dict[str, str]) -> None:
        self._subscription = subscription
        self._dimensions = dimensions
        self._tokens: list[contextvars.Token[Attribution]] = []

    def __enter__(self) -> Attribution:
        value = _scope.get().merged(self._subscription, self._dimensions)
        self._tokens.append(_scope.set(value))
        return value

    def __exit__(self, *exc_info: object) -> None:
        _scope.reset(self._tokens.pop())

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    @overload
    def __call__(
        self, func: Callable[_P, Awaitable[_R]]
    ) -> Callable[_P, Awaitable[_R]]: ...

    @overload
    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]: ...

    def __call__(self, func: Callable[_P, Any]) -> Callable[_P, Any]:
        import inspect

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with _Scope(self._subscription, self._dimensions):
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            with _Scope(self._subscription, self._dimensions):
                return func(*args, **kwargs)

        return wrapper


def attribute(subscription: str | None = None, **dimensions: str) -> _Scope:
    """Attribute the calls made inside this scope to a Lago subscription.

    Use as `with`, `async with` or a decorator. `dimensions` (for example
    `feature="search"`) travel with each record and into the Lago event properties.
    """
    return _Scope(subscription, _validate(subscription, dimensions))


@contextmanager
def _isolated() -> Iterator[None]:
    """Run a block with no attribution (used by tokenwire's own threads)."""
    token = _scope.set(_EMPTY)
    try:
        yield
    finally:
        _scope.reset(token)
