"""``pouw-wallet matmul A.npy B.npy --out C.npy``: the exact product of any-size integer (or float) matrices.

The command face of ``wallet.matmul.Client``: it cuts the product into
sub-jobs, lets the network's miners compute them, checks every sub-product
locally (Freivalds) and saves ``C`` (int64, exact; float64 with
``--quantize``). NumPy is imported here only, so the other commands start
without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .ui import EXIT_NODE, CliError

if TYPE_CHECKING:
    from .cli import Context


def _save(out: str, data: bytes) -> None:
    """Write ``out`` atomically (``wallet.jobs.write_atomic``); a directory that cannot be written is a CliError."""
    from .jobs import write_atomic

    try:
        write_atomic(out, data)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror}") from None


def cmd_matmul(ctx: Context) -> int:
    from .jobs import encode_npy
    from .matmul import Client, MatmulError, load_matrix_file

    a = ctx.args
    if not a.timeout > 0:
        raise CliError(f"--timeout must be positive, found {a.timeout:g}")
    try:
        a_mat = load_matrix_file(a.a, "A")
        b_mat = load_matrix_file(a.b, "B")
        auth = ctx._auth()  # the CLI's credential rules: --rpc-user/--rpc-password, the cookie, the environment
        client = Client(ctx.rpc_url, user=auth[0] if auth else None, password=auth[1] if auth else None,
                        timeout=a.timeout, progress=None)
        c = client.matmul(a_mat, b_mat, quantize=a.quantize)
    except MatmulError as e:
        timed_out = "timed out" in str(e)
        raise CliError(str(e), EXIT_NODE if timed_out else None) from None
    _save(a.out, encode_npy(c))
    s = client.last_stats
    out = {"out": a.out, "shape": [int(c.shape[0]), int(c.shape[1])], "dtype": str(c.dtype),
           "exact": a.quantize is None, **s}
    who = ", ".join(f"{k} {v}" for k, v in sorted(s["computed_by"].items())) or "nobody (no non-zero block)"
    kind = "exact" if a.quantize is None else f"quantized to {a.quantize}, rescaled"
    ctx.emit(out, f"saved {a.out}: {c.shape[0]}x{c.shape[1]} {c.dtype} ({kind}, every sub-product checked)\n"
                  f"{s['sub_jobs']} sub-jobs ({s['reused']} repeated blocks reused, {s['retries']} retries), "
                  f"computed by: {who}; {s['bytes_up'] / 1e6:.1f} MB up, {s['bytes_down'] / 1e6:.1f} MB down, "
                  f"{s['seconds']:.1f} s")
    return 0
