# palisade's shell library, shared by the apply, restore and remove scripts.
# Data (names, members, rules) come before it; it only reads them. The
# filter table is listed once (`iptables -S`) and questions about it are
# answered from that text with shell builtins, not one process each.
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

# A newline, for building text with builtins.
nl='
'

# positions TABLE PARENT TARGET: sets pos to the rule numbers of
# "-A PARENT -j TARGET", each followed by a space. No process: the lines are
# read from a here-document, not a pipe, and the answer is a variable, not
# a command substitution.
positions() {
    pos='' n=0
    while IFS= read -r line; do
        case $line in
            "-A $2 "*)
                n=$((n + 1))
                if [ "$line" = "-A $2 -j $3" ]; then pos="$pos$n "; fi
                ;;
        esac
    done <<PALISADE_TABLE
$1
PALISADE_TABLE
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

# rules_of TABLE CHAIN: sets rules to the chain's rules, in order, one a line.
rules_of() {
    rules=''
    while IFS= read -r line; do
        case $line in "-A $2 "*) rules="$rules$line$nl" ;; esac
    done <<PALISADE_TABLE
$1
PALISADE_TABLE
}

# chain_rules TABLE CHAIN: prints the chain's rules, in order.
chain_rules() {
    rules_of "$1" "$2"
    printf '%s' "$rules"
}

# fetch VAR FILE: sets VAR to FILE's first line, or to nothing when there is
# no such file: `$(cat FILE)` without its two processes.
fetch() {
    if [ -f "$2" ]; then
        IFS= read -r "$1" <"$2" || :
    else
        read -r "$1" </dev/null || :
    fi
}

# owned_chain TABLE CHAIN SET TARGET: whether CHAIN is palisade's: it carries
# palisade's mark, or (made before there was one) it checks SET with TARGET
# and ends in DROP. palisade never replaces another tool's chain.
owned_chain() {
    rules_of "$1" "$2"
    case $rules in *" -m comment --comment $mark "*) return 0 ;; esac
    case $rules in *"-m set --match-set $3 src -j $4"*) ;; *) return 1 ;; esac
    case $rules in *"-A $2 -j DROP$nl") return 0 ;; esac
    return 1
}

# owned_set SET TABLE HEADER: whether SET (whose `ipset list -t` is HEADER)
# is palisade's: made with the comment extension, as palisade makes its
# sets, or (made before that) checked by palisade's chain in TABLE.
owned_set() {
    case $3 in *"Header: "*" comment "*) return 0 ;; esac
    has_chain "$2" "$chain" && owned_chain "$2" "$chain" "$1" ACCEPT
}

# check_owned SET TABLE HEADER: fail, before anything changes, when a set or
# chain palisade would replace has the name of one palisade did not make.
# HEADER is the set's `ipset list -t`, empty when there is no such set.
check_owned() {
    if [ -n "$3" ] && ! owned_set "$1" "$2" "$3"; then
        echo "palisade: ipset $1 exists but palisade did not make it; it will not replace another tool's set: remove it, or choose other names (--set4, --set6)" >&2
        exit 3
    fi
    for c in "$chain:ACCEPT" "$dchain:RETURN"; do
        if has_chain "$2" "${c%:*}" && ! owned_chain "$2" "${c%:*}" "$1" "${c#*:}"; then
            echo "palisade: chain ${c%:*} exists but palisade did not make it; it will not replace another tool's chain: choose another name (--chain)" >&2
            exit 3
        fi
    done
}

# The node lock, /run/palisade/lock, has one owner at a time: an apply or a
# remove (which fail at once when it is taken), a confirmation or a rollback
# (which wait for it). A change's fate is then decided by one claim
# (`mkdir SNAP/claim`): the rollback, the confirmation, a failed apply and
# remove race for it, and only the winner acts on the snapshot, disarms its
# trigger or deletes it. So nothing kills a rollback that has started, or
# deletes its snapshot under it.
# lock_node [SECONDS]: take the lock on fd 9, or fail; with SECONDS, wait
# that long for it.
lock_node() {
    if ! command -v flock >/dev/null 2>&1; then
        echo "palisade: flock is missing on this node (it comes with util-linux); palisade needs it to make one change at a time" >&2
        exit 3
    fi
    [ -d /run/palisade ] || mkdir -p /run/palisade
    exec 9>/run/palisade/lock
    if [ -n "${1-}" ]; then
        flock -w "$1" 9 && return 0
    elif flock -n 9; then
        return 0
    fi
    echo "palisade: another palisade run is changing this node right now; try again" >&2
    exit 4
}

# disarm SNAP: (claim won) stop SNAP's trigger: the systemd timer of its
# own name, or the detached sleeper's process group. A rollback the trigger
# already started and that waits for the lock finds the claim taken (or the
# snapshot gone) and does nothing.
disarm() {
    fetch armed "$1/armed"
    set -- "$1" $armed
    case ${2-} in
        systemd) systemctl stop "${3-palisade-rollback}.timer" >/dev/null 2>&1 || true ;;
        setsid)
            fetch group "$1/pid"
            kill -TERM "-$group" 2>/dev/null || true
            ;;
    esac
}

# settle: (lock held) finish what the owner of a claim left undone when it
# died (a confirmation killed before it removed the snapshot, a rollback
# killed half way), and run a rollback whose trigger has not fired 30 s
# after its deadline (killed, or its /run lost).
settle() {
    s=/run/palisade/rollback
    if [ ! -d "$s" ] || [ -e "$s/rolled-back" ] || [ ! -f "$s/id" ]; then return 0; fi
    fetch sid "$s/id"
    if [ -d "$s/claim" ]; then
        fetch by "$s/claim/by"
        case $by in
            confirm) install_boot "$s" || true; rm -rf "$s" ;;
            *) sh "$s/rollback.sh" "$sid" --locked settle resume || true ;;
        esac
    elif [ -e "$s/armed" ] && fetch due "$s/deadline-epoch" && [ "$(date +%s)" -gt "$((${due:-0} + 30))" ]; then
        sh "$s/rollback.sh" "$sid" --locked expired || true
    fi
}

# cancel_rollback: (lock held) cancel a pending rollback of an earlier
# change, if any, and forget it.
cancel_rollback() {
    snap=/run/palisade/rollback
    [ -d "$snap" ] || return 0
    if [ -e "$snap/rolled-back" ]; then
        rm -rf "$snap"
    elif mkdir "$snap/claim" 2>/dev/null; then
        echo remove >"$snap/claim/by"
        disarm "$snap"
        rm -rf "$snap"
    fi
}

# install_boot SNAP: (lock held, change confirmed) make the boot files what
# the confirmed change staged in SNAP/boot. Nothing that outlives a reboot
# is written before this: a node that crashes while a change is unconfirmed
# boots into its old state. The new files are written beside the old ones,
# flushed once, then each put in place by a rename, the script before the
# unit and the unit before its link, so a crash here boots the old state or
# the new one. The unit is enabled as `systemctl enable` would, by its
# [Install] link ($unit_wants), without a daemon-reload: it only has to be
# there at the next boot, which reads the unit files afresh. Fails (status 1)
# at the first step that fails.
install_boot() {
    b=$1/boot
    [ -f "$b/plan" ] || return 0
    dir=${restore_path%/*}
    read -r plan <"$b/plan" || return 1
    case $plan in
        install)
            [ -d "$dir" ] || mkdir -p "$dir" || return 1
            new="$dir/restore.sh.tmp $dir/backend.tmp"
            cp "$b/restore.sh" "$dir/restore.sh.tmp" && cp "$b/backend" "$dir/backend.tmp" || return 1
            if [ -f "$b/unit" ]; then
                cp "$b/unit" "$unit_path.tmp" && chmod 0644 "$unit_path.tmp" || return 1
                new="$new $unit_path.tmp"
            fi
            # sync -f flushes each named file's whole file system.
            sync -f $new || return 1
            mv -f "$dir/restore.sh.tmp" "$dir/restore.sh" && mv -f "$dir/backend.tmp" "$dir/backend" || return 1
            if [ -f "$b/unit" ]; then
                mv -f "$unit_path.tmp" "$unit_path" || return 1
                if [ ! -L "$unit_wants" ]; then
                    [ -d "${unit_wants%/*}" ] || mkdir -p "${unit_wants%/*}" || return 1
                    ln -s "$unit_path" "$unit_wants" || return 1
                fi
                sync -f "$dir" "${unit_wants%/*}" || return 1
            else
                sync -f "$dir" || return 1
            fi
            ;;
        remove)
            remove_boot || return 1
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
        rm -f "$unit_wants" "$unit_path" || return 1
        if [ -d /run/systemd/system ]; then systemctl daemon-reload || return 1; fi
    fi
    rm -f "$restore_path" "$dir/backend" "$dir/docker-user" || return 1
    if [ -d "$dir" ]; then sync -f "$dir"; fi
}
