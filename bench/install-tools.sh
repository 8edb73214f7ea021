#!/usr/bin/env bash
# Installs the bench's tools from Debian's packages where this machine allows it:
# nginx (the upstream), its echo module (the delayed upstream) and wrk (the load).
# Without them the bench falls back to Python stand-ins and says so in its report.
set -u
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ -e /usr/lib/nginx/modules/ngx_http_echo_module.so ] || missing+=(libnginx-mod-http-echo)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} from Debian's packages"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "bench: ${missing[*]} not installed and cannot be installed here; using Python stand-ins"
fi
exit 0
