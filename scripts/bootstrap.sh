#!/usr/bin/env bash
# Make this checkout ready to run: system packages, the virtualenv with requirements.txt, compiled translations.
# Idempotent and quick on a second run: pip runs only when requirements.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v espeak-ng >/dev/null || need_apt+=(espeak-ng)      # offline TTS engine (Chinese and English)
command -v msgfmt >/dev/null || need_apt+=(gettext)            # compiles the Chinese/English UI translations
if [ "${LIVEHUMAN_WITH_BROWSER:-0}" = 1 ]; then
  command -v chromium >/dev/null || need_apt+=(chromium)       # the browser test drives Debian's chromium
  fc-list 2>/dev/null | grep -q "Noto Sans CJK SC" || need_apt+=(fonts-noto-cjk)  # Chinese in the browser tests
  command -v turnserver >/dev/null || need_apt+=(coturn)       # the TURN tests relay calls through a real coturn
  [ -e /usr/lib/nginx/modules/ngx_rtmp_module.so ] || need_apt+=(nginx libnginx-mod-rtmp)  # the RTMP tests' server
  command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)           # tests make audio and video in many containers
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing system packages: ${need_apt[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.requirements.sha256
want=$(cat requirements.txt requirements-nodeps.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "==> installing requirements.txt (first time: a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  .venv/bin/pip install -q --no-deps -r requirements-nodeps.txt
  echo "$want" > "$stamp"
fi

scripts/fetch-test-media.sh

.venv/bin/python manage.py compilemessages --ignore=.venv -v 0
