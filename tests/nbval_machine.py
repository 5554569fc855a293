"""Whether nbval compares a notebook's stored outputs on this machine.

A notebook's stored outputs hold the last bits of seeded training on the machine that executed it
(lib.runtime.machine; the main job records it in the notebook's metadata, lib.jobs.tasks.stamp_machine).
On another processor or torch build nbval still executes every cell (an exception fails) but does not
compare outputs, as test_output_matches_committed skips on another machine than figures/machine.json's.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

from lib.runtime import machine

OTHER_MACHINE: dict[Path, str | None] = {}


def other_machine(notebook: Path) -> str | None:
    """Why this machine cannot reproduce ``notebook``'s stored outputs (None: it can), read once per file."""
    notebook = Path(notebook).resolve()
    if notebook not in OTHER_MACHINE:
        recorded = nbformat.read(notebook, as_version=4).metadata.get("companion", {}).get("machine")
        if recorded is None:
            why = "its metadata records no machine (lib.jobs.tasks.stamp_machine)"
        else:
            why = machine.same_numerics(recorded)
        OTHER_MACHINE[notebook] = why and f"{notebook.name}: {why}"
    return OTHER_MACHINE[notebook]
