"""``python -m bench NAME [args]``: run one registered benchmark (``python -m bench`` lists them)."""

from __future__ import annotations

import sys

from bench import BENCHMARKS, resolve


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: python -m bench NAME [args]\nbenchmarks: " + ", ".join(sorted(BENCHMARKS)))
        return 0 if argv else 2
    try:
        fn = resolve(argv[0])
    except KeyError as err:
        print(err.args[0], file=sys.stderr)
        return 2
    result = fn(argv[1:])
    return result if isinstance(result, int) else 0  # a benchmark may return its exit status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
