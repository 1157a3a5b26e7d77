"""Console entry point: `vidistill --help`."""

from vidistill.commands import (  # noqa: F401  (each module registers its commands on `main`)
    convert,
    data,
    evaluate,
    export,
    generate,
    report,
    run,
    select,
    synthesize,
)
from vidistill.commands.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
