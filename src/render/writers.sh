# What only palisade's writers (a change, its rollback, the boot restore,
# remove) need beside the library: where the jumps are, whether a set or
# chain is palisade's, and the temporary sets and pending rollbacks they
# clear; and of the nftables backend's table, whether it is palisade's and
# how it is put back (owned_table, undo_nft), which a move between the
# backends needs either way. Kept out of the library so that the script every read and apply
# starts with stays within TCP's first flight
# (render::tests::every_fleets_read_fits_in_one_flight).

# positions TABLE PARENT TARGET: sets pos to the rule numbers of
# "-A PARENT -j TARGET", each followed by a space, and n to how many rules
# PARENT has, from PARENT's rules as rules_of reads them (a quoted string's
# later lines are no rules; it sets rules and split too). No process.
positions() {
    rules_of "$1" "$2"
    pos='' n=0
    set -f
    ifs=$IFS IFS=$nl
    for line in $rules; do
        n=$((n + 1))
        if [ "$line" = "-A $2 -j $3" ]; then pos="$pos$n "; fi
    done
    IFS=$ifs
    set +f
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

# owned_set SET TABLE SAVE: whether SET (whose `ipset save` is SAVE) is
# palisade's: made with the comment extension, as palisade makes its sets
# (its create line, the first, says so), or (made before that) checked by
# palisade's chain in TABLE.
owned_set() {
    case ${3%%"$nl"*} in *" comment"*) return 0 ;; esac
    has_chain "$2" "$chain" && owned_chain "$2" "$chain" "$1" ACCEPT
}

# check_owned SET TABLE SAVE MANGLE: fail, before anything changes, when a
# set or chain palisade would replace (in the filter TABLE, or the guard in
# the MANGLE table) has the name of one palisade did not make. SAVE is the
# set's `ipset save`, empty when there is no such set.
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
    if has_chain "$4" "$gchain" && ! owned_chain "$4" "$gchain" "$1" RETURN; then
        echo "palisade: chain $gchain exists in the mangle table but palisade did not make it; it will not replace another tool's chain: choose another name (--chain)" >&2
        exit 3
    fi
}

# old_lines TABLE: the restore lines that take what versions before the
# guard alone made in the filter TABLE (palisade's INPUT chain and Docker
# guard, and the jumps to them), as read, away; none when nothing is left.
old_lines() {
    ol=''
    positions "$1" INPUT "$chain"
    for p in $pos; do ol="$ol-D INPUT -j $chain$nl"; done
    if has_chain "$1" DOCKER-USER; then
        positions "$1" DOCKER-USER "$dchain"
        for p in $pos; do ol="$ol-D DOCKER-USER -j $dchain$nl"; done
    fi
    for c in "$chain" "$dchain"; do
        if has_chain "$1" "$c"; then ol="$ol-F $c$nl-X $c$nl"; fi
    done
    if [ -n "$ol" ]; then printf '*filter\n%sCOMMIT\n' "$ol"; fi
}

# gone_lines TABLE MANGLE: the restore lines (for `iptables-restore
# --noflush`) that take palisade's jumps and chains out of the filter TABLE
# and the MANGLE table, as read: what remove does, and a move to the
# nftables backend once its table is in. A table is never made.
gone_lines() {
    old_lines "$1"
    positions "$2" PREROUTING "$gchain"
    if [ -n "$pos" ] || has_chain "$2" "$gchain"; then
        echo '*mangle'
        for p in $pos; do echo "-D PREROUTING -j $gchain"; done
        if has_chain "$2" "$gchain"; then
            echo "-F $gchain"
            echo "-X $gchain"
        fi
        echo COMMIT
    fi
}

# palisade's temporary sets, SET-new (filled, then swapped in) and SET-old
# (a rollback's copy of a set it puts back), are its own like the others: it
# flushes, swaps or destroys one only when it carries palisade's mark. The
# check costs no process where palisade makes them anyway: `create` with
# -exist accepts an existing set only when it has the type, size and
# extensions (the comment extension: the mark) palisade makes its sets
# with, so a commit's `ipset restore` that starts with these creates stops
# there, before any change, at another tool's set of such a name.
# drop_temp SET: destroy palisade's temporary set SET, if there is one;
# fails, leaving it, when SET is another tool's.
drop_temp() {
    ipset -exist create "$1" hash:net maxelem 65536 comment 2>/dev/null && ipset destroy "$1" 2>/dev/null
}

# cancel_rollback: (lock held) cancel a pending rollback of an earlier
# change, if any, and forget it.
cancel_rollback() {
    snap=/run/palisade/rollback
    [ -d "$snap" ] || return 0
    if [ -e "$snap/rolled-back" ]; then
        rm -rf "$snap"
    elif claim "$snap" remove || [ -e "$snap/rollback-failed" ]; then
        # A rollback that failed (and retries) holds no lock between its
        # tries: remove takes its claim over, as it takes away what that
        # rollback would put back.
        echo remove >"$snap/claim"
        disarm "$snap"
        rm -rf "$snap"
    fi
}

# owned_table: fail, before anything changes, when the table exists but
# palisade did not make it: as the controller decides (observe::nft's
# `marked`), a rule of the guard chain carries the mark as its comment. nft
# -j prints a rule's keys in one order (family, table, chain, handle,
# comment, expr), with or without blanks; the handle is digits alone, so
# these patterns match one rule, never a guard rule's start and another's
# comment. A mark elsewhere (another chain's rule, a set's comment) is not
# palisade's. Builtins only.
owned_table() {
    [ -n "$ntable_json" ] || return 0
    for b in ' ' ''; do
        h="\"chain\":$b\"guard\",$b\"handle\":$b" c=",$b\"comment\":$b\"$mark\",$b\"expr\""
        case $ntable_json in
            *"$h"[0-9]"$c"* | *"$h"[0-9][0-9]"$c"* | *"$h"[0-9][0-9][0-9]"$c"* | \
                *"$h"[0-9][0-9][0-9][0-9]"$c"* | *"$h"[0-9][0-9][0-9][0-9][0-9]"$c"* | \
                *"$h"[0-9][0-9][0-9][0-9][0-9][0-9]"$c"*) return 0 ;;
        esac
    done
    echo "palisade: nftables table inet $ntable exists but palisade did not make it; it will not replace another tool's table: remove it, or choose another name (--chain)" >&2
    exit 3
}

# undo_nft: put the table back as prepare found it (SNAP/table.nft), or
# take it away when there was none, from the table as it is now; then read
# it again, and succeed only when it is so. Idempotent: nothing to do when
# it is already so. What audit mode's sets recorded (lines with a ` . `
# in them) is left out of both sides: packets change it at any moment.
undo_nft() {
    if [ -f "$snap/table.nft" ]; then
        want=$(unrecorded <"$snap/table.nft")
        now_table=$(nft -s list table inet "$ntable" 2>/dev/null | unrecorded) || now_table=''
        [ "$now_table" = "$want" ] && return 0
        {
            printf 'add table inet %s\ndelete table inet %s\n' "$ntable" "$ntable"
            cat "$snap/table.nft"
        } | nft -f - || return 1
        now_table=$(nft -s list table inet "$ntable" 2>/dev/null | unrecorded) || now_table=''
        if [ "$now_table" != "$want" ]; then
            echo "palisade rollback: the nftables table is still not as it was" >&2
            return 1
        fi
    elif nft list table inet "$ntable" >/dev/null 2>&1; then
        nft delete table inet "$ntable" || return 1
    fi
}

# unrecorded: the table on stdin (`nft -s list`) without the elements of
# audit mode's sets, and without their type line (which has a ` . ` too).
unrecorded() {
    sed '/^[[:space:]]*set audit[46] {$/,/^[[:space:]]*}$/{/ \. /d;}'
}
