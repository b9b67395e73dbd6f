#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, only those missing.
# We run as root on these machines; elsewhere, run this script with sudo.
set -euo pipefail

declare -A wanted=(
  [postgresql]="/usr/lib/postgresql"
  [redis-server]="/usr/bin/redis-server"
  [chromium]="/usr/bin/chromium"
  [chromium-driver]="/usr/bin/chromedriver"
  [dicom3tools]="/usr/bin/dciodvfy"
  [pixelmed-apps]="/usr/bin/DicomSRValidator"
  [orthanc]="/usr/sbin/Orthanc"
  [dcmtk]="/usr/bin/storescu"
  [orthanc-dicomweb]="/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
  [gettext]="/usr/bin/msgfmt"
  [iproute2]="/usr/sbin/ip"
  [fonts-wqy-microhei]="/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
  [tesseract-ocr]="/usr/bin/tesseract"
  [tesseract-ocr-eng]="/usr/share/tesseract-ocr/5/tessdata/eng.traineddata"
  [tesseract-ocr-chi-sim]="/usr/share/tesseract-ocr/5/tessdata/chi_sim.traineddata"
)
missing=()
for pkg in "${!wanted[@]}"; do
  [ -e "${wanted[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present"
  exit 0
fi
echo "system packages: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts services it installs where it can; the suite runs its own on loopback.
for svc in postgresql redis-server orthanc; do
  $SUDO service "$svc" stop >/dev/null 2>&1 || true
done
echo "system packages: done"
