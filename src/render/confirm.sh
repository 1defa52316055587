# palisade confirm: the controller got through on a new connection; keep the
# change. Takes the node lock, then races the rollback for the claim:
# whichever takes it first wins. The winner installs the boot files the
# change staged, so only a confirmed change outlives a reboot. Nothing stops
# it half way: a dropped link or a signal would leave a claim that no one
# finishes until the next run settles it.
trap '' HUP PIPE INT TERM
lock_node 60
snap=/run/palisade/rollback
# A confirmation that died after its claim is finished by settle: the
# change stands confirmed.
fetch died "$snap/claim/by"
settle
if [ ! -d "$snap" ] && [ "$died" = confirm ]; then
    echo 'state=confirmed'
elif [ ! -d "$snap" ]; then
    echo 'state=none'
elif [ -e "$snap/rolled-back" ]; then
    echo 'state=rolled-back'
elif mkdir "$snap/claim" 2>/dev/null; then
    echo confirm >"$snap/claim/by"
    disarm "$snap"
    if ! install_boot "$snap"; then
        echo "palisade: the change is confirmed, but writing its boot restore failed" >&2
        echo 'boot=failed'
    fi
    rm -rf "$snap"
    echo 'state=confirmed'
else
    echo 'state=rolled-back'
fi
exec 9>&-
