# palisade remove: takes the persistence, the jumps, the chains and the sets
# (audit mode's too) off the node, in that order: a remove that fails half-way leaves no boot
# restore behind. Idempotent: whatever is already gone is skipped. A
# rollback still pending from an interrupted apply is cancelled first: it
# would otherwise put back what remove takes away.
# Not stopped half way by a dropped link: a pending rollback is cancelled
# below, so what remove starts it finishes.
remove_ipt() {
    trap '' HUP PIPE INT TERM
    lock_node
    settle
    # Only what palisade made: a same-named set or chain of another tool's makes
    # remove fail here, before anything is taken away.
    read_node
    table4=$table_v4 table6=$table_v6
    check_owned "$set4" "$table4" "$save_v4" "$mangle_v4"
    check_owned "$set6" "$table6" "$save_v6" "$mangle_v6"
    cancel_rollback
    remove_boot
    for ipt in iptables ip6tables; do
        if [ "$ipt" = iptables ]; then table=$table4 mangle=$mangle_v4; else table=$table6 mangle=$mangle_v6; fi
        gone_lines "$table" "$mangle" | "$ipt-restore" -w 20 --noflush
    done
    # Every set's name in one process; another tool's set of a temporary set's
    # name stays (see drop_temp).
    names=$(ipset list -n 2>/dev/null) || names=''
    for s in "$set4" "$set6" "$set4-aud" "$set6-aud" "$set4-new" "$set6-new" "$set4-old" "$set6-old"; do
        case "$nl$names$nl" in
            *"$nl$s$nl"*)
                case $s in
                    "$set4" | "$set6" | "$set4-aud" | "$set6-aud") ipset destroy "$s" ;;
                    *) drop_temp "$s" || : ;;
                esac
                ;;
        esac
    done
    bump
    echo 'palisade: removed'
}
