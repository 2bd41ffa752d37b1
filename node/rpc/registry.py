"""The method registry: declared JSON-RPC methods, strict parameter binding, ``help`` and OpenRPC.

A method is an async handler plus its declaration::

    registry = Registry()

    @registry.method(
        params=[Param("height", {"type": "integer", "minimum": 0}, description="Block height.")],
        result={"type": "string"},
        errors=[INVALID_PARAMETER],
    )
    async def getblockhash(height: int) -> str:
        \"\"\"Return the hash of the best-chain block at a height.\"\"\"

Callers may pass ``params`` as an array (positional, in declared order) or
as an object (by name). ``Registry.call`` binds them to keyword arguments
and checks every value against its schema (``node.rpc.schema``) before the
handler runs; each failure is an ``RpcError`` with ``INVALID_PARAMS`` whose
message names the parameter and says what was expected and what was found.
An optional parameter that is not given is not passed (the handler's Python
default applies) unless its schema carries a ``default``, which is passed.

Methods can also be declared on a class, grouped by topic: decorate them with
``rpc_method(...)`` (same declaration) and hand an instance to
``Registry.add_methods``, which registers its bound methods::

    class ChainMethods:
        def __init__(self, chain):
            self.chain = chain

        @rpc_method(result={"type": "integer"})
        async def getblockcount(self) -> int:
            \"\"\"Height of the best chain's tip.\"\"\"

    registry.add_methods(ChainMethods(chain))

The registry carries two built-in methods: ``help`` (one line per method, or
the full text for one) and ``rpc.discover`` (the OpenRPC 1.2.6 document).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from importlib import metadata
from typing import Any

from . import errors as E
from .errors import RpcError
from .schema import SchemaViolation, check_schema, describe_schema, preview, validate_value

log = logging.getLogger(__name__)

OPENRPC_VERSION = "1.2.6"

Handler = Callable[..., Awaitable[Any]]


@dataclasses.dataclass(frozen=True)
class Param:
    """One declared parameter of a method."""

    name: str
    """The keyword the handler receives and the name callers use in by-name ``params``."""
    schema: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """JSON Schema (the subset of ``node.rpc.schema``) every given value must satisfy."""
    required: bool = True
    """Whether a call without it is refused (``INVALID_PARAMS``)."""
    description: str = ""
    """One or two sentences for ``help`` and the OpenRPC document."""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"parameter name must be a Python identifier, got {self.name!r}")
        check_schema(self.schema, f"parameter {self.name!r}")


@dataclasses.dataclass(frozen=True)
class Method:
    """A registered method: its handler and its declaration."""

    name: str
    func: Handler
    params: tuple[Param, ...] = ()
    result: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    summary: str = ""
    description: str = ""
    errors: tuple[int, ...] = ()
    control: bool = False
    """Changes what the node does (``stop``, ``addnode``, ...): needs credentials even on loopback."""

    def signature(self) -> str:
        """``name req1 req2 ( opt1 opt2 )``, in the style of bitcoin-cli's help."""
        required = [p.name for p in self.params if p.required]
        optional = [p.name for p in self.params if not p.required]
        text = " ".join([self.name, *required])
        if optional:
            text += " ( " + " ".join(optional) + " )"
        return text

    def bind(self, params: Any) -> dict[str, Any]:
        """Check ``params`` (array, object or ``None``) and return the handler's keyword arguments.

        Raises ``RpcError(INVALID_PARAMS)`` naming the first problem found.
        """
        declared = {p.name: p for p in self.params}
        if params is None:
            given: Mapping[str, Any] = {}
        elif isinstance(params, list):
            if len(params) > len(self.params):
                if not self.params:
                    msg = f"{self.name} takes no parameters, got {len(params)}"
                else:
                    names = ", ".join(p.name for p in self.params)
                    msg = (f"too many parameters for {self.name}: it takes at most {len(self.params)} "
                           f"({names}), got {len(params)}")
                raise RpcError(E.INVALID_PARAMS, msg)
            given = {p.name: v for p, v in zip(self.params, params, strict=False)}  # a prefix: the rest are optional
        elif isinstance(params, Mapping):
            for key in params:
                if key not in declared:
                    accepted = ", ".join(declared) or "none"
                    raise RpcError(E.INVALID_PARAMS, f"unknown parameter {preview(key)} for "
                                                     f"{self.name} (accepted parameters: {accepted})")
            given = params
        else:
            raise RpcError(E.INVALID_PARAMS, "params must be an array or an object")
        kwargs: dict[str, Any] = {}
        for p in self.params:
            if p.name in given:
                try:
                    validate_value(given[p.name], p.schema, p.name)
                except SchemaViolation as exc:
                    raise RpcError(E.INVALID_PARAMS, f"Invalid parameter {exc}") from None
                kwargs[p.name] = given[p.name]
            elif p.required:
                raise RpcError(E.INVALID_PARAMS, f'missing required parameter "{p.name}" '
                                                 f"({describe_schema(p.schema)}) for {self.name}")
            elif "default" in p.schema:
                kwargs[p.name] = copy.deepcopy(p.schema["default"])
        return kwargs

    def help_text(self) -> str:
        """The multi-line text ``help <method>`` returns."""
        lines = [self.signature(), ""]
        if self.summary:
            lines += [self.summary, ""]
        if self.description and self.description != self.summary:
            lines += [self.description, ""]
        if self.params:
            lines.append("Arguments:")
            width = max(len(p.name) for p in self.params)
            for i, p in enumerate(self.params, 1):
                flags = "required" if p.required else "optional"
                if "default" in p.schema:
                    flags += f", default={preview(p.schema['default'])}"
                text = f"{i}. {p.name.ljust(width)}  ({describe_schema(p.schema)}, {flags})"
                if p.description:
                    text += f" {p.description}"
                lines.append(text)
            lines.append("")
        result = self._result_text()
        if result:
            lines += ["Result:", result, ""]
        if self.errors:
            lines.append("Errors:")
            for code in self.errors:
                lines.append(f"  {code:>6}  {E.ERROR_MESSAGES.get(code, 'Application error')}")
            lines.append("")
        return "\n".join(lines).rstrip() + "\n"

    def _result_text(self) -> str:
        """The line under ``Result:`` in ``help_text``; empty when nothing is declared about the result."""
        phrase = describe_schema(self.result)
        parts = [] if phrase == "any value" else [f"({phrase})"]
        if self.result.get("description"):
            parts.append(str(self.result["description"]))
        return " ".join(parts)

    def openrpc(self) -> dict[str, Any]:
        """This method as an OpenRPC Method Object."""
        doc: dict[str, Any] = {"name": self.name}
        if self.summary:
            doc["summary"] = self.summary
        if self.description:
            doc["description"] = self.description
        doc["params"] = [
            {"name": p.name, "required": p.required, "schema": dict(p.schema),
             **({"description": p.description} if p.description else {})}
            for p in self.params
        ]
        doc["result"] = {"name": f"{self.name}Result", "schema": dict(self.result)}
        if self.errors:
            doc["errors"] = [{"code": c, "message": E.ERROR_MESSAGES.get(c, "Application error")}
                             for c in self.errors]
        doc["paramStructure"] = "either"
        return doc


_DECLARATION = "__rpc_declaration__"


def rpc_method(name: str | None = None, **declaration: Any) -> Callable[[Handler], Handler]:
    """Mark a method of a class as a JSON-RPC method; ``Registry.add_methods`` registers it.

    Takes the same keywords as ``Registry.register``; the name defaults to the
    function's name.
    """

    def mark(func: Handler) -> Handler:
        setattr(func, _DECLARATION, (name or func.__name__, declaration))
        return func

    return mark


def _package_version() -> str:
    try:
        return metadata.version("pouw-node")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def _check_handler(name: str, func: Any, params: Sequence[Param]) -> None:
    """Refuse a handler that is not async or whose signature does not fit the declared params."""
    is_async = inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(type(func).__call__)
    if not is_async:
        raise TypeError(f"handler of {name!r} must be an async function, got {func!r}")
    sig = inspect.signature(func)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.parameters.values())
    declared = {p.name: p for p in params}
    for p in params:
        if not accepts_any and (p.name not in sig.parameters
                                or sig.parameters[p.name].kind is inspect.Parameter.POSITIONAL_ONLY):
            raise TypeError(f"handler of {name!r} does not accept the declared parameter {p.name!r}")
    for pname, sp in sig.parameters.items():
        if sp.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if sp.default is not inspect.Parameter.empty:
            continue
        decl = declared.get(pname)
        if decl is None:
            raise TypeError(f"handler of {name!r} needs argument {pname!r}, which is not a declared parameter")
        if not decl.required and "default" not in decl.schema:
            raise TypeError(f"optional parameter {pname!r} of {name!r} needs a Python default "
                            "or a schema default")


class Registry:
    """The set of JSON-RPC methods a server answers.

    ``info`` is the OpenRPC Info Object (``title`` and ``version`` at least)
    that ``rpc.discover`` reports; ``builtins=False`` leaves out ``help`` and
    ``rpc.discover``.
    """

    def __init__(self, *, info: Mapping[str, Any] | None = None, builtins: bool = True) -> None:
        self.info: dict[str, Any] = {"title": "pouw-node JSON-RPC", "version": _package_version()}
        if info:
            self.info.update(info)
        self._methods: dict[str, Method] = {}
        if builtins:
            self._register_builtins()

    # -- declaring ---------------------------------------------------------------------------

    def register(
        self,
        name: str,
        func: Handler,
        *,
        params: Iterable[Param] = (),
        result: Mapping[str, Any] | None = None,
        summary: str = "",
        description: str = "",
        errors: Iterable[int] = (),
        control: bool = False,
    ) -> Method:
        """Declare method ``name`` answered by the async ``func``; returns the ``Method``.

        ``summary`` and ``description`` default to the first line and the
        rest of ``func``'s docstring. Raises ``ValueError`` for a duplicate
        name or a bad schema, ``TypeError`` for a handler that does not fit.
        """
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"method name must be a non-empty string without spaces, got {name!r}")
        if name in self._methods:
            raise ValueError(f"method {name!r} is already registered")
        params = tuple(params)
        names = [p.name for p in params]
        if len(set(names)) != len(names):
            raise ValueError(f"method {name!r} declares a parameter twice: {names}")
        seen_optional = False
        for p in params:
            if p.required and seen_optional:
                raise ValueError(f"method {name!r}: required parameter {p.name!r} follows an optional one")
            seen_optional |= not p.required
        result = dict(result or {})
        check_schema(result, f"result of {name!r}")
        codes = tuple(errors)
        for code in codes:
            if isinstance(code, bool) or not isinstance(code, int):
                raise ValueError(f"method {name!r}: error codes must be ints, got {code!r}")
        _check_handler(name, func, params)
        doc = inspect.getdoc(func) or ""
        first, _, rest = doc.partition("\n")
        method = Method(
            name=name,
            func=func,
            params=params,
            result=result,
            summary=summary or first.strip(),
            description=description or rest.strip(),
            errors=codes,
            control=control,
        )
        self._methods[name] = method
        return method

    def method(self, name: str | None = None, **declaration: Any) -> Callable[[Handler], Handler]:
        """Decorator form of ``register``; the name defaults to the function's name."""

        def decorate(func: Handler) -> Handler:
            self.register(name or func.__name__, func, **declaration)
            return func

        return decorate

    def add_methods(self, group: object) -> list[Method]:
        """Register every method of ``group`` marked with ``rpc_method``, in definition order."""
        added = []
        for cls in reversed(type(group).__mro__):
            for attr, value in vars(cls).items():
                marked = getattr(value, _DECLARATION, None)
                if marked is not None:
                    name, declaration = marked
                    added.append(self.register(name, getattr(group, attr), **declaration))
        return added

    def unregister(self, name: str) -> None:
        del self._methods[name]

    # -- looking up --------------------------------------------------------------------------

    def get(self, name: str) -> Method | None:
        return self._methods.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._methods

    def __iter__(self) -> Iterator[Method]:
        return iter(sorted(self._methods.values(), key=lambda m: m.name))

    def __len__(self) -> int:
        return len(self._methods)

    def names(self) -> list[str]:
        return sorted(self._methods)

    # -- calling -----------------------------------------------------------------------------

    async def call(self, name: str, params: Any = None) -> Any:
        """Bind ``params``, run the handler and return its result.

        Raises ``RpcError``: ``METHOD_NOT_FOUND``, ``INVALID_PARAMS``, whatever the
        handler raised, or ``INTERNAL_ERROR`` (generic message; traceback logged)
        when the handler raised anything else.
        """
        method = self._methods.get(name)
        if method is None:
            raise RpcError(E.METHOD_NOT_FOUND,
                           f'Method not found: {preview(name, 64)} (call "help" for the list)')
        kwargs = method.bind(params)
        try:
            return await method.func(**kwargs)
        except RpcError:
            raise
        except Exception:
            log.exception("RPC method %s failed", name)
            raise RpcError(E.INTERNAL_ERROR, f"Internal error in {name}; see the node log") from None

    # -- documentation -----------------------------------------------------------------------

    def openrpc_document(self, info: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The OpenRPC 1.2.6 document listing every method (``info`` defaults to the registry's)."""
        return {
            "openrpc": OPENRPC_VERSION,
            "info": dict(info if info is not None else self.info),
            "methods": [m.openrpc() for m in self],
        }

    def help_text(self, command: str | None = None) -> str:
        """``help`` without a command: one line per method, sorted; with one: its full help."""
        if command is None:
            methods = list(self)
            width = max((len(m.signature()) for m in methods), default=0)
            return "\n".join(f"{m.signature().ljust(width)}  {m.summary}".rstrip() for m in methods) + "\n"
        method = self._methods.get(command)
        if method is None:
            raise RpcError(E.INVALID_PARAMETER, f"help: unknown method {preview(command, 64)}")
        return method.help_text()

    def _register_builtins(self) -> None:
        async def help(command: str | None = None) -> str:  # the RPC's name
            return self.help_text(command)

        async def discover() -> dict[str, Any]:
            return self.openrpc_document()

        self.register(
            "help", help,
            params=[Param("command", {"type": "string"}, required=False,
                          description="A method name; without it, list every method.")],
            result={"type": "string"},
            summary="List the methods, or describe one.",
            errors=[E.INVALID_PARAMETER],
        )
        self.register(
            "rpc.discover", discover,
            result={"type": "object", "description": "An OpenRPC 1.2.6 document."},
            summary="Return the OpenRPC document describing every method.",
        )
