"""Runs ``llama_cpp.server`` in the child process and exits when the parent process is gone.

(``PR_SET_PDEATHSIG`` fires when the *thread* that started the child ends, not the process, so a
server started from a worker thread would die early; polling the parent pid has no such catch.)
Usage: python -m react_agent._llama_child PARENT_PID -- <llama_cpp.server arguments>
"""

from __future__ import annotations

import os
import runpy
import sys
import threading
import time


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(0)


def main() -> None:
    parent = int(sys.argv[1])
    sys.argv = ["llama_cpp.server", *sys.argv[3:]]
    threading.Thread(target=_watch, args=(parent,), daemon=True).start()
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
