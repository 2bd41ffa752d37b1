"""A real model over the network: an int8 MLP on scikit-learn's "digits", every linear layer computed by miners.

    pip install -e '.[examples]'                   # scikit-learn (it ships the digits data: no download)
    make devnet                                    # in another terminal: a local network that mines
    .venv/bin/python examples/digits_mlp.py        # the node at http://127.0.0.1:18445/ (devnet node0)
    .venv/bin/python examples/digits_mlp.py --rpc-url http://127.0.0.1:18445/ --limit 100 --json
    .venv/bin/python examples/digits_mlp.py --mine   # the inference itself mines blocks for the node

It trains a small MLP (64 inputs, 32 hidden ReLU units, 10 classes; fixed random state, so every run
trains the same model), quantizes it to int8 and classifies the test images twice with the same code:
once with the integer matrix products computed locally (NumPy, int64) and once with every one of them
computed by the network through ``wallet.matmul.Client.matmul``. Quantization is symmetric: weights
per output column, activations per row (per image), both to [-127, 127]; the int64 product is rescaled
by the two scales and the float bias is added. Integer products are exact on the network too, so the
two runs give identical products and therefore identical predictions; the script checks both and says
so. It prints the accuracy of the float model, of the int8 model run locally and of the int8 model run
on the network, the sub-jobs the network ran, which nodes computed them, and the time each run took.

With ``--mine`` the network run does not submit jobs: this process multiplies the int8 layers itself as
mining work against the node's current template (``miner.useful.UsefulMiner``), so every product is
lottery tickets and a winning tile becomes a block the node takes; the node need not mine. It then
prints the blocks found and the multiply-adds mined, all of them useful (the model's own products).

Exit status: 0 identical products and predictions; 1 they differ (or bad arguments, or scikit-learn
missing); 2 the node could not be used (unreachable, an RPC error, a product that failed its checks).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script from a checkout: make ``wallet`` importable without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DEFAULT_RPC_URL = "http://127.0.0.1:18445/"  # devnet node0, as `make devnet` starts it
HIDDEN = 32
RANDOM_STATE = 0
TEST_FRACTION = 0.25
QMAX = 127  # symmetric int8: [-127, 127], so that a scale maps +x and -x alike

MatMul = Callable[[np.ndarray, np.ndarray], np.ndarray]


class ExampleError(Exception):
    """A problem the user can fix (arguments, a missing package); exit 1."""


@dataclass(frozen=True)
class QuantLayer:
    """One linear layer in int8: ``y = (x_q @ w_q) * s_x * s_w + bias`` with ``x_q`` quantized per row at run time."""

    w_q: np.ndarray  # (inputs, outputs) int8 in [-127, 127]
    w_scale: np.ndarray  # (outputs,) float64: one scale per output column
    bias: np.ndarray  # (outputs,) float64


def quantize_per_row(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(x_q, scale)``, ``x ~= x_q * scale[:, None]``, ``x_q`` int8 in [-127, 127]; an all-zero row gets scale 1."""
    peak = np.max(np.abs(x), axis=1)
    scale = np.where(peak > 0, peak / QMAX, 1.0)
    q = np.clip(np.rint(x / scale[:, None]), -QMAX, QMAX).astype(np.int8)
    return q, scale


def quantize_per_column(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(w_q, scale)`` with ``w ~= w_q * scale[None, :]``: one scale per output column."""
    q, scale = quantize_per_row(w.T)
    return np.ascontiguousarray(q.T), scale


def quantize_model(coefs: list[np.ndarray], intercepts: list[np.ndarray]) -> list[QuantLayer]:
    layers = []
    for w, b in zip(coefs, intercepts, strict=True):
        w_q, w_scale = quantize_per_column(np.asarray(w, np.float64))
        layers.append(QuantLayer(w_q, w_scale, np.asarray(b, np.float64)))
    return layers


def local_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The exact integer product, computed here: what the network must return bit for bit."""
    return a.astype(np.int64) @ b.astype(np.int64)


def infer(layers: list[QuantLayer], x: np.ndarray, matmul: MatMul) -> tuple[np.ndarray, list[np.ndarray]]:
    """Class predictions for the rows of ``x`` and the integer product of every layer (ReLU between layers).

    Everything but ``matmul`` is the same float code for both runs, so identical products give identical
    predictions.
    """
    h = np.asarray(x, np.float64)
    products = []
    for i, layer in enumerate(layers):
        x_q, x_scale = quantize_per_row(h)
        acc = matmul(x_q, layer.w_q)
        if acc.dtype != np.int64 or acc.shape != (x_q.shape[0], layer.w_q.shape[1]):
            raise RuntimeError(f"layer {i}: the product is {acc.dtype} {acc.shape}, expected int64 "
                               f"{(x_q.shape[0], layer.w_q.shape[1])}")
        products.append(acc)
        z = acc.astype(np.float64) * x_scale[:, None] * layer.w_scale[None, :] + layer.bias
        h = np.maximum(z, 0.0) if i < len(layers) - 1 else z
    return np.argmax(h, axis=1), products


def train(limit: int | None) -> tuple[Any, np.ndarray, np.ndarray]:
    """The trained float MLP and the (first ``limit``) test images (scaled to [0, 1]) and labels."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.model_selection import train_test_split
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise ExampleError("this example needs scikit-learn: pip install -e '.[examples]' "
                           "(or: pip install scikit-learn)") from None
    digits = load_digits()  # 1,797 8x8 images shipped inside scikit-learn: no download
    x = digits.data / 16.0
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=TEST_FRACTION,
                                                        random_state=RANDOM_STATE, stratify=digits.target)
    if limit is not None:
        if limit > len(x_test):
            raise ExampleError(f"--limit {limit} is more than the {len(x_test)} test images")
        x_test, y_test = x_test[:limit], y_test[:limit]
    model = MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="relu", max_iter=400,
                          random_state=RANDOM_STATE)
    with warnings.catch_warnings():  # a fixed iteration budget is the point here, not convergence
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return model, x_test, y_test


def merge_stats(total: dict, stats: dict) -> None:
    for key in ("sub_jobs", "reused", "retries", "bytes_up", "bytes_down"):
        total[key] = total.get(key, 0) + int(stats.get(key, 0) or 0)
    by = total.setdefault("computed_by", {})
    for label, count in (stats.get("computed_by") or {}).items():
        by[str(label)] = by.get(str(label), 0) + int(count)


def run(args: argparse.Namespace) -> dict:
    from wallet.matmul import Client

    t0 = time.perf_counter()
    model, x_test, y_test = train(args.limit)
    train_s = time.perf_counter() - t0
    layers = quantize_model(model.coefs_, model.intercepts_)

    float_pred = model.predict(x_test)
    t0 = time.perf_counter()
    local_pred, local_products = infer(layers, x_test, local_matmul)
    local_s = time.perf_counter() - t0

    stats: dict = {}
    if args.mine:
        # The inference itself is the mining: every product is mining work against the node's
        # template, its tiles are lottery tickets, and a winning tile becomes a block.
        from miner.useful import UsefulMiner
        from wallet.rpc import read_cookie

        useful = UsefulMiner(args.rpc_url, auth=read_cookie(args.cookie) if args.cookie else None)

        def network_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            return useful.matmul(a, b)
    else:
        client = Client(args.rpc_url, cookie=args.cookie, timeout=args.timeout)

        def network_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
            c = client.matmul(a, b)
            merge_stats(stats, client.last_stats or {})
            return c

    t0 = time.perf_counter()
    net_pred, net_products = infer(layers, x_test, network_matmul)
    network_s = time.perf_counter() - t0

    def accuracy(pred: np.ndarray) -> float:
        return float(np.mean(pred == y_test))

    mined = {}
    if args.mine:
        t = useful.totals
        mined = {"mined": {"macs": t.macs, "matmuls": t.matmuls, "tickets": t.tickets, "blocks": list(t.blocks),
                           "refused": t.refused, "useful_share": 1.0}}
    return {
        **mined,
        "samples": int(len(y_test)),
        "layers": [[int(layer.w_q.shape[0]), int(layer.w_q.shape[1])] for layer in layers],
        "accuracy": {"float": accuracy(float_pred), "int8_local": accuracy(local_pred),
                     "int8_network": accuracy(net_pred)},
        "identical_products": all(np.array_equal(x, y) for x, y in zip(local_products, net_products, strict=True)),
        "identical_predictions": bool(np.array_equal(local_pred, net_pred)),
        "sub_jobs": stats.get("sub_jobs", 0),
        "reused": stats.get("reused", 0),
        "retries": stats.get("retries", 0),
        "bytes_up": stats.get("bytes_up", 0),
        "bytes_down": stats.get("bytes_down", 0),
        "computed_by": stats.get("computed_by", {}),
        "seconds": {"train": round(train_s, 3), "int8_local": round(local_s, 4), "int8_network": round(network_s, 3)},
        "rpc_url": args.rpc_url,
    }


def report(r: dict) -> str:
    acc = r["accuracy"]
    sec = r["seconds"]
    shapes = " -> ".join([str(r["layers"][0][0]), *(str(out) for _, out in r["layers"])])
    by = ", ".join(f"{label}: {count}" for label, count in sorted(r["computed_by"].items())) or "(none reported)"
    same = "identical" if r["identical_predictions"] and r["identical_products"] else "DIFFERENT"
    if "mined" in r:
        m = r["mined"]
        work = [f"  mined as it ran: {m['matmuls']} matmuls, {m['macs']:,} multiply-adds (all of them useful: "
                f"the model's own products), {m['tickets']:,} tickets, {len(m['blocks'])} blocks found"
                + (f" ({m['refused']} refused: the tip moved)" if m["refused"] else "")]
    else:
        work = [f"  sub-jobs {r['sub_jobs']} (reused {r['reused']}, retries {r['retries']}), "
                f"{r['bytes_up']:,} bytes up, {r['bytes_down']:,} bytes down",
                f"  computed by: {by}"]
    return "\n".join([
        f"digits MLP {shapes}, {r['samples']} test images, node {r['rpc_url']}",
        f"  accuracy  float {acc['float']:.4f}   int8 local {acc['int8_local']:.4f}   "
        f"int8 network {acc['int8_network']:.4f}",
        f"  products and predictions, local vs network: {same}",
        *work,
        f"  time  train {sec['train']:.2f} s   int8 local {sec['int8_local'] * 1000:.1f} ms   "
        f"int8 network {sec['int8_network']:.2f} s",
    ])


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, found {value}")
    return value


def seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, found {text!r}") from None
    if not 0 < value <= 86_400:
        raise argparse.ArgumentTypeError(f"expected seconds in (0, 86400], found {text}")
    return value


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # usage errors exit 1, like pouw-wallet: 2 means "the node could not be used"
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="digits_mlp.py", description=__doc__.split("\n\n")[0].strip(),
                epilog="Exit status: 0 identical, 1 different or a user error, 2 the node could not be used.")
    p.add_argument("--rpc-url", default=os.environ.get("POUW_RPC_URL") or DEFAULT_RPC_URL,
                   help=f"the node's JSON-RPC URL (env POUW_RPC_URL; default {DEFAULT_RPC_URL}, devnet node0)")
    p.add_argument("--cookie", metavar="FILE", help="the node's <datadir>/.cookie, if it asks for credentials")
    p.add_argument("--limit", type=positive_int, metavar="N", help="classify only the first N test images "
                   "(default: all 450)")
    p.add_argument("--timeout", type=seconds, default=600.0, metavar="S",
                   help="give up on one network matmul after S seconds (default 600)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON on stdout")
    p.add_argument("--mine", action="store_true",
                   help="compute the int8 layers here as mining work for the node (miner.useful.UsefulMiner): "
                        "the inference mines blocks; the node need not mine (nor have --mine)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.cookie and not Path(args.cookie).is_file():
        print(f"error: the cookie file {args.cookie} does not exist (it is <datadir>/.cookie of the node)",
              file=sys.stderr)
        return 1
    try:
        from wallet.matmul import MatmulError
        from wallet.rpc import NodeError
    except ImportError as e:
        print(f"error: cannot import the pouw wallet ({e}); run from the repository with .venv/bin/python, "
              "or pip install -e .", file=sys.stderr)
        return 1
    try:
        result = run(args)
    except ExampleError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (MatmulError, NodeError) as e:
        print(f"error: the network matmul failed: {e}. Is a mining node running at {args.rpc_url}? "
              "(start one with: make devnet)", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else report(result))
    return 0 if result["identical_predictions"] and result["identical_products"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
