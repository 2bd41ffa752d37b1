"""JSON-RPC error codes of the node and the one exception handlers raise.

A handler reports a failure the caller should see by raising
``RpcError(code, message, data=None)``; the server turns it into the
``error`` member of the response. Any other exception escaping a handler is
a bug: it is logged with its traceback and answered with ``INTERNAL_ERROR``
and a generic message, so internals never leak to clients.

The codes, in three groups:

JSON-RPC 2.0 reserved codes (https://www.jsonrpc.org/specification):

======  ==========================  ===============================================
-32700  ``PARSE_ERROR``             the body is not valid JSON
-32600  ``INVALID_REQUEST``         valid JSON, but not a JSON-RPC 2.0 request
                                    (also: empty batch, batch or body over the limit)
-32601  ``METHOD_NOT_FOUND``        no such method
-32602  ``INVALID_PARAMS``          a parameter is missing, unknown, surplus or of
                                    the wrong type or range
-32603  ``INTERNAL_ERROR``          the handler failed unexpectedly (a bug)
======  ==========================  ===============================================

Application codes reused from Bitcoin Core (``src/rpc/protocol.h``) where the
meaning is the same, so tools and habits carry over:

======  ==============================  ===========================================
-1      ``MISC_ERROR``                  failure that fits no other code
-3      ``TYPE_ERROR``                  a value has the wrong type (inside a param
                                        that is itself well-formed, e.g. a tx field)
-5      ``INVALID_ADDRESS_OR_KEY``      bad address, key, or unknown block/tx hash
-8      ``INVALID_PARAMETER``           a parameter is well-typed but not acceptable
                                        (out of range, refers to nothing, ...)
-22     ``DESERIALIZATION_ERROR``       raw tx/block bytes do not decode
-25     ``VERIFY_ERROR``                generic verification failure (tx or block)
-26     ``VERIFY_REJECTED``             rejected by policy or consensus rules
-27     ``VERIFY_ALREADY_IN_CHAIN``     the tx/block is already in the chain
-28     ``IN_WARMUP``                   the node is still starting up
======  ==============================  ===========================================

The matrix-multiplication job block, -40 to -49 (-49 is reserved):

======  ==============================  ===========================================
-40     ``JOB_BLOB_NOT_FOUND``          no matrix blob with that hash was uploaded
-41     ``JOB_MATRIX_INVALID``          a matrix has an unsupported dtype or shape,
                                        or values out of range
-42     ``JOB_TOO_LARGE``               the job (or blob) exceeds the size limits
-43     ``JOB_NOT_FOUND``               no job with that id
-44     ``JOB_RESULT_NOT_READY``        the job exists but has no result yet
-45     ``JOB_QUEUE_FULL``              the job queue is full; retry later
-46     ``JOB_NOT_CANCELLABLE``         the job is running or finished
-47     ``JOB_VERIFICATION_FAILED``     the result failed its Freivalds check
-48     ``OFFER_NOT_FOUND``             no paid job offer with that id is known
======  ==============================  ===========================================

Bad credentials, and missing ones where the server requires them for every
call (bound beyond loopback), are an HTTP 401 before any JSON is read. One
code of the server range: ``-32001 CREDENTIALS_REQUIRED``, a control method
(``stop``, ``addnode``, ``setban``, ``generatetoaddress``, ``faucet``) called
without credentials where the other methods need none (loopback).
"""

from __future__ import annotations

from typing import Any

# JSON-RPC 2.0 reserved.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603

# Bitcoin Core application codes.
MISC_ERROR = -1
TYPE_ERROR = -3
INVALID_ADDRESS_OR_KEY = -5
INVALID_PARAMETER = -8
DESERIALIZATION_ERROR = -22
VERIFY_ERROR = -25
VERIFY_REJECTED = -26
VERIFY_ALREADY_IN_CHAIN = -27
IN_WARMUP = -28
CREDENTIALS_REQUIRED = -32001

# Matrix-multiplication jobs and paid offers (-49 reserved for later use).
JOB_BLOB_NOT_FOUND = -40
JOB_MATRIX_INVALID = -41
JOB_TOO_LARGE = -42
JOB_NOT_FOUND = -43
JOB_RESULT_NOT_READY = -44
JOB_QUEUE_FULL = -45
JOB_NOT_CANCELLABLE = -46
JOB_VERIFICATION_FAILED = -47
OFFER_NOT_FOUND = -48

#: Every code above with a short human description (used by ``help`` and the
#: OpenRPC document's ``errors`` entries).
ERROR_MESSAGES: dict[int, str] = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid request",
    METHOD_NOT_FOUND: "Method not found",
    INVALID_PARAMS: "Invalid params",
    INTERNAL_ERROR: "Internal error",
    MISC_ERROR: "Miscellaneous error",
    TYPE_ERROR: "Unexpected type",
    INVALID_ADDRESS_OR_KEY: "Invalid address or key",
    INVALID_PARAMETER: "Invalid parameter",
    DESERIALIZATION_ERROR: "Deserialization error",
    VERIFY_ERROR: "Verification error",
    VERIFY_REJECTED: "Rejected",
    VERIFY_ALREADY_IN_CHAIN: "Already in chain",
    IN_WARMUP: "Warming up",
    CREDENTIALS_REQUIRED: "Credentials required",
    JOB_BLOB_NOT_FOUND: "Blob not found",
    JOB_MATRIX_INVALID: "Matrix invalid (dtype, shape or range)",
    JOB_TOO_LARGE: "Too large",
    JOB_NOT_FOUND: "Job not found",
    JOB_RESULT_NOT_READY: "Result not ready",
    JOB_QUEUE_FULL: "Job queue full",
    JOB_NOT_CANCELLABLE: "Job cannot be cancelled",
    JOB_VERIFICATION_FAILED: "Verification failed",
    OFFER_NOT_FOUND: "Offer not found",
}


class RpcError(Exception):
    """A failure reported to the JSON-RPC caller as ``{"code", "message", "data"?}``.

    ``code`` is one of the constants of this module, ``message`` a single
    sentence saying what was expected and what was found, ``data`` optional
    JSON-serialisable detail (omitted from the response when ``None``).
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        if isinstance(code, bool) or not isinstance(code, int):
            raise TypeError(f"RpcError code must be an int, got {type(code).__name__}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` object."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error

    def __repr__(self) -> str:
        return f"RpcError({self.code}, {self.message!r})"
