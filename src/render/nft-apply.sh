# The nftables backend's writers, loaded after apply.sh in its place (see
# nft.sh): a change is one `nft -f` that replaces the table whole, sets
# included (`add table`, `delete table`, the table: one transaction, all or
# nothing, which no packet sees half made), its undo one more that puts the
# table back as it was, or deletes it when there was none. palisade
# replaces only a table that carries its mark (the comment on the guard's
# first rule): owned_table, in writers.sh with undo_nft, as the iptables
# backend's move back takes the table away with them.

# prepare_all: check the table is palisade's or absent; save it as `nft -s
# list table` prints it (without counters, which move) for the rollback
# (SNAP/table.nft); write the change, which replaces it (SNAP/rules.nft).
# With what the iptables backend left (ipt_left), also what takes it away
# and what puts it back (prepare_gone).
prepare_all() {
    owned_table
    if [ -n "$ntable_json" ]; then
        nft -s list table inet "$ntable" >"$snap/table.nft"
    fi
    # Over a table, add and delete it first (the whole replaced in the one
    # transaction); with none, `create` (which fails if one appeared since
    # the read) spares the kernel's wait a delete costs.
    {
        if [ -n "$ntable_json" ]; then
            printf 'add table inet %s\ndelete table inet %s\n' "$ntable" "$ntable"
        else
            printf 'create table inet %s\n' "$ntable"
        fi
        printf '%s' "$nft_text"
    } >"$snap/rules.nft"
    if [ "$ipt_left" = 1 ]; then
        prepare_gone v4 "$set4" "$table_v4" "$save_v4" "$mangle_v4"
        prepare_gone v6 "$set6" "$table_v6" "$save_v6" "$mangle_v6"
    fi
}

# prepare_gone V SET TABLE SAVE MANGLE: for a move from the iptables
# backend: check the family's set and chains are palisade's, save them for
# the rollback (SNAP/set.V, and save_chains' files, which undo_family
# reads), and write the restore lines that take the jumps and chains away
# (SNAP/rules.V).
prepare_gone() {
    v=$1 set=$2 table=$3 save=$4 mangle=$5
    check_owned "$set" "$table" "$save" "$mangle"
    not_forged
    if [ -n "$save" ]; then printf '%s\n' "$save" >"$snap/set.$v"; fi
    eval "audit=\$audit_$v"
    if [ -n "$audit" ]; then printf '%s\n' "$audit" >"$snap/audit.$v"; fi
    save_chains
    gone_lines "$table" "$mangle" >"$snap/rules.$v"
}

# commit_all: the table first, whole, so that the guard is in before
# anything of the iptables backend goes; then that backend's chains (one
# `iptables-restore` per family) and its sets, each step's undo recorded
# before it runs: a failure or a missed confirmation puts all of it back.
commit_all() {
    step 1 "undo_nft"
    nft -f "$snap/rules.nft"
    [ "$ipt_left" = 1 ] || return 0
    step 2 "undo_family v4 iptables"
    iptables-restore -w 20 --noflush <"$snap/rules.v4"
    step 3 "undo_family v6 ip6tables"
    ip6tables-restore -w 20 --noflush <"$snap/rules.v6"
    step 4 "sets_restore"
    if [ -n "$save_v4" ]; then ipset destroy "$set4"; fi
    if [ -n "$save_v6" ]; then ipset destroy "$set6"; fi
    if [ -n "$audit_v4" ]; then ipset destroy "$set4-aud"; fi
    if [ -n "$audit_v6" ]; then ipset destroy "$set6-aud"; fi
}

# sets_restore: (the undo of commit_all's step 4) make the sets it took
# away again (audit mode's too), as saved, where they are not there.
sets_restore() {
    for v in v4 v6; do
        if [ "$v" = v4 ]; then s=$set4; else s=$set6; fi
        for f in "set:$s" "audit:$s-aud"; do
            [ -f "$snap/${f%%:*}.$v" ] || continue
            ipset list -n "${f#*:}" >/dev/null 2>&1 || ipset restore <"$snap/${f%%:*}.$v" || return 1
        done
    done
}

# sets_back: whether the iptables backend's sets a move took away are back
# (nothing to check when none was). No temporary sets with nftables: the
# table is replaced in one transaction.
sets_back() {
    [ -f "$snap/step.4" ] || return 0
    set_back v4 "$set4" && set_back v6 "$set6"
}

drop_olds() {
    :
}

failed_temps() {
    :
}

# remove_all: palisade remove for this backend (see remove.sh): the
# pending rollback cancelled, the boot files taken away, then the table, if
# it is there and palisade's. Idempotent.
remove_all() {
    trap '' HUP PIPE INT TERM
    lock_node
    settle
    read_node
    owned_table
    if [ "$ipt_left" = 1 ]; then
        check_owned "$set4" "$table_v4" "$save_v4" "$mangle_v4"
        check_owned "$set6" "$table_v6" "$save_v6" "$mangle_v6"
    fi
    cancel_rollback
    remove_boot
    if [ -n "$ntable_json" ]; then
        nft delete table inet "$ntable"
    fi
    # What the iptables backend left goes too.
    if [ "$ipt_left" = 1 ]; then
        gone_lines "$table_v4" "$mangle_v4" | iptables-restore -w 20 --noflush
        gone_lines "$table_v6" "$mangle_v6" | ip6tables-restore -w 20 --noflush
        if [ -n "$save_v4" ]; then ipset destroy "$set4"; fi
        if [ -n "$save_v6" ]; then ipset destroy "$set6"; fi
        if [ -n "$audit_v4" ]; then ipset destroy "$set4-aud"; fi
        if [ -n "$audit_v6" ]; then ipset destroy "$set6-aud"; fi
    fi
    bump
    echo 'palisade: removed'
}
