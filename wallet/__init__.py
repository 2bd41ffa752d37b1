"""``pouw-wallet``: keys, an encrypted keystore, payments and MatMul jobs from the terminal.

The wallet never opens the node's database: it talks JSON-RPC to ``pouwd``
(``wallet.rpc``) and builds and signs transfers itself (``consensus.tx``).

- ``wallet.bip39``: BIP-39 English mnemonics (generate, validate, entropy).
- ``wallet.hd``: SLIP-0010 Ed25519 keys at ``m/44'/COIN_TYPE'/<account>'/0'/<index>'``
  and bech32m addresses of a network.
- ``wallet.keystore``: one JSON file per wallet, the mnemonic encrypted with
  scrypt + AES-256-GCM, written atomically with mode 0600.
- ``wallet.amounts``: coins as decimal text <-> integer base units.
- ``wallet.rpc``: a small JSON-RPC 2.0 client (urllib) with typed errors.
- ``wallet.jobs``: local checks of a MatMul product (Freivalds) before it is saved.
- ``wallet.history``: transfers in and out of the wallet, scanned from the chain.
- ``wallet.cli``: the command line.
"""
