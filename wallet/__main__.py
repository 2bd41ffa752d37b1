"""``python -m wallet ...`` is ``pouw-wallet ...``."""

from wallet.cli import main

raise SystemExit(main())
