"""Network presets: every parameter that differs between devnet, testnet and mainnet.

One frozen ``NetworkParams`` per network (docs/protocol.md section 10): chain id,
address prefix, genesis, block spacing ``S`` and ``halflife`` of the ASERT,
``pow_limit``, the first target, the subsidy schedule, the minimum fee, the time
and fork limits and the size limits.
Protocol constants (``pouw.constants``) and runtime configuration (``node``)
live elsewhere.

Amounts are in base units; ``COIN = 10^8`` base units.

Choices (not fixed by docs/protocol.md, documented here):

- ``devnet`` mines on a CPU at the shape ``m = n = 128, k = 256`` with a fixed
  target (``no_retarget``) such that a block costs ``DEVNET_MATMULS_PER_BLOCK``
  (1000) such matmuls on average: ``target = 2^256 // (1000 * m*n*k)``. With
  the NumPy backend one such matmul takes about 2 ms on a 2-core machine, so a
  single CPU miner finds a block every 2 seconds or so.
  The genesis prefunds the first ten keys of ``consensus.keys.DEVNET_MNEMONIC``
  (account 0, indices 0..9) with one million coins each.
- ``regtest`` is devnet with its own chain id and a target at which about one
  matmul in two wins: blocks on demand for tests (as in Bitcoin's regtest). It
  is not one of the three public networks of docs/protocol.md; tests and
  ``generatetoaddress``-driven scripts use it.
- ``testnet`` and ``mainnet`` retarget every block (ASERT). ``pow_limit`` (the
  easiest target) is one matmul of the preset shape per block; the first target
  is a guess of the network's early speed and ASERT corrects it, by a factor of
  two per ``halflife`` the chain runs behind or ahead of its schedule.
- ``genesis_time`` of a retargeting network is its launch time: ASERT counts
  every second between genesis and a block as lag, so a genesis time long
  before launch would hand the first miner ``(launch - genesis_time) / S``
  blocks at ``pow_limit``. Testnet launches 2027-01-04T00:00:00Z, mainnet
  2027-03-01T00:00:00Z. Devnet and regtest never retarget, so theirs does not
  matter.
- ``halflife >= 12 * max_future`` on every preset: a timestamp at the future
  limit eases its child's target by at most ``2^(1/12)`` (about 6%).
- Job market (section 11): ``bond_bp = deposit_bp = 10000`` (a claimant bonds,
  and a client deposits, at least the reward), ``fraud_fee_mult = 2``,
  ``M_job = 2^16``, ``K_job = 16384`` on every preset: a fraud proof at
  ``K_job`` is at most ``1184 + 32 * 16384 + 32 * (24 + 12 + 12) = 527,008``
  bytes (under a gossip message's 1 MiB, and beside the largest certificate,
  2.1 MB, in a 4 MB block). The challenge window ``W`` is 10 blocks on devnet
  (a job settles within a minute), 120 on testnet (an hour) and mainnet (two
  hours); an offer may live ``max_job_lifetime`` blocks (devnet 720,
  testnet 20,160, mainnet 10,080: a week).
- ``max_block_size`` (4,000,000 bytes) leaves room for the largest certificate
  (``32 * 65536`` bytes at ``k = 65536``) plus transfers. Gossip splits large
  blocks into requests (p2p layer), so blocks need not fit a gossip message.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pouw.constants import MAX_U256

COIN = 10**8
"""Base units in one coin."""

DEVNET_MATMULS_PER_BLOCK = 1000
"""Expected matmuls of the devnet shape per devnet block."""

DEVNET_SHAPE = (128, 128, 256)


@dataclass(frozen=True)
class Allocation:
    """One prefunded account of the genesis block."""

    address: bytes
    """20-byte address."""
    amount: int
    """Base units credited at genesis."""


@dataclass(frozen=True)
class NetworkParams:
    """The parameters of one network (docs/protocol.md section 10)."""

    name: str
    """``devnet``, ``testnet`` or ``mainnet``."""
    chain_id: int
    """u32 carried by every transfer; a transfer for another chain is invalid here."""
    hrp: str
    """bech32m human-readable prefix of addresses."""
    genesis_time: int
    """Unix seconds in the genesis header: the launch time of a retargeting network (the ASERT anchor)."""
    allocations: tuple[Allocation, ...]
    """Accounts funded by the genesis block, in order."""
    block_spacing: int
    """``S``: target seconds between blocks."""
    pow_limit: int
    """Largest (easiest) target a block may carry."""
    initial_target: int
    """Target of the genesis header, hence of its first child: the ASERT anchor."""
    no_retarget: bool
    """When true every block carries ``initial_target`` (devnet)."""
    initial_subsidy: int
    """Base units a coinbase may create at height 1 (plus fees)."""
    halving_interval: int
    """The subsidy halves every this many blocks."""
    max_block_size: int
    """Bytes of an encoded block, header and certificate included."""
    max_tx_count: int
    """Transactions per block, coinbase included."""
    max_memo: int
    """Bytes of a transfer's memo."""
    mining_shape: tuple[int, int, int]
    """Default ``(m, n, k)`` a miner uses when no job waits."""
    halflife: int = 172_800
    """ASERT half-life in seconds: the target doubles per ``halflife`` the chain is behind schedule."""
    max_future: int = 7_200
    """Seconds a block's time may be ahead of the local clock (``halflife >= 12 * max_future``)."""
    min_fee_per_byte: int = 1
    """A transfer's fee must be at least this many base units per byte of the encoded Tx (at least 1)."""
    max_fork_depth: int = 1_440
    """A side branch forking more than this many blocks below the tip is refused."""
    side_branch_margin: int = 6
    """Bodies of a side branch are taken only when its work is within this many tip blocks' work of the tip."""
    job_window: int = 120
    """``W``: blocks after a claim in which the client may accept, reject or prove fraud; then anyone may settle."""
    bond_bp: int = 10_000
    """Smallest bond an offer may name, in basis points of its reward (``>= 10000``)."""
    deposit_bp: int = 10_000
    """Smallest deposit an offer may name, in basis points of its reward (``>= bond_bp``)."""
    fraud_fee_mult: int = 2
    """An offer's bond covers at least this many times the minimum fee of its largest fraud proof (``>= 2``)."""
    max_job_lifetime: int = 10_080
    """An offer's deadline is at most this many blocks above the offer's height."""
    max_job_mn: int = 1 << 16
    """``M_job``: largest ``m`` and ``n`` of a paid job."""
    max_job_k: int = 16_384
    """``K_job``: largest ``k`` of a paid job (its fraud proof must fit a transaction, a gossip message, a block)."""

    def __post_init__(self) -> None:
        """The bounds revision 2 puts on every preset; a preset that breaks one cannot be built."""
        issued = sum(a.amount for a in self.allocations) + 2 * self.initial_subsidy * self.halving_interval
        if issued >= 1 << 64:
            raise ValueError(f"{self.name}: allocations + 2 * initial_subsidy * halving_interval = {issued} "
                             f"must stay below 2^64 (so no credit can overflow)")
        if self.halflife < 12 * self.max_future:
            raise ValueError(f"{self.name}: halflife {self.halflife} must be at least 12 * max_future "
                             f"= {12 * self.max_future}")
        if self.min_fee_per_byte < 1:
            raise ValueError(f"{self.name}: min_fee_per_byte must be at least 1, found {self.min_fee_per_byte}")
        if not 10_000 <= self.bond_bp <= self.deposit_bp:
            raise ValueError(f"{self.name}: expected 10000 <= bond_bp <= deposit_bp, found {self.bond_bp}, "
                             f"{self.deposit_bp}")
        if self.fraud_fee_mult < 2:
            raise ValueError(f"{self.name}: fraud_fee_mult must be at least 2, found {self.fraud_fee_mult}")
        if self.job_window < 1 or self.max_job_lifetime < 1:
            raise ValueError(f"{self.name}: job_window and max_job_lifetime must be at least 1")

    def subsidy(self, height: int) -> int:
        """Base units a coinbase may create at ``height``: halves every ``halving_interval`` blocks."""
        halvings = height // self.halving_interval
        return 0 if halvings >= 64 else self.initial_subsidy >> halvings


def _devnet_allocations() -> tuple[Allocation, ...]:
    # Addresses of DEVNET_MNEMONIC at m/44'/20559'/0'/0'/i' for i = 0..9, written out so the preset
    # is plain data; tests/unit/consensus/test_networks.py derives them again and compares.
    addresses = (
        "02a47f59bf7fdf2575e7d13b0a171bcf0f47853a",
        "ac945ab7db7c05a94756dfad32e2a270404bace6",
        "a8ae4261c250842fd2c3b61cf242ee32ed6db7a6",
        "223f367dfc85d446b86ab61a41457c0f4985f4cd",
        "90010b1c314ece1972f9557c35d8efcbede6305e",
        "04850cbc66ee34326a9bf9d4c51b3f28c95faf95",
        "94ef74edcbc91e65c6f3fa948049a26413f857af",
        "ae24aa8796120fe28442cd4facad27c3708e5151",
        "bdf342b86d33f4bf8497115742267875846d7b88",
        "ec54f319087a7ca9017df724746b8e4ef76abf43",
    )
    return tuple(Allocation(bytes.fromhex(a), 1_000_000 * COIN) for a in addresses)


def _shape_macs(shape: tuple[int, int, int]) -> int:
    m, n, k = shape
    return m * n * k


DEVNET = NetworkParams(
    name="devnet",
    chain_id=1337,
    hrp="pdev",
    genesis_time=1_767_225_600,  # 2026-01-01T00:00:00Z
    allocations=_devnet_allocations(),
    block_spacing=5,
    halflife=86_400,
    max_fork_depth=1_000,
    job_window=10,
    max_job_lifetime=720,
    pow_limit=MAX_U256,
    initial_target=(1 << 256) // (DEVNET_MATMULS_PER_BLOCK * _shape_macs(DEVNET_SHAPE)),
    no_retarget=True,
    initial_subsidy=50 * COIN,
    halving_interval=100_000,
    max_block_size=4_000_000,
    max_tx_count=10_000,
    max_memo=256,
    mining_shape=DEVNET_SHAPE,
)

REGTEST = replace(
    DEVNET,
    name="regtest",
    chain_id=1338,
    hrp="preg",
    initial_target=(1 << 256) // (2 * _shape_macs(DEVNET_SHAPE)),
)

TESTNET = NetworkParams(
    name="testnet",
    chain_id=2,
    hrp="ptest",
    genesis_time=1_799_020_800,  # 2027-01-04T00:00:00Z, the launch
    allocations=(),
    block_spacing=30,
    halflife=86_400,
    max_fork_depth=2_880,  # a day at S = 30 s
    job_window=120,  # an hour
    max_job_lifetime=20_160,  # a week
    pow_limit=(1 << 256) // _shape_macs((1024, 1024, 1024)),
    initial_target=(1 << 256) // (30 * 10**11),  # ~1e11 MAC/s: a few CPU miners
    no_retarget=False,
    initial_subsidy=50 * COIN,
    halving_interval=2_100_000,
    max_block_size=4_000_000,
    max_tx_count=10_000,
    max_memo=256,
    mining_shape=(1024, 1024, 1024),
)

MAINNET = NetworkParams(
    name="mainnet",
    chain_id=1,
    hrp="pouw",
    genesis_time=1_803_859_200,  # 2027-03-01T00:00:00Z, the launch
    allocations=(),
    block_spacing=60,
    halflife=172_800,  # two days, as aserti3-2d
    max_fork_depth=1_440,  # a day at S = 60 s
    job_window=120,  # two hours
    max_job_lifetime=10_080,  # a week
    pow_limit=(1 << 256) // _shape_macs((4096, 4096, 4096)),
    initial_target=(1 << 256) // (60 * 10**14),  # ~1e14 MAC/s: a handful of GPUs
    no_retarget=False,
    initial_subsidy=50 * COIN,
    halving_interval=2_100_000,  # about four years at S = 60 s
    max_block_size=4_000_000,
    max_tx_count=10_000,
    max_memo=256,
    mining_shape=(4096, 4096, 4096),
)

NETWORKS: dict[str, NetworkParams] = {p.name: p for p in (DEVNET, REGTEST, TESTNET, MAINNET)}


def get_network(name: str) -> NetworkParams:
    """The preset called ``name``."""
    try:
        return NETWORKS[name]
    except KeyError:
        raise ValueError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}") from None
