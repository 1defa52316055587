# confirm_change ID: the controller got through on a new connection; keep
# the pending change, if it is change ID (never another run's). Takes the node lock, then races the rollback for the
# claim: whichever takes it first wins. The winner installs the boot files
# the change staged, so only a confirmed change outlives a reboot. Nothing
# stops it half way: a dropped link or a signal would leave a claim that no
# one finishes until the next run settles it. Prints `==> confirm`, the
# change's fate (`state=confirmed`, `state=rolled-back` or `state=none`),
# `boot=failed` when the boot files could not be written, and `==> end`.
# Two runs may confirm the same change (one made it, the other found it
# pending): the winner records the id it confirmed, and its boot files'
# fate, in /run/palisade/confirmed, so the other hears `confirmed` too,
# not `none` for a snapshot the winner removed.
confirm_change() {
    set +e
    trap '' HUP PIPE INT TERM
    lock_node 60
    snap=/run/palisade/rollback
    # A confirmation that died after its claim is finished by settle: the
    # change stands confirmed.
    fetch died "$snap/claim"
    fetch sid "$snap/id"
    settle
    fetch kept /run/palisade/confirmed
    boot=ok
    if [ "$sid" != "$1" ]; then
        case $kept in
            "$1 "*) state=confirmed boot=${kept#"$1 "} ;;
            *) state=none ;;
        esac
    elif [ ! -d "$snap" ] && [ "$died" = confirm ]; then
        echo "$1 $boot" >/run/palisade/confirmed
        state=confirmed
    elif [ ! -d "$snap" ]; then
        state=none
    elif [ -e "$snap/rolled-back" ]; then
        state=rolled-back
    elif claim "$snap" confirm; then
        disarm "$snap"
        if ! install_boot "$snap"; then
            echo "palisade: the change is confirmed, but writing its boot restore failed" >&2
            boot=failed
        fi
        echo "$1 $boot" >/run/palisade/confirmed
        rm -rf "$snap"
        bump
        state=confirmed
    else
        state=rolled-back
    fi
    exec 9>&-
    printf '==> confirm\n|state=%s\n|boot=%s\n==> end\n' "$state" "$boot"
}
