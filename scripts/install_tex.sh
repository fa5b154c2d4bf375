#!/usr/bin/env bash
# Install the TeX toolchain that rule compile_paper needs (latexmk, pdfTeX, booktabs, the fonts)
# and poppler-utils (the PDF test renders pages to PNG), from Debian 12's registry at pinned
# versions. Needs root; a no-op when everything is installed at these versions.
set -euo pipefail
PACKAGES=(
    latexmk=1:4.79-1
    texlive-latex-base=2022.20230122-3
    texlive-latex-recommended=2022.20230122-3
    texlive-fonts-recommended=2022.20230122-3
    poppler-utils=22.12.0-2+deb12u3
)
missing=()
for p in "${PACKAGES[@]}"; do
    name=${p%%=*} version=${p#*=}
    # Status too: a removed package keeps its version in dpkg's records (config-files state).
    [[ $(dpkg-query -W -f='${Status} ${Version}' "$name" 2>/dev/null || true) == "install ok installed $version" ]] ||
        missing+=("$p")
done
((${#missing[@]})) || exit 0
echo "install_tex: installing ${missing[*]}" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
