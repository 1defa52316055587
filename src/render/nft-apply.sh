# The nftables backend's writers, loaded after apply.sh in its place (see
# nft.sh): a change is one `nft -f` that replaces the table whole, sets
# included (`add table`, `delete table`, the table: one transaction, all or
# nothing, which no packet sees half made), its undo one more that puts the
# table back as it was, or deletes it when there was none. palisade
# replaces only a table that carries its mark (the comment on the guard's
# first rule).

# owned_table: fail, before anything changes, when the table exists but
# palisade did not make it.
owned_table() {
    case $ntable_json in
        '' | *"\"comment\": \"$mark\""* | *"\"comment\":\"$mark\""*) return 0 ;;
    esac
    echo "palisade: nftables table inet $ntable exists but palisade did not make it; it will not replace another tool's table: remove it, or choose another name (--chain)" >&2
    exit 3
}

# prepare_all: check the table is palisade's or absent; save it as `nft -s
# list table` prints it (without counters, which move) for the rollback
# (SNAP/table.nft); write the change, which replaces it (SNAP/rules.nft).
prepare_all() {
    owned_table
    if [ -n "$ntable_json" ]; then
        nft -s list table inet "$ntable" >"$snap/table.nft"
    fi
    {
        printf 'add table inet %s\ndelete table inet %s\n' "$ntable" "$ntable"
        printf '%s' "$nft_text"
    } >"$snap/rules.nft"
}

commit_all() {
    step 1 "undo_nft"
    nft -f "$snap/rules.nft"
}

# undo_nft: put the table back as prepare found it (SNAP/table.nft), or
# take it away when there was none, from the table as it is now; then read
# it again, and succeed only when it is so. Idempotent: nothing to do when
# it is already so.
undo_nft() {
    if [ -f "$snap/table.nft" ]; then
        want=$(cat "$snap/table.nft")
        now_table=$(nft -s list table inet "$ntable" 2>/dev/null) || now_table=''
        [ "$now_table" = "$want" ] && return 0
        {
            printf 'add table inet %s\ndelete table inet %s\n' "$ntable" "$ntable"
            cat "$snap/table.nft"
        } | nft -f - || return 1
        now_table=$(nft -s list table inet "$ntable" 2>/dev/null) || now_table=''
        if [ "$now_table" != "$want" ]; then
            echo "palisade rollback: the nftables table is still not as it was" >&2
            return 1
        fi
    elif nft list table inet "$ntable" >/dev/null 2>&1; then
        nft delete table inet "$ntable" || return 1
    fi
}

# No temporary sets with nftables: the table is replaced in one transaction.
sets_back() {
    :
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
    cancel_rollback
    remove_boot
    if [ -n "$ntable_json" ]; then
        nft delete table inet "$ntable"
    fi
    bump
    echo 'palisade: removed'
}
