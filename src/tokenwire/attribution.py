"""Who pays for a call: the Lago subscription and the dimensions of the active scope.

The scope lives in a `contextvars.ContextVar`, so it follows asyncio tasks,
anyio and trio task groups, `asyncio.to_thread`, `anyio.to_thread.run_sync`
and `trio.to_thread.run_sync` (all of which copy the caller's context).
Plain thread pools do not copy it: `wrap()` binds a callable to the current
context for them. Transports read the attribution once, when the request is
sent, and keep it with the exchange: a stream read later, in another task or
after the scope has exited, is still billed to the subscription that sent the
request.

Precedence, highest first:

1. the per-request override headers `X-Tokenwire-Subscription` and
   `X-Tokenwire-Dimensions` (a JSON object of strings). SDKs let a caller add
   them per call with `extra_headers`, and transports strip them before the
   request leaves the process;
2. the innermost active scope (nested scopes merge their dimensions, inner
   values win);
3. the client-level default given to `MeteredClient(subscription=...)`;
4. the unattributed policy (`configure_attribution()` or the environment
   variable `TOKENWIRE_UNATTRIBUTED`):
   - `keep_local` (the default when no default subscription is set): the
     record keeps no subscription. It stays in the local ledger and
     `tokenwire report` shows it, but it is never sent to Lago with a guessed id;
   - `default_subscription` (the default when `TOKENWIRE_DEFAULT_SUBSCRIPTION`
     is set): the record goes to that subscription;
   - `raise`: the metered call raises `UnattributedError` before the request
     is sent. This is meant for test suites, and it is the one place where
     tokenwire deliberately breaks a call instead of failing open.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import logging
import os
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Generator,
    Mapping,
)
from typing import Any, Final, Literal, ParamSpec, TypeVar, overload

import msgspec

from .errors import ConfigurationError

__all__ = [
    "DIMENSIONS_HEADER",
    "SUBSCRIPTION_HEADER",
    "Attribution",
    "UnattributedError",
    "UnattributedPolicy",
    "attribute",
    "configure_attribution",
    "current",
    "parse_override_headers",
    "resolve",
    "unattributed_policy",
    "wrap",
]

logger = logging.getLogger("tokenwire.attribution")

_P = ParamSpec("_P")
_R = TypeVar("_R")

SUBSCRIPTION_HEADER: Final = "x-tokenwire-subscription"
"""Request header that overrides the subscription for one call (stripped before sending)."""
DIMENSIONS_HEADER: Final = "x-tokenwire-dimensions"
"""Request header with a JSON object of string dimensions for one call (stripped before sending)."""
MAX_DIMENSIONS_HEADER_CHARS: Final = 8192
"""Longest `X-Tokenwire-Dimensions` value parsed. Dimensions are short labels, so a
longer value is a mistake, and it would be parsed again on every request."""

UnattributedPolicy = Literal["keep_local", "default_subscription", "raise"]
_POLICIES: Final[tuple[str, ...]] = ("keep_local", "default_subscription", "raise")


class UnattributedError(BaseException):
    """A metered call had no subscription while the unattributed policy is `raise`.

    It derives from `BaseException`, like pytest's own outcome exceptions, so
    that neither an SDK's retry loop nor an application's `except Exception`
    handler turns it into something else: the test that made the call fails
    with this message.
    """


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


# --- Unattributed policy ---------------------------------------------------------------


class _Policy(msgspec.Struct, frozen=True):
    mode: UnattributedPolicy
    default_subscription: str | None = None


_policy: _Policy | None = None
"""The policy in force; None until it is configured or first read from the environment."""


def _checked_policy(unattributed: str, default_subscription: str | None, *, source: str) -> _Policy:
    if unattributed not in _POLICIES:
        raise ConfigurationError(
            f"{source} must be one of {', '.join(_POLICIES)}, got {unattributed!r}"
        )
    if unattributed != "default_subscription":
        return _Policy(unattributed)  # type: ignore[arg-type]
    if not default_subscription:
        raise ConfigurationError(
            f"{source} is 'default_subscription' but no default subscription is set; "
            f"set TOKENWIRE_DEFAULT_SUBSCRIPTION (or pass default_subscription=...)"
        )
    return _Policy("default_subscription", default_subscription)


def configure_attribution(
    *,
    unattributed: UnattributedPolicy | None = None,
    default_subscription: str | None = None,
) -> UnattributedPolicy:
    """Set what happens to a call that no override, scope or client default attributes.

    Unset arguments come from `TOKENWIRE_UNATTRIBUTED` and
    `TOKENWIRE_DEFAULT_SUBSCRIPTION`. With neither policy given, a default
    subscription selects `default_subscription`, else `keep_local`. Raises
    `ConfigurationError` for an unknown policy, or for `default_subscription`
    without a subscription. Returns the policy now in force.
    """
    global _policy
    subscription = default_subscription or os.environ.get("TOKENWIRE_DEFAULT_SUBSCRIPTION")
    mode: str = unattributed if unattributed is not None else _env_policy_name(subscription)
    source = "unattributed" if unattributed is not None else "TOKENWIRE_UNATTRIBUTED"
    _policy = _checked_policy(mode, subscription, source=source)
    return _policy.mode


def unattributed_policy() -> UnattributedPolicy:
    """Return the unattributed policy in force."""
    return _current_policy().mode


def _env_policy_name(default_subscription: str | None) -> str:
    configured = os.environ.get("TOKENWIRE_UNATTRIBUTED", "").strip().lower()
    if configured:
        return configured
    return "default_subscription" if default_subscription else "keep_local"


def _current_policy() -> _Policy:
    global _policy
    policy = _policy
    if policy is not None:
        return policy
    try:
        subscription = os.environ.get("TOKENWIRE_DEFAULT_SUBSCRIPTION")
        policy = _checked_policy(
            _env_policy_name(subscription), subscription, source="TOKENWIRE_UNATTRIBUTED"
        )
    except ConfigurationError as exc:
        # Read on the first metered call, where raising would break the call:
        # keep every record locally instead, which loses nothing.
        logger.error("tokenwire ignores an invalid setting and keeps records local: %s", exc)
        policy = _Policy("keep_local")
    _policy = policy
    return policy


def _reset_policy() -> None:
    """Forget the configured policy, so the next call reads the environment again (tests)."""
    global _policy
    _policy = None


# --- Resolution at request time -------------------------------------------------------


def resolve(
    client_default: Attribution | None,
    *,
    subscription: str | None = None,
    dimensions: Mapping[str, str] | None = None,
) -> Attribution:
    """Return the attribution of a request sent now.

    `subscription` and `dimensions` are the per-request override (already
    validated, see `parse_override_headers`), the active scope comes next and
    `client_default` last. When no subscription results, the unattributed
    policy applies: under `raise` this raises `UnattributedError`.
    """
    scope = _scope.get()
    resolved = (
        scope
        if client_default is None
        else client_default.merged(scope.subscription, scope.dimensions)
    )
    if subscription is not None or dimensions:
        resolved = resolved.merged(subscription, dimensions or {})
    if resolved.subscription is not None:
        return resolved

    policy = _current_policy()
    if policy.mode == "default_subscription":
        return resolved.merged(policy.default_subscription, {})
    if policy.mode == "raise":
        raise UnattributedError(
            "a metered LLM call had no subscription and the unattributed policy is 'raise': "
            "wrap the call in tokenwire.attribute(subscription=...), give the client "
            "subscription=..., or send the X-Tokenwire-Subscription header"
        )
    return resolved


def parse_override_headers(
    subscription_value: str | None, dimensions_value: str | None
) -> tuple[str | None, dict[str, str]]:
    """Return the (subscription, dimensions) override carried by a request's headers.

    An invalid value is reported as a caught fault (counted, logged
    rate-limited) and ignored, so that it never breaks the call.
    """
    subscription: str | None = None
    if subscription_value is not None:
        subscription = subscription_value.strip() or None
        if subscription is None:
            _report_invalid_header(SUBSCRIPTION_HEADER, "an empty value")

    dimensions: dict[str, str] = {}
    if dimensions_value is not None:
        problem = None
        if len(dimensions_value) > MAX_DIMENSIONS_HEADER_CHARS:
            problem = (
                f"{len(dimensions_value)} characters, more than the "
                f"{MAX_DIMENSIONS_HEADER_CHARS} accepted"
            )
        else:
            try:
                dimensions = _decode_dimensions(dimensions_value)
            except ValueError as exc:
                problem = str(exc)
        if problem is not None:
            _report_invalid_header(DIMENSIONS_HEADER, problem)
    return subscription, dimensions


def _decode_dimensions(value: str) -> dict[str, str]:
    try:
        decoded = json.loads(value)
    except ValueError:
        raise ValueError(f"invalid JSON {value[:80]!r}") from None
    if not isinstance(decoded, dict):
        raise ValueError(f"a JSON {type(decoded).__name__} instead of an object")
    for key, item in decoded.items():
        if not isinstance(item, str):
            raise ValueError(
                f"dimension {key!r} is a JSON {type(item).__name__} instead of a string"
            )
    return decoded


def _report_invalid_header(name: str, problem: str) -> None:
    # Imported here because the meter module may import this one.
    from .meter import report_fault

    report_fault(
        "attribution-header",
        ConfigurationError(f"ignored invalid {name} request header: {problem}"),
    )


# --- Scopes ----------------------------------------------------------------------------


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


_open_scopes: contextvars.ContextVar[tuple[tuple[_Scope, contextvars.Token[Attribution]], ...]] = (
    contextvars.ContextVar("tokenwire_open_scopes", default=())
)
"""The scopes entered in this context, innermost last, each with the token that undoes it.

Kept per context, not on the scope object, because one `attribute()` object
may be entered by many threads and tasks at once."""


class _Scope:
    """Context manager and decorator returned by `attribute()`."""

    def __init__(self, subscription: str | None, dimensions: dict[str, str]) -> None:
        self._subscription = subscription
        self._dimensions = dimensions

    def __enter__(self) -> Attribution:
        value = _scope.get().merged(self._subscription, self._dimensions)
        token = _scope.set(value)
        _open_scopes.set((*_open_scopes.get(), (self, token)))
        return value

    def __exit__(self, *exc_info: object) -> None:
        entries = _open_scopes.get()
        # The innermost entry of this object, which is the last one unless
        # scopes were exited out of order (a generator left one open).
        index = max(i for i, (scope, _) in enumerate(entries) if scope is self)
        token = entries[index][1]
        _open_scopes.set(entries[:index] + entries[index + 1 :])
        _scope.reset(token)

    async def __aenter__(self) -> Attribution:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        self.__exit__()

    def _fresh(self) -> _Scope:
        return _Scope(self._subscription, self._dimensions)

    @overload
    def __call__(self, func: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]: ...

    @overload
    def __call__(self, func: Callable[_P, _R]) -> Callable[_P, _R]: ...

    def __call__(self, func: Callable[_P, Any]) -> Callable[_P, Any]:
        """Decorate a function, coroutine function, generator or async generator function.

        The scope is active whenever the function's own code runs: for a
        generator, during each step, not while the consumer holds a value.
        """
        if inspect.isasyncgenfunction(func):
            return self._wrap_async_generator(func)
        if inspect.isgeneratorfunction(func):
            return self._wrap_generator(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
                with self._fresh():
                    return await func(*args, **kwargs)

            return async_wrapper

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Any:
            with self._fresh():
                return func(*args, **kwargs)

        return wrapper

    def _wrap_generator(self, func: Callable[_P, Generator[Any, Any, Any]]) -> Callable[_P, Any]:
        @functools.wraps(func)
        def generator_wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Generator[Any, Any, Any]:
            with self._fresh():
                inner = func(*args, **kwargs)
            return (yield from _stepped(inner, self._fresh))

        return generator_wrapper

    def _wrap_async_generator(
        self, func: Callable[_P, AsyncGenerator[Any, Any]]
    ) -> Callable[_P, Any]:
        @functools.wraps(func)
        async def async_generator_wrapper(
            *args: _P.args, **kwargs: _P.kwargs
        ) -> AsyncIterator[Any]:
            with self._fresh():
                inner = func(*args, **kwargs)
            sent: Any = None
            thrown: BaseException | None = None
            try:
                while True:
                    with self._fresh():
                        try:
                            if thrown is not None:
                                item = await inner.athrow(thrown)
                            else:
                                item = await inner.asend(sent)
                        except StopAsyncIteration:
                            return
                    thrown = None
                    try:
                        sent = yield item
                    except GeneratorExit:
                        raise
                    except BaseException as exc:  # handed to the inner generator
                        thrown = exc
            finally:
                with self._fresh():
                    await inner.aclose()

        return async_generator_wrapper


def _stepped(
    inner: Generator[Any, Any, Any], scope: Callable[[], _Scope]
) -> Generator[Any, Any, Any]:
    """Drive `inner`, entering a new scope for each of its steps."""
    sent: Any = None
    thrown: BaseException | None = None
    try:
        while True:
            with scope():
                try:
                    item = inner.throw(thrown) if thrown is not None else inner.send(sent)
                except StopIteration as stop:
                    return stop.value
            thrown = None
            try:
                sent = yield item
            except GeneratorExit:
                raise
            except BaseException as exc:  # handed to the inner generator
                thrown = exc
    finally:
        with scope():
            inner.close()


def attribute(subscription: str | None = None, **dimensions: str) -> _Scope:
    """Attribute the calls made inside this scope to a Lago subscription.

    Use as `with`, `async with` or a decorator (of plain, async, generator
    and async generator functions). `dimensions` (for example
    `feature="search"`) travel with each record and into the Lago event
    properties. Raises `ConfigurationError` for an empty subscription or a
    dimension that is not a string.
    """
    return _Scope(subscription, _validate(subscription, dimensions))


def wrap(func: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind `func` to the current context, attribution included, for another thread.

    `ThreadPoolExecutor.submit`, `loop.run_in_executor` and plain threads
    start from an empty context; pass them `tokenwire.wrap(func)` instead of
    `func`. Each call runs in its own copy of the captured context, so the
    wrapped function may run in many threads at once.
    """
    captured = contextvars.copy_context()

    @functools.wraps(func)
    def in_context(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return captured.copy().run(func, *args, **kwargs)

    return in_context


def _bind(value: Attribution) -> contextvars.Context:
    """Return a copy of the current context in which `value` is the active attribution."""
    context = contextvars.copy_context()
    context.run(_scope.set, value)
    return context
