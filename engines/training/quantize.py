"""Moved: INT8 quantization needs no torch and lives in `engines.quantize` (`python -m engines.quantize --help`).

This name stays so `python -m engines.training.quantize` and old imports keep working.
"""
from engines.quantize import *  # noqa: F401,F403
from engines.quantize import main, quantize_model  # noqa: F401

if __name__ == "__main__":
    main()
