#!/usr/bin/env bash
# Build debian:bookworm-slim locally, for machines that reach no container registry:
# debootstrap (minbase) from this machine's Debian mirror, then `CONTAINER import`.
# Usage: scripts/base-image.sh [podman|docker]. Does nothing when the image is there.
# The machine's extra CA certificates (/usr/local/share/ca-certificates) go in too: behind a
# TLS-inspecting proxy pip and apt in the image need them (ca-certificates picks them up).
set -euo pipefail
container=${1:-podman}
image=docker.io/library/debian:bookworm-slim
if "$container" image inspect "$image" >/dev/null 2>&1; then
    echo "$image is there"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap is missing: apt-get install debootstrap" >&2; exit 1; }
sources=/etc/apt/sources.list.d/debian.sources
mirror=$(awk '/^URIs:/ {print $2; exit}' "$sources" 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase bookworm "$root" "$mirror" >/dev/null
# As Debian's own slim images: apt sources in deb822 form, no docs, man pages or locales from
# later installs, no apt caches.
rm -f "$root/etc/apt/sources.list"
if [ -f "$sources" ]; then
    cp "$sources" "$root/etc/apt/sources.list.d/"
else
    printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        "$mirror" >"$root/etc/apt/sources.list.d/debian.sources"
fi
cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";
CFG
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
    "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/log/*.log "$root"/tmp/*
tar --numeric-owner -C "$root" -cf - . | "$container" import - "$image" >/dev/null
echo "$image imported"
