"""``pouw-wallet job ...``: submit a MatMul job, follow it, fetch and check its product.

NumPy and the protocol's Freivalds code are imported here only, so the other
commands start without them.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .rpc import RpcError
from .ui import EXIT_NODE, CliError, Progress

if TYPE_CHECKING:
    from .cli import Context

JOB_ID_RE = re.compile(r"^[0-9a-f]{64}$")
# Job error codes of the node (-40..-47); the user can act on these.
USER_JOB_CODES = {-40, -41, -42, -43, -44, -47}


def _job_id(text: str) -> str:
    t = text.strip().lower()
    if not JOB_ID_RE.match(t):
        raise CliError(f"a job id is 64 hex digits, found {text!r}; see your jobs with: pouw-wallet job list")
    return t


def _job_call(ctx: Context, method: str, *params):
    try:
        return ctx.client.call(method, *params)
    except RpcError as e:
        if e.code == -44:
            raise CliError(f"{e.message}; wait for it with: pouw-wallet job status {params[0]} --wait") from None
        if e.code in USER_JOB_CODES:
            raise CliError(f"{e.message} (code {e.code})") from None
        raise


def _describe(job: dict) -> str:
    s = job.get("shape") or {}
    line = f"{job['job_id']}  {job['status']:<9}  {s.get('m')}x{s.get('k')} @ {s.get('k')}x{s.get('n')}"
    if job.get("blocks"):
        line += f"  blocks {len(job['blocks'])}"
    if job.get("error"):
        line += f"  error: {job['error']}"
    return line


def cmd_job_submit(ctx: Context) -> int:
    from .jobs import JobFileError, read_matrix_file

    a = ctx.args
    try:
        a_bytes, a_mat = read_matrix_file(a.a, "A")
        b_bytes, b_mat = read_matrix_file(a.b, "B")
    except JobFileError as e:
        raise CliError(str(e)) from None
    if a_mat.shape[1] != b_mat.shape[0]:
        raise CliError(f"A is {a_mat.shape[0]}x{a_mat.shape[1]} and B is {b_mat.shape[0]}x{b_mat.shape[1]}: "
                       "A's columns must equal B's rows")
    wait = a.wait or a.out is not None  # --out needs the product: it waits for it
    if a.out is not None:
        check_out_path(a.out)
    try:
        a_hash = ctx.client.put_blob(a_bytes)["hash"]
        b_hash = ctx.client.put_blob(b_bytes)["hash"]
    except RpcError as e:
        if e.code in USER_JOB_CODES:
            raise CliError(f"the node refused the upload: {e.message} (code {e.code})") from None
        raise
    job = _job_call(ctx, "submitmatmuljob", a_hash, b_hash)
    job_id = job["job_id"]
    out = {"job_id": job_id, "status": job["status"], "a": a_hash, "b": b_hash}
    if wait:
        done = wait_job(ctx, job_id, a.timeout)
        out["status"] = done["status"]
    if a.out:
        out.update(fetch_result(ctx, job_id, a.out, a_mat, b_mat))
        ctx.emit(out, f"{job_id}\nsaved {a.out}: {out['shape'][0]}x{out['shape'][1]} int32, Freivalds check passed")
        return 0
    out["fetch"] = result_command(ctx, job_id)
    ctx.emit(out, job_id)
    if not ctx.json:  # the next step, on stderr so that stdout stays the job id for scripts
        if wait or out["status"] == "done":  # done already: the same matrices were computed before
            hint(f"the product is ready; fetch it (checked locally) with: {out['fetch']}")
        else:
            hint(f"queued; wait for it with: pouw-wallet job status {job_id} --wait, then fetch the product "
                 f"with: {out['fetch']}")
    return 0


def result_command(ctx: Context, job_id: str) -> str:
    """The command that downloads, checks and saves the product of ``job_id`` (with this call's node and wallet)."""
    extra = f" --rpc-url {shlex.quote(ctx.args.rpc_url)}" if ctx.args.rpc_url else ""
    return f"pouw-wallet job result {job_id} --out C.npy{extra}"


def check_out_path(out: str) -> None:
    """Refuse an ``--out`` whose folder does not exist before anything is uploaded or waited for."""
    folder = Path(out).parent
    if not folder.is_dir():
        raise CliError(f"cannot save the product to {out}: the folder {folder} does not exist")
    if Path(out).is_dir():
        raise CliError(f"cannot save the product to {out}: it is a folder; give a file name such as {out}/C.npy")


def hint(text: str) -> None:
    print(text, file=sys.stderr)


def wait_job(ctx: Context, job_id: str, timeout: float) -> dict:
    """Poll ``getmatmuljob`` until done (or failed/cancelled: an error); progress on stderr."""
    progress = Progress()
    deadline = time.monotonic() + timeout
    while True:
        job = _job_call(ctx, "getmatmuljob", job_id)
        status = job["status"]
        if status == "done":
            progress.done(f"job {job_id[:16]}... done")
            return job
        if status in ("failed", "cancelled"):
            progress.done()
            raise CliError(f"job {job_id} {status}" + (f": {job['error']}" if job.get("error") else "")
                           + "; submit it again", EXIT_NODE)
        if time.monotonic() > deadline:
            progress.done()
            raise CliError(f"job {job_id} is still {status} after {timeout:g} s; it goes on: check it with "
                           f"pouw-wallet job status {job_id}", EXIT_NODE)
        hint = "waiting for a miner" if status == "queued" else "being mined"
        progress.update(f"job {job_id[:16]}... {status} ({hint})")
        time.sleep(0.5)


def cmd_job_status(ctx: Context) -> int:
    job_id = _job_id(ctx.args.job_id)
    job = wait_job(ctx, job_id, ctx.args.timeout) if ctx.args.wait else _job_call(ctx, "getmatmuljob", job_id)
    ctx.emit(job, _describe(job))
    if job.get("status") == "done" and not ctx.json:
        hint(f"fetch the product (checked locally) with: {result_command(ctx, job_id)}")
    return 0


def cmd_job_list(ctx: Context) -> int:
    params = [ctx.args.status] if ctx.args.status else []
    jobs = _job_call(ctx, "listmatmuljobs", *params)
    ctx.emit(jobs, "\n".join(_describe(j) for j in jobs) if jobs else "no jobs")
    return 0


def fetch_result(ctx: Context, job_id: str, out_path: str, a_mat=None, b_mat=None) -> dict:
    """Download the product of ``job_id``, check it locally, save it to ``out_path``."""
    from .jobs import JobFileError, ProductRejected, check_job_inputs, load_npy_bytes, save_verified_product

    result = _job_call(ctx, "getmatmulresult", job_id)
    job_bytes = bytes.fromhex(job_id)
    try:
        c = load_npy_bytes(ctx.client.get_blob(result["c"]), "the product from the node")
        source = "local files"
        if a_mat is None or b_mat is None:
            job = _job_call(ctx, "getmatmuljob", job_id)
            a_mat = load_npy_bytes(ctx.client.get_blob(job["a"]), "A from the node")
            b_mat = load_npy_bytes(ctx.client.get_blob(job["b"]), "B from the node")
            source = "downloaded from the node"
        # A and B must be the matrices the job id commits to (the node may have supplied them; the user may
        # have passed other files by mistake).
        check_job_inputs(a_mat, b_mat, job_bytes)
        c_hash = save_verified_product(out_path, a_mat, b_mat, c, job_bytes)
    except (JobFileError, ProductRejected) as e:
        raise CliError(f"refusing to save the product of job {job_id}: {e}") from None
    return {"out": out_path, "c_blake3": c_hash, "node_c_blake3": result.get("c_blake3"),
            "shape": [int(c.shape[0]), int(c.shape[1])], "freivalds": "passed", "inputs": source}


def cmd_job_result(ctx: Context) -> int:
    from .jobs import JobFileError, read_matrix_file

    a = ctx.args
    job_id = _job_id(a.job_id)
    if (a.a is None) != (a.b is None):
        raise CliError("give both --a and --b, or neither (then A and B are downloaded from the node)")
    a_mat = b_mat = None
    if a.a is not None:
        try:
            a_mat = read_matrix_file(a.a, "A")[1]
            b_mat = read_matrix_file(a.b, "B")[1]
        except JobFileError as e:
            raise CliError(str(e)) from None
    check_out_path(a.out)
    out = fetch_result(ctx, job_id, a.out, a_mat, b_mat)
    ctx.emit({"job_id": job_id, **out},
             f"saved {a.out}: {out['shape'][0]}x{out['shape'][1]} int32, Freivalds check passed "
             f"(A and B: {out['inputs']})")
    return 0
