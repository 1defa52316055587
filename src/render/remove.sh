# palisade remove: takes the jumps, the chains, the sets and the persistence
# off the node. Idempotent: whatever is already gone is skipped. A rollback
# still pending from an interrupted apply is cancelled first: it would
# otherwise put back what remove takes away.
lock_node
cancel_rollback
for ipt in iptables ip6tables; do
    table=$("$ipt" -w -S)
    {
        echo '*filter'
        for p in $(positions "$table" INPUT "$chain"); do echo "-D INPUT -j $chain"; done
        if has_chain "$table" DOCKER-USER; then
            for p in $(positions "$table" DOCKER-USER "$dchain"); do echo "-D DOCKER-USER -j $dchain"; done
        fi
        for c in "$chain" "$dchain"; do
            if has_chain "$table" "$c"; then
                echo "-F $c"
                echo "-X $c"
            fi
        done
        echo COMMIT
    } | "$ipt-restore" -w --noflush
done
for s in "$set4" "$set6" "$set4-new" "$set6-new"; do
    if ipset list -n "$s" >/dev/null 2>&1; then ipset destroy "$s"; fi
done
if [ -d /run/systemd/system ] && [ -f "$unit_path" ]; then
    systemctl disable "${unit_path##*/}" >/dev/null 2>&1 || true
    rm -f "$unit_path"
    systemctl daemon-reload
fi
rm -f "$restore_path" "${restore_path%/*}/backend"
echo 'palisade: removed'
