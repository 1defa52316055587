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

# lock_node: one palisade change at a time on a node. The lock lives as long
# as this script (fd 9); a second run fails at once instead of waiting.
lock_node() {
    mkdir -p /run/palisade
    exec 9>/run/palisade/lock
    if ! flock -n 9; then
        echo "palisade: another palisade run is changing this node right now; try again" >&2
        exit 4
    fi
}

# disarm SNAP: stop the rollback timer or sleeper armed for SNAP, if any.
disarm() {
    case $(cat "$1/armed" 2>/dev/null) in
        systemd) systemctl stop palisade-rollback.timer >/dev/null 2>&1 || true ;;
        setsid) kill -TERM "-$(cat "$1/pid")" 2>/dev/null || true ;;
    esac
}

# cancel_rollback: disarm a pending rollback of an earlier change, if any.
cancel_rollback() {
    snap=/run/palisade/rollback
    if [ -d "$snap" ] && mkdir "$snap/claim" 2>/dev/null; then
        disarm "$snap"
    fi
    rm -rf "$snap"
}
