"""`python -m benchmarks.peers [flags]`: the peer benchmarks with their flags (`--help`)."""

import sys

from benchmarks.peers import run

run(sys.argv[1:])
