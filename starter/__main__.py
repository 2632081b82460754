import os
import sys

from starter.cli import main

if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: Temporal's native runtime threads can abort the process
    # while Python tears down, turning a clean exit status into a crash.
    os._exit(code)
