"""``pouw-wallet job ...``: submit a MatMul job, follow it, fetch and check its product; pay for one.

Free jobs (``submit``, ``status``, ``result``, ``list``) are best-effort. Paid
jobs (docs/protocol.md section 11) go through ``wallet.market``: ``submit
--reward`` sends an offer, ``result`` accepts a right product, proves a wrong
one (``wallet.fraudproof``) or rejects when none arrives in the window,
``claim`` is the claimant's side, and ``accept|reject|settle|refund|fraud``
send one step each. Those sign, so they unlock the wallet.

NumPy and the protocol's Freivalds code are imported here only, inside the
commands, so the other commands start without them.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .rpc import BlobTooLarge, RpcError
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
    if a.reward is not None:
        return cmd_job_submit_paid(ctx)
    if a.deposit is not None or a.bond is not None or a.deadline is not None or a.no_queue:
        raise CliError("--deposit, --bond, --deadline and --no-queue go with --reward (a paid job); without "
                       "--reward the job is free")
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
    if not ctx.args.wait:  # an offer id: the offer's escrow status (a node without the job market: -32601)
        try:
            offer = ctx.client.call("getjoboffer", job_id)
        except RpcError as e:
            if e.code not in (-48, -32601):
                raise
        else:
            ctx.emit(offer, _offer_line(offer))
            return 0
    job = wait_job(ctx, job_id, ctx.args.timeout) if ctx.args.wait else _job_call(ctx, "getmatmuljob", job_id)
    ctx.emit(job, _describe(job))
    if job.get("status") == "done" and not ctx.json:
        hint(f"fetch the product (checked locally) with: {result_command(ctx, job_id)}")
    return 0


def cmd_job_list(ctx: Context) -> int:
    """The node's offers (escrow status, reward, claimant, the height it can settle from), then its free jobs.

    ``--json``: one list, offers first (``"kind": "offer"``, the ``getjoboffer`` fields), then jobs
    (``"kind": "job"``, the ``getmatmuljob`` fields).
    """
    a = ctx.args
    offers: list[dict] = []
    if a.status is None or a.status in OFFER_STATUSES:
        try:
            offers = ctx.client.call("listjoboffers", *([a.status] if a.status else []))
        except RpcError as e:
            if e.code != -32601:  # a node without the job market lists free jobs only
                raise
    jobs = []
    if a.status is None or a.status in JOB_STATUSES:
        jobs = _job_call(ctx, "listmatmuljobs", *([a.status] if a.status else []))
    lines = ["offers:", *("  " + _offer_line(o) for o in offers)] if offers else []
    if jobs:
        lines += ["jobs:" if offers else "", *(("  " if offers else "") + _describe(j) for j in jobs)]
    ctx.emit([{"kind": "offer", **o} for o in offers] + [{"kind": "job", **j} for j in jobs],
             "\n".join(line for line in lines if line) if lines else "no offers and no jobs")
    return 0


OFFER_STATUSES = ("open", "claimed", "accepted", "settled", "rejected", "fraud", "refunded")
JOB_STATUSES = ("queued", "mining", "done", "failed", "cancelled")


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
    from .market import METHOD_NOT_FOUND, MarketError, NoLiveOffer, resolve_offer

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
    try:
        offer = resolve_offer(ctx.client, job_id)
    except NoLiveOffer:
        offer = None  # a free job
    except MarketError as e:
        raise CliError(str(e)) from None
    except RpcError as e:
        if e.code != METHOD_NOT_FOUND:  # a node without the job market: free jobs only
            raise
        offer = None
    if offer is not None:
        return cmd_job_result_paid(ctx, offer, a_mat, b_mat)
    if a.wait:
        wait_job(ctx, job_id, a.timeout)
    out = fetch_result(ctx, job_id, a.out, a_mat, b_mat)
    ctx.emit({"job_id": job_id, **out},
             f"saved {a.out}: {out['shape'][0]}x{out['shape'][1]} int32, Freivalds check passed "
             f"(A and B: {out['inputs']})")
    return 0


# --- paid jobs (docs/protocol.md section 11) ----------------------------------------------------
#
# ``job submit --reward`` sends an offer; ``job result`` follows a claimed offer to its end (accept,
# fraud, or reject when no product arrives in the window); ``job claim`` is the claimant's side;
# ``job accept|reject|settle|refund|fraud`` send one step each. An OFFER argument is an offer id, or
# a job id that exactly one live offer carries.

POLL_S = 0.5


def _market_call(fn, *args, **kwargs):
    """Run a ``wallet.market`` function, turning its ``MarketError`` into the CLI's user error."""
    from .market import MarketError

    try:
        return fn(*args, **kwargs)
    except MarketError as e:
        raise CliError(str(e)) from None


def _short(hex_id: str) -> str:
    return hex_id[:16] + "..."


def _amount(text: str | None, what: str) -> int | None:
    from .amounts import parse_amount

    return None if text is None else parse_amount(text, what=what)


def _balances(ctx: Context, addresses: list[str]) -> list[int]:
    return [int(a["balance"]) for a in ctx.client.batch([("getaccount", [x]) for x in addresses])]


def _pick_sender(ctx: Context, need: int, address: str | None = None, what: str = "this step") -> tuple[int, str]:
    """The wallet address that sends: ``address`` (it must be the wallet's), ``--from-index``, or the first
    address holding ``need`` base units."""
    from .amounts import format_amount

    ks = ctx.load_wallet()
    index: int | None
    if address is not None:
        if address not in ks.addresses:
            raise CliError(f"{what} must come from {address}, which is not an address of wallet {ks.name!r} "
                           "(pick the client's wallet with --wallet NAME)")
        index = ks.addresses.index(address)
    else:
        index = getattr(ctx.args, "from_index", None)
        if index is not None and not 0 <= index < ks.address_count:
            raise CliError(f"--from-index {index} is not handed out yet (indices 0..{ks.address_count - 1})")
    indices = [index] if index is not None else list(range(ks.address_count))
    balances = _balances(ctx, [ks.addresses[i] for i in indices])
    for i, bal in zip(indices, balances, strict=True):
        if bal >= need:
            return i, ks.addresses[i]
    best = max(balances, default=0)
    raise CliError(f"insufficient funds: {what} needs {format_amount(need)} coins on one address, but "
                   f"the largest balance is {format_amount(best)}; nothing was sent")


def _key(ctx: Context, index: int):
    from .commands import _unlock

    ks = ctx.load_wallet()
    return _unlock(ctx, ks).keypair(index)


def _confirm(question: str) -> bool:
    """Ask y/N on a terminal; without one the answer is no (the command only reports)."""
    if not sys.stdin.isatty():
        return False
    try:
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
    except EOFError:
        return False


def _offer_line(o: dict, window: int | None = None) -> str:
    from .amounts import format_amount

    line = (f"{o['offer_id']}  {o['status']:<8}  job {_short(o['job_id'])}  {o['m']}x{o['k']} @ {o['k']}x{o['n']}  "
            f"reward {format_amount(int(o['reward']))}  bond {format_amount(int(o['bond']))}  "
            f"deadline {o['deadline']}")
    if o.get("claimant"):
        line += f"  claimant {o['claimant']} at {o['claim_height']}"
        if o.get("live") and o.get("settle_height") is not None:
            line += f"  settles from {o['settle_height']}"
    if o.get("final_txid"):
        line += f"  final at {o.get('final_height')}"
    return line


def cmd_job_submit_paid(ctx: Context) -> int:
    """``job submit A B --reward COINS``: upload A and B, check the node's job id, send the offer."""
    from consensus.types import KIND_OFFER

    from .amounts import format_amount
    from .jobs import JobFileError, read_matrix_file
    from .market import fee_of, market_params, plan_offer, reserve_fees, send_job_tx

    a = ctx.args
    if a.no_queue and a.wait:
        raise CliError("--no-queue sends the offer only; there is no job to --wait for")
    if a.out is not None:
        raise CliError("--out goes with free jobs; for a paid job follow the offer with: "
                       "pouw-wallet job result OFFER --out C.npy --auto --wait")
    reward = _amount(a.reward, "reward")
    deposit, bond = _amount(a.deposit, "deposit"), _amount(a.bond, "bond")
    try:
        a_bytes, a_mat = read_matrix_file(a.a, "A")
        b_bytes, b_mat = read_matrix_file(a.b, "B")
    except JobFileError as e:
        raise CliError(str(e)) from None
    if a_mat.shape[1] != b_mat.shape[0]:
        raise CliError(f"A is {a_mat.shape[0]}x{a_mat.shape[1]} and B is {b_mat.shape[0]}x{b_mat.shape[1]}: "
                       "A's columns must equal B's rows")
    ctx.load_wallet()  # the wallet's network, before the node is asked
    params, tip = _market_call(market_params, ctx.client, ctx.network)
    plan = _market_call(plan_offer, a_mat, b_mat, params, tip, reward, deposit, bond, a.deadline)
    p = plan.payload
    fee = fee_of(params, KIND_OFFER, p)
    reserve = reserve_fees(params, p.m, p.k, p.n)
    index, client = _pick_sender(ctx, p.reward + p.deposit + fee, what="the offer (reward + deposit + fee)")
    try:
        a_hash = ctx.client.put_blob(a_bytes)["hash"]
        b_hash = ctx.client.put_blob(b_bytes)["hash"]
    except RpcError as e:
        if e.code in USER_JOB_CODES:
            raise CliError(f"the node refused the upload: {e.message} (code {e.code})") from None
        raise
    sent = _market_call(send_job_tx, ctx.client, _key(ctx, index), params, KIND_OFFER, plan.job_id, p)
    out = {**plan.to_json(), "offer_id": sent.offer_id, "txid": sent.txid, "client": client, "fee": sent.fee,
           "a": a_hash, "b": b_hash}
    # The job is queued for the miners only once its offer is on chain: a miner that took it earlier would
    # compute it as a free job, and a claim-key miner claims only the jobs an open offer carries.
    out.update(_wait_offer_mined(ctx, sent.offer_id, a.timeout))
    if a.no_queue:
        out["job_status"] = None
        ctx.emit(out, f"offer {sent.offer_id}\njob {plan.job_id.hex()}\ntxid {sent.txid}")
        return 0
    job = _job_call(ctx, "submitmatmuljob", a_hash, b_hash)
    if job["job_id"] != plan.job_id.hex():
        raise CliError(f"the node gives job id {job['job_id']} for A and B, the wallet computed {plan.job_id.hex()} "
                       f"for offer {sent.offer_id}; no miner of this node will take the offer. Take the escrow back "
                       f"after its deadline ({p.deadline}) with: pouw-wallet job refund {sent.offer_id}", EXIT_NODE)
    out["job_status"] = job["status"]
    ctx.emit(out, f"offer {sent.offer_id}\njob {plan.job_id.hex()}\ntxid {sent.txid}")
    if not ctx.json:
        hint(f"escrowed {format_amount(p.reward + p.deposit)} coins (reward {format_amount(p.reward)} + deposit "
             f"{format_amount(p.deposit)}); a claimant bonds {format_amount(p.bond)}; claims until height "
             f"{p.deadline}")
        hint(f"follow it (accepts a right product, proves a wrong one, rejects a withheld one) with: "
             f"pouw-wallet job result {sent.offer_id} --out C.npy --auto --wait")
        balance = _balances(ctx, [client])[0] - p.reward - p.deposit - fee
        if balance < reserve:
            hint(f"warning: keep at least {format_amount(reserve)} coins on {client} until the offer is final "
                 "(the fees of a fraud proof and a reject); it will hold about "
                 f"{format_amount(max(0, balance))}")
    return 0


def _wait_offer_mined(ctx: Context, offer_id: str, timeout: float) -> dict:
    progress = Progress()
    deadline = time.monotonic() + timeout
    while True:
        try:
            offer = ctx.client.call("getjoboffer", offer_id)
            if offer.get("offer_height") is not None:
                progress.done(f"offer {_short(offer_id)} in block {offer['offer_height']}")
                return {"offer_height": offer["offer_height"], "status": offer["status"]}
        except RpcError as e:
            if e.code != -48:
                raise
        if time.monotonic() > deadline:
            progress.done()
            raise CliError(f"offer {offer_id} was sent but not mined within {timeout:g} s, so its job is not queued "
                           f"yet; once it is mined, run the same job submit again without --reward to queue it "
                           f"(check with: pouw-wallet job list)", EXIT_NODE)
        progress.update(f"offer {_short(offer_id)}: sent, waiting for a block (the job is queued once it is in one)")
        time.sleep(POLL_S)


def _download_product(ctx: Context, offer: dict):
    """The offer's product as the node holds it and its ``root_C`` check, or ``None`` when the node has none
    whose ``root_C`` is the claim's."""
    from .jobs import JobFileError, load_npy_bytes
    from .market import MarketError, check_claimed_product, product_bytes_limit

    product = offer.get("product") or {}
    if not product.get("blob") or offer.get("root_c") is None:
        return None
    try:
        raw = ctx.client.get_blob(product["blob"], max_bytes=product_bytes_limit(offer))
        c = load_npy_bytes(raw, "the product from the node")
        root = check_claimed_product(offer, c)
    except (JobFileError, MarketError, RpcError, BlobTooLarge):
        return None  # not the claimed product (or not served yet): as if none had arrived
    return c if root.hex() == offer["root_c"] else None


def _job_inputs(ctx: Context, offer: dict, a_mat, b_mat):
    """A and B of the offer's job: the user's files, or downloaded; either way checked against the job id."""
    from .jobs import JobFileError, ProductRejected, check_job_inputs, load_npy_bytes

    source = "local files"
    try:
        if a_mat is None:
            try:
                job = ctx.client.call("getmatmuljob", offer["job_id"])
            except RpcError as e:
                if e.code != -43:
                    raise
                raise CliError(f"the node does not hold the matrices of job {offer['job_id']}; pass the ones you "
                               "offered with --a A.npy --b B.npy") from None
            a_mat = load_npy_bytes(ctx.client.get_blob(job["a"]), "A from the node")
            b_mat = load_npy_bytes(ctx.client.get_blob(job["b"]), "B from the node")
            source = "downloaded from the node"
        check_job_inputs(a_mat, b_mat, bytes.fromhex(offer["job_id"]))
    except (JobFileError, ProductRejected) as e:
        raise CliError(f"cannot check the product of offer {offer['offer_id']}: {e}") from None
    return a_mat, b_mat, source


def default_margin(window: int) -> int:
    """Blocks before the window's end at which ``result --wait`` gives up on a product and rejects."""
    return max(1, min(window - 1, max(2, window // 10)))


def cmd_job_result_paid(ctx: Context, offer: dict, a_mat, b_mat) -> int:
    """``job result OFFER``: wait for a claim and its product, check it, and accept, prove fraud or reject."""
    from consensus.types import KIND_ACCEPT, KIND_FRAUD

    from .fraudproof import build_fraud_payload
    from .jobs import encode_npy, write_atomic
    from .market import get_offer, judge_product, market_params

    a = ctx.args
    params, tip = _market_call(market_params, ctx.client, ctx.network)
    window = params.job_window
    margin = default_margin(window) if a.margin is None else a.margin
    if not 0 <= margin < window:
        raise CliError(f"--margin is between 0 and {window - 1} blocks (the window W is {window}), found {margin}")
    offer_id = offer["offer_id"]
    progress = Progress(enabled=a.wait)
    give_up = time.monotonic() + a.timeout
    while True:
        status = offer["status"]
        c = _download_product(ctx, offer) if status != "open" else None
        if c is not None:
            break
        if status == "open":
            deadline = int(offer["deadline"])
            if tip >= deadline:
                progress.done()
                raise CliError(f"offer {offer_id} got no claim by its deadline {deadline}; the client takes its "
                               f"escrow back with: pouw-wallet job refund {offer_id}")
            if not a.wait:
                raise CliError(f"offer {offer_id} is open: nobody has claimed it yet (claims until height "
                               f"{deadline}, the chain is at {tip}); wait for it with --wait")
            progress.update(f"offer {_short(offer_id)}: open, waiting for a claim (height {tip}, deadline {deadline})")
        elif not offer.get("live"):
            progress.done()
            raise CliError(f"offer {offer_id} is {status} and the node holds no product matching its claim")
        else:
            end = int(offer["claim_height"]) + window
            reject_at = end - margin
            if tip >= reject_at:
                progress.done()
                return _withheld(ctx, offer, params, tip, end)
            if not a.wait:
                raise CliError(f"offer {offer_id} was claimed at height {offer['claim_height']} by "
                               f"{offer['claimant']}, but its product has not reached this node; wait for it with "
                               f"--wait (with --auto a reject is sent at height {reject_at} if none arrives)")
            progress.update(f"offer {_short(offer_id)}: claimed at {offer['claim_height']} by {offer['claimant']}; "
                            f"waiting for C (height {tip}, reject at {reject_at}, window ends {end})")
        if time.monotonic() > give_up:
            progress.done()
            raise CliError(f"gave up waiting after {a.timeout:g} s; offer {offer_id} is {status}. Run the command "
                           "again to go on", EXIT_NODE)
        time.sleep(POLL_S)
        offer = _market_call(get_offer, ctx.client, offer_id)
        tip = int(ctx.client.call("getblockcount"))
    progress.done(f"offer {_short(offer_id)}: product received")
    a_mat, b_mat, source = _job_inputs(ctx, offer, a_mat, b_mat)
    verdict = _market_call(judge_product, offer, a_mat, b_mat, c)
    out: dict = {"offer_id": offer_id, "job_id": offer["job_id"], "status": offer["status"], "root_c_ok": True,
                 "freivalds": "passed" if verdict.freivalds_ok else "failed", "inputs": source, "sent": None,
                 "wrong_tile": list(verdict.wrong_tile) if verdict.wrong_tile else None, "out": None}
    claimed = offer["status"] == "claimed" and offer.get("live")
    if verdict.freivalds_ok:
        write_atomic(a.out, encode_npy(c))
        out["out"] = a.out
        text = f"saved {a.out}: {c.shape[0]}x{c.shape[1]} int32, root_C and Freivalds check passed"
        if claimed and (a.auto or _confirm(f"accept offer {offer_id}? (pays the claimant reward + bond)")):
            sent = _send_step(ctx, KIND_ACCEPT, offer, params, None, client_only=True)
            out["sent"] = sent.to_json()
            text += f"\naccepted: txid {sent.txid}"
        elif claimed:
            text += f"\nnot accepted yet; accept with: pouw-wallet job accept {offer_id}"
        ctx.emit(out, text)
        return 0
    tile = verdict.wrong_tile
    text = (f"WRONG product for offer {offer_id}: it matches the claim's root_C but fails Freivalds' test"
            + (f"; tile {tile} is wrong" if tile else "") + "; nothing was saved")
    if claimed and tile is not None and (a.auto or _confirm("send the fraud proof? (refunds you, half the bond too)")):
        payload = build_fraud_payload(a_mat, b_mat, c, *tile)
        sent = _send_step(ctx, KIND_FRAUD, offer, params, payload)
        out["sent"] = sent.to_json()
        ctx.emit(out, text + f"\nfraud proof sent: txid {sent.txid}")
        return 0
    if claimed:
        text += f"\nprove it with: pouw-wallet job fraud {offer_id} --product CLAIMED_C.npy --a A.npy --b B.npy"
    ctx.emit(out, text)
    return 1


def _withheld(ctx: Context, offer: dict, params, tip: int, end: int) -> int:
    """No product matching the claim by ``claim height + W - margin``: reject (with ``--auto`` or a yes)."""
    from consensus.types import KIND_REJECT

    offer_id = offer["offer_id"]
    out: dict = {"offer_id": offer_id, "job_id": offer["job_id"], "status": offer["status"], "root_c_ok": False,
                 "freivalds": None, "sent": None, "out": None, "wrong_tile": None}
    text = (f"no product matching the claim of offer {offer_id} arrived by height {tip} (the window ends at {end})")
    if ctx.args.auto or _confirm(f"reject offer {offer_id}? (burns the reward, deposit and bond)"):
        sent = _send_step(ctx, KIND_REJECT, offer, params, None, client_only=True)
        out["sent"] = sent.to_json()
        ctx.emit(out, text + f"\nrejected: txid {sent.txid} (reward, deposit and bond burn)")
        return 0
    ctx.emit(out, text + f"\nreject it before height {end + 1} with: pouw-wallet job reject {offer_id}")
    return 1


def _send_step(ctx: Context, kind: int, offer: dict, params, payload, client_only: bool = False):
    """Check the step against the record and the tip, pick the sender, unlock, send."""
    from consensus.types import KIND_CLAIM, KIND_FRAUD

    from .market import check_sendable, fee_of, send_job_tx

    tip = int(ctx.client.call("getblockcount"))
    fee = fee_of(params, kind, payload)
    need = fee + (int(offer["bond"]) if kind == KIND_CLAIM else 0)
    client = offer.get("client")
    ks = ctx.load_wallet()
    # The client's own address sends a client step; a fraud proof too when the wallet holds it.
    if client_only or (kind == KIND_FRAUD and client in ks.addresses and getattr(ctx.args, "from_index", None) is None):
        index, sender = _pick_sender(ctx, need, client, what=f"a {_KINDS[kind]}")
    else:
        index, sender = _pick_sender(ctx, need, what=f"a {_KINDS[kind]}")
    _market_call(check_sendable, kind, offer, params, tip, sender)
    return _market_call(send_job_tx, ctx.client, _key(ctx, index), params, kind, bytes.fromhex(offer["offer_id"]),
                        payload)


_KINDS = {3: "claim", 4: "accept", 5: "reject", 6: "settle", 7: "refund", 8: "fraud proof"}


def _resolve(ctx: Context, text: str) -> dict:
    from .market import resolve_offer

    return _market_call(resolve_offer, ctx.client, text)


def cmd_job_claim(ctx: Context) -> int:
    """``job claim OFFER --product C.npy``: upload C to the node (served once the claim confirms), then claim."""
    from consensus.types import KIND_CLAIM, ClaimPayload

    from .jobs import JobFileError, load_npy_bytes
    from .market import check_claimed_product, market_params, product_bytes_limit

    a = ctx.args
    offer = _resolve(ctx, a.offer)
    params, _ = _market_call(market_params, ctx.client, ctx.network)
    path = Path(a.product)
    try:
        size = path.stat().st_size
        if size > product_bytes_limit(offer):
            raise CliError(f"{a.product} has {size} bytes; an int32 {offer['m']}x{offer['n']} product has at most "
                           f"{product_bytes_limit(offer)}")
        data = path.read_bytes()
    except OSError as e:
        raise CliError(f"cannot read the product file {a.product}: {e.strerror}") from None
    try:
        c = load_npy_bytes(data, f"the product ({a.product})")
    except JobFileError as e:
        raise CliError(str(e)) from None
    root = _market_call(check_claimed_product, offer, c)
    from .market import check_sendable
    _market_call(check_sendable, KIND_CLAIM, offer, params, int(ctx.client.call("getblockcount")), "")
    answer = ctx.client.put_blob(data, claim_of=offer["offer_id"])
    if answer.get("root_c") != root.hex():
        raise CliError(f"the node computes root_C {answer.get('root_c')} for the product, the wallet "
                       f"{root.hex()}; nothing was claimed", EXIT_NODE)
    sent = _send_step(ctx, KIND_CLAIM, offer, params, ClaimPayload(root))
    out = {**sent.to_json(), "root_c": root.hex(), "blob": answer.get("blob"), "bond": int(offer["bond"])}
    ctx.emit(out, f"claimed offer {offer['offer_id']}: txid {sent.txid}\nroot_C {root.hex()}")
    if not ctx.json:
        hint("the node serves C once the claim has confirmed; after the window anyone may settle: "
             f"pouw-wallet job settle {offer['offer_id']}")
    return 0


def cmd_job_step(ctx: Context) -> int:
    """``job accept|reject|settle|refund OFFER``: one step of section 11's table."""
    from consensus.types import KIND_ACCEPT, KIND_REFUND, KIND_REJECT, KIND_SETTLE

    from .market import market_params

    kind = {"accept": KIND_ACCEPT, "reject": KIND_REJECT, "settle": KIND_SETTLE, "refund": KIND_REFUND}[
        ctx.args.job_command]
    offer = _resolve(ctx, ctx.args.offer)
    params, _ = _market_call(market_params, ctx.client, ctx.network)
    sent = _send_step(ctx, kind, offer, params, None, client_only=kind != KIND_SETTLE)
    ctx.emit(sent.to_json(), f"{ctx.args.job_command} of offer {offer['offer_id']}: txid {sent.txid}")
    return 0


def cmd_job_fraud(ctx: Context) -> int:
    """``job fraud OFFER --product CLAIMED_C.npy --a A.npy --b B.npy``: prove one wrong tile."""
    from consensus.types import KIND_FRAUD

    from .fraudproof import build_fraud_payload
    from .jobs import JobFileError, load_npy_bytes, read_matrix_file
    from .market import judge_product, market_params, product_bytes_limit

    a = ctx.args
    offer = _resolve(ctx, a.offer)
    params, _ = _market_call(market_params, ctx.client, ctx.network)
    try:
        a_mat = read_matrix_file(a.a, "A")[1]
        b_mat = read_matrix_file(a.b, "B")[1]
        path = Path(a.product)
        if path.stat().st_size > product_bytes_limit(offer):
            raise CliError(f"{a.product} is larger than an int32 {offer['m']}x{offer['n']} product")
        c = load_npy_bytes(path.read_bytes(), f"the product ({a.product})")
    except JobFileError as e:
        raise CliError(str(e)) from None
    except OSError as e:
        raise CliError(f"cannot read the product file {a.product}: {e.strerror}") from None
    a_mat, b_mat, _ = _job_inputs(ctx, offer, a_mat, b_mat)
    verdict = _market_call(judge_product, offer, a_mat, b_mat, c)
    if not verdict.root_c_ok:
        raise CliError(f"{a.product} is not the claimed product of offer {offer['offer_id']} (its root_C differs "
                       f"from the claim's {offer.get('root_c')})")
    if verdict.wrong_tile is None:
        raise CliError(f"the claimed product of offer {offer['offer_id']} is right (it passes Freivalds' test): "
                       "there is no fraud to prove")
    payload = build_fraud_payload(a_mat, b_mat, c, *verdict.wrong_tile)
    sent = _send_step(ctx, KIND_FRAUD, offer, params, payload)
    ctx.emit({**sent.to_json(), "tile": list(verdict.wrong_tile)},
             f"fraud proof of tile {verdict.wrong_tile} for offer {offer['offer_id']}: txid {sent.txid}")
    return 0
