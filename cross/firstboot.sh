#!/bin/sh
# Installs the newest bbedge_*.deb found on the SD card's boot partition.
#
# Runs as root: at boot from bbedge-firstboot.service (installed by the package, as
# /usr/lib/bbedge/firstboot.sh), or, for the very first install on a freshly
# flashed card, from cloud-init's runcmd (trixie) or Raspberry Pi Imager's firstrun.sh
# (bookworm): see docs/FLASHING.md and cross/cloud-init/user-data.
# A package that is installed (or older than the installed one) is renamed
# *.deb.installed (*.deb.skipped) so it is handled once. bbedge-pair.toml is left
# where it is: the daemon reads it from [pairing] boot_file itself.
# Every step is logged to stdout (the journal) and to <boot>/bbedge-install.log,
# so the result can be read on the card from any computer.
#
# Environment: BBEDGE_BOOT_DIR (default /boot/firmware).

# Everything is inside main() so the shell has read the whole script before dpkg
# replaces this very file while upgrading the package.
main() {
    set -eu
    boot="${BBEDGE_BOOT_DIR:-/boot/firmware}"
    log_file="$boot/bbedge-install.log"

    log() {
        line="$(date -u +%Y-%m-%dT%H:%M:%SZ 2>/dev/null || echo -) bbedge-firstboot: $*"
        echo "$line"
        echo "$line" >>"$log_file" 2>/dev/null || true
    }

    if [ "$(id -u)" != 0 ]; then
        echo "bbedge-firstboot: must run as root" >&2
        return 1
    fi

    arch="$(dpkg --print-architecture)"
    best="" best_version=""
    for deb in "$boot"/bbedge_*.deb; do
        [ -f "$deb" ] || continue
        pkg_arch="$(dpkg-deb -f "$deb" Architecture 2>/dev/null || echo "?")"
        if [ "$pkg_arch" != "$arch" ] && [ "$pkg_arch" != all ]; then
            log "skipping $deb: built for $pkg_arch, this system is $arch"
            continue
        fi
        version="$(dpkg-deb -f "$deb" Version)"
        if [ -z "$best" ] || dpkg --compare-versions "$version" gt "$best_version"; then
            best="$deb" best_version="$version"
        fi
    done
    if [ -z "$best" ]; then
        log "no bbedge package for $arch in $boot; nothing to do"
        return 0
    fi

    installed="$(dpkg-query -W -f='${db:Status-Status} ${Version}' bbedge 2>/dev/null || true)"
    case "$installed" in
        "installed "*)
            current="${installed#installed }"
            if dpkg --compare-versions "$best_version" le "$current"; then
                log "bbedge $current is installed; $best ($best_version) is not newer, skipped"
                mv -f "$best" "$best.skipped" || true
                return 0
            fi
            log "upgrading bbedge $current to $best_version from $best" ;;
        *)
            log "installing bbedge $best_version from $best" ;;
    esac

    # --force-confold: keep an /etc/bbedge/bbedge.toml the operator edited.
    if DEBIAN_FRONTEND=noninteractive dpkg --force-confold -i "$best" >>"$log_file" 2>&1; then
        mv -f "$best" "$best.installed" || true
        log "bbedge $best_version installed"
    else
        log "dpkg -i $best failed; see above. The package stays for the next boot."
        return 1
    fi

    if [ -f "$boot/bbedge-pair.toml" ]; then
        log "found $boot/bbedge-pair.toml; bbedge pairs with it when it starts"
    else
        log "no $boot/bbedge-pair.toml; pair with: sudo -u bbedge bbedge pair --server URL --device-uuid UUID --code CODE"
    fi
    return 0
}

main "$@"
exit $?
