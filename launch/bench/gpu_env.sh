# Sourced by the GPU scripts (gpu_demo.sh, gpu_study.sh), from the repository root: installs
# the wheels in WHEELS_DIR (launch/tools/gpu_wheels.py: what the lent GPU image lacks) into a
# private folder and puts it and the repository on PYTHONPATH. Sets PYTHON (default python3).
#
#   source launch/bench/gpu_env.sh WHEELS_DIR
PYTHON="${PYTHON:-python3}"
SITE="${SSGAN_SITE:-/tmp/ssgan_site}"
if compgen -G "$1/*.whl" > /dev/null; then
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$1"/*.whl
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
