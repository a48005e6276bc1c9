"""The onexen-translator process."""

from __future__ import annotations

from collections.abc import Sequence

from onexen.runtime.config import load_config
from onexen.runtime.server import run
from services.translator.servicer import add_to_server


def main(argv: Sequence[str] | None = None) -> None:
    config, _ = load_config("translator", argv)
    run(config, add_to_server)


if __name__ == "__main__":
    main()
