"""The `eventlake` command: argument parsing and the commands (`main`), `eventlake demo`
(`demo`)."""

from eventlake.cli.main import main

__all__ = ["main"]
