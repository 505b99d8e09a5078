#!/usr/bin/python3
"""Runs one integration scenario: run.py MODULE TEST_NAME (CTest calls it once
per `def test_...` it finds in each tests/integration/test_*.py)."""

import importlib
import os
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main():
    module_name, test_name = sys.argv[1], sys.argv[2]
    module = importlib.import_module(module_name)
    test = getattr(module, test_name)
    started = time.monotonic()
    try:
        result = test()
    except Exception:  # noqa: BLE001 - report every failure the same way
        traceback.print_exc()
        print(f"FAIL {module_name}.{test_name}")
        return 1
    if result == "skip":
        print(f"SKIP {module_name}.{test_name}")
        return 77
    print(f"PASS {module_name}.{test_name} ({time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
