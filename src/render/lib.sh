# palisade's shell library, shared by the apply, restore and remove scripts.
# Data (names, members, rules) come before it; it only reads them. The
# filter table is listed once (`iptables -S`) and questions about it are
# answered from that text with shell builtins, not one process each.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# positions TABLE PARENT TARGET: the rule numbers of "-A PARENT -j TARGET".
positions() {
    n=0
    printf '%s\n' "$1" | while IFS= read -r line; do
        case $line in
            "-A $2 "*)
                n=$((n + 1))
                if [ "$line" = "-A $2 -j $3" ]; then echo "$n"; fi
                ;;
        esac
    done
}

# has_chain TABLE CHAIN
has_chain() {
    case "
$1
" in
        *"
-N $2
"* | *"
-P $2 "*) return 0 ;;
    esac
    return 1
}

# chain_rules TABLE CHAIN: the chain's rules, in order.
chain_rules() {
    printf '%s\n' "$1" | while IFS= read -r line; do
        case $line in "-A $2 "*) printf '%s\n' "$line" ;; esac
    done
}

# The node lock, /run/palisade/lock, has one owner at a time: an apply or a
# remove (which fail at once when it is taken), a confirmation or a rollback
# (which wait for it). Whoever holds it may disarm a rollback that has not
# started: a rollback only starts once it holds the lock itself.
# lock_node [SECONDS]: take the lock on fd 9, or fail; with SECONDS, wait
# that long for it.
lock_node() {
    if ! command -v flock >/dev/null 2>&1; then
        echo "palisade: flock is missing on this node (it comes with util-linux); palisade needs it to make one change at a time" >&2
        exit 3
    fi
    mkdir -p /run/palisade
    exec 9>/run/palisade/lock
    if [ -n "${1-}" ]; then
        flock -w "$1" 9 && return 0
    elif flock -n 9; then
        return 0
    fi
    echo "palisade: another palisade run is changing this node right now; try again" >&2
    exit 4
}

# disarm SNAP: stop the rollback armed for SNAP before it starts. Only the
# lock's owner calls it, so a rollback that already runs is not there to
# stop (it holds the lock); one that waits for the lock never claimed.
disarm() {
    case $(cat "$1/armed" 2>/dev/null) in
        systemd) systemctl stop palisade-rollback.timer palisade-rollback.service >/dev/null 2>&1 || true ;;
        setsid) kill -TERM "-$(cat "$1/pid")" 2>/dev/null || true ;;
    esac
}

# cancel_rollback: (lock held) disarm a pending rollback of an earlier
# change, if any, and forget it.
cancel_rollback() {
    snap=/run/palisade/rollback
    if [ -d "$snap" ] && mkdir "$snap/claim" 2>/dev/null; then
        disarm "$snap"
    fi
    rm -rf "$snap"
}

# install_boot SNAP: (lock held, change confirmed) make the boot files what
# the confirmed change staged in SNAP/boot. Nothing that outlives a reboot
# is written before this: a node that crashes while a change is unconfirmed
# boots into its old state. Every file is replaced by a rename, and the unit
# is enabled after its script is in place, so a crash here boots the old
# state or the new one.
install_boot() {
    b=$1/boot
    [ -f "$b/plan" ] || return 0
    dir=${restore_path%/*}
    case $(cat "$b/plan") in
        install)
            mkdir -p "$dir"
            for f in restore.sh backend docker-user; do
                if [ -f "$b/$f" ]; then
                    cp "$b/$f" "$dir/$f.tmp"
                    mv -f "$dir/$f.tmp" "$dir/$f"
                else
                    rm -f "$dir/$f"
                fi
            done
            if [ -f "$b/unit" ]; then
                (umask 022 && cp "$b/unit" "$unit_path.tmp")
                mv -f "$unit_path.tmp" "$unit_path"
                sync
                systemctl daemon-reload
                systemctl enable "${unit_path##*/}" >/dev/null 2>&1
            fi
            sync
            ;;
        remove)
            remove_boot
            ;;
    esac
}

# remove_boot: take the boot restore away, the unit first, so that at no
# point does a boot restore part of it.
remove_boot() {
    dir=${restore_path%/*}
    if [ -f "$unit_path" ]; then
        if [ -d /run/systemd/system ]; then
            systemctl disable "${unit_path##*/}" >/dev/null 2>&1 || true
        fi
        rm -f "$unit_path"
        if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
    fi
    rm -f "$restore_path" "$dir/backend" "$dir/docker-user"
    sync
}
