# palisade converge: a whole apply in one exec, with sudo once.
#
# It reads the node (observe, with no lock: a node with nothing to change is
# only read), then waits on stdin for the controller's order, one line:
#   apply N  followed by N bytes of code: the header with the whitelist,
#            the change (apply.sh) and what it writes, sent only when there
#            is a change to make, so that a read costs a small script, the
#            same at any fleet size; then make the change (change, under
#            the node lock), armed to roll back by itself; print `==> change`
#            with what it did and the chains as they are now, and wait for
#            the next order:
#              confirm ID  keep it (confirm_change), if it is change ID
#              abort       roll it back now, and say whether that worked
#   confirm ID  keep an earlier run's pending change ID (confirm_change)
# Before it reads, it finishes what an earlier run left half done (settle),
# and says so in a section `settled` (confirm, rollback or expired).
# Anything else, or the end of stdin (the controller went away), stops
# here: an armed change then rolls back by itself.
order() {
    IFS= read -r order || order=''
}

# A snapshot left by an earlier change: settle it first, under the lock
# (a claim whose owner died is finished, an overdue rollback run), so that
# what observe reads is where the node stands. A node with none costs no
# lock here.
if [ -d /run/palisade/rollback ]; then
    # The first word, before the lock can keep it waiting: a failure with
    # nothing on stdout is sudo's refusal (see probe::as_root). Elsewhere
    # the script's first words are observe's (see say_observed).
    echo '==> start'
    lock_node
    settle
    exec 9>&-
    if [ -n "$settled" ]; then printf '==> settled\n|%s\n' "$settled"; fi
fi
set +e
# --backend auto: this node's backend, once settle is done.
if [ "${auto-0}" = 1 ]; then choose; fi
fetch seen /run/palisade/generation
say_observed "${1-}"
order
case $order in
    "apply "*)
        n=${order#apply }
        case $n in '' | *[!0-9]*) exit 1 ;; esac
        more=$(head -c "$n") || exit 1
        # All of it, or none: a cut one (the link dropped) ends otherwise
        # (see render::CHANGE_END).
        case $more in
            *"$nl: end of the change") ;;
            *) echo "palisade: the change arrived cut short" >&2; exit 1 ;;
        esac
        eval "$more"
        set -e
        lock_node
        # Another run changed the node after observe read it: start again
        # rather than change it from stale tables.
        fetch now_seen /run/palisade/generation
        if [ "$now_seen" != "$seen" ]; then
            echo "palisade: another palisade run changed this node while this one read it; try again" >&2
            exit 4
        fi
        change
        set +e
        # What the commit left, for the controller to check before it
        # confirms: two processes (with nftables one, and one more where
        # the ip_set module is loaded: see nft.sh read_node).
        read_back
        exec 9>&-
        # In one write, as observe's (see say).
        reply=''
        section change
        say "id=$id"
        fetch armed "$snap/armed"
        if [ -n "$armed" ]; then say "armed=${armed%% *}"; fi
        if [ -n "$persisted" ]; then say "persist=$persisted"; fi
        say_back
        section end
        reply_out
        order
        case $order in
            "confirm "*) confirm_change "${order#confirm }" ;;
            abort)
                if sh "$snap/rollback.sh" "$id" && [ -e "$snap/rolled-back" ] && [ ! -e "$snap/rollback-failed" ]; then
                    printf '==> abort\n|state=rolled-back\n==> end\n'
                else
                    printf '==> abort\n|state=rollback-failed\n==> end\n'
                fi
                ;;
        esac
        ;;
    "confirm "*) confirm_change "${order#confirm }" ;;
esac
exit 0
